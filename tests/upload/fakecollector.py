"""A small collector on loopback that speaks the protocol and misbehaves on request.

It keeps reports and measurements in memory, idempotent by ``measurement_uid`` as the real
one is, and records every request (path, headers, decoded body). ``script`` lets a test make
the next answers anything: a status, a body, a delay, garbage, a bomb. The probe side is
tested against it; ``probe collector serve`` itself is tested in the end-to-end fault test.
"""

from __future__ import annotations

import gzip
import http.server
import json
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    """A scripted answer: *status*, raw *body*, extra *headers*, after *delay_s*."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any


Script = Callable[[str, Any], Reply | None]
"""Given (path, decoded JSON body), a :class:`Reply` to send instead, or ``None`` to behave."""


class FakeCollector:
    def __init__(self) -> None:
        self.reports: dict[str, dict[str, Any]] = {}
        self.measurements: dict[str, dict[str, Any]] = {}
        self.requests: list[Seen] = []
        self.stores = 0
        """Measurements stored (never more than once per uid)."""
        self.script: Script | None = None
        self.gzip_ok = True
        self.expire_after: int | None = None
        """Refuse (400) a submission into a report that already holds this many measurements."""
        self.lock = threading.Lock()

    def handle(self, path: str, headers: dict[str, str], raw: bytes) -> Reply:
        if headers.get("content-encoding") == "gzip":
            if not self.gzip_ok:
                with self.lock:
                    self.requests.append(Seen(path, headers, None))
                return Reply(415, b'{"error": "unsupported content-encoding"}')
            raw = gzip.decompress(raw)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return Reply(400, b'{"error": "not json"}')
        with self.lock:
            self.requests.append(Seen(path, headers, body))
            if self.script is not None:
                scripted = self.script(path, body)
                if scripted is not None:
                    return scripted
            parts = path.strip("/").split("/")
            if parts == ["report"]:
                rid = (
                    f"20260101T000000Z_{body['test_name'].replace('_', '')}_{body['probe_cc']}_0_n1_"
                    + secrets.token_hex(8)
                )
                self.reports[rid] = {"envelope": body, "closed": False, "uids": []}
                return Reply(
                    200,
                    json.dumps(
                        {"report_id": rid, "backend_version": "1", "supported_formats": ["json"]}
                    ).encode(),
                )
            if len(parts) == 3 and parts[0] == "report" and parts[2] == "close":
                report = self.reports.get(parts[1])
                if report is None:
                    return Reply(404, b"{}")
                report["closed"] = True
                return Reply(200, b'{"status": "success"}')
            if len(parts) == 2 and parts[0] == "report":
                report = self.reports.get(parts[1])
                if report is None or report["closed"]:
                    return Reply(404, b'{"error": "no such open report"}')
                doc = body["content"]
                if doc.get("report_id") != parts[1]:
                    return Reply(400, b'{"error": "report_id mismatch"}')
                if self.expire_after is not None and len(report["uids"]) >= self.expire_after:
                    return Reply(400, b'{"error": "report expired"}')
                uid = doc["measurement_uid"]
                if uid not in self.measurements:
                    self.measurements[uid] = doc
                    self.stores += 1
                report["uids"].append(uid)
                return Reply(200, json.dumps({"measurement_uid": uid}).encode())
            return Reply(404, b"{}")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    collector: FakeCollector

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle and delayed ACKs hold
        # each answer ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.collector.handle(self.path, headers, raw)  # type: ignore[attr-defined]  # set below
        if reply.delay_s:
            time.sleep(reply.delay_s)
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if "Content-Length" not in reply.headers:
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
        except OSError:
            pass

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # A client that resets its connection (an upload stopped mid-request: what several
        # tests do on purpose) is no error of the server's; anything else is printed as usual.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


@contextmanager
def fake_collector() -> Iterator[tuple[FakeCollector, str]]:
    """A running :class:`FakeCollector` and its base URL."""
    collector = FakeCollector()
    server = _Server(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.collector = collector  # type: ignore[attr-defined]  # read by the handler
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield collector, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
