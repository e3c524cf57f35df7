"""Benchmark the probe's upload rate over loopback against raw POSTs of the same bodies.

Usage (from the repository root)::

    python bench/upload.py               # 1000 measurements (10 rounds of 100), 3 repetitions
    python bench/upload.py --n 2000 --repeat 5

Two servers, each in a process of its own so that its CPU does not compete with the client's
event loop:

- ``collector``: ``probe collector serve`` on a SQLite file (validation, storage, the lot):
  what a probe meets;
- ``null collector``: a minimal HTTP/1.1 server that answers every request with a fixed
  protocol answer and stores nothing (``TCP_NODELAY``, keep-alive): what the client side
  costs by itself.

Against each, measured in the same run with fresh measurements every time (the collector
stores each once: a re-sent one would take its cheaper duplicate path):

- ``probe``: :func:`probe.upload.upload_pending` over a store of *n* measurements in rounds of
  100 (batches of 50, a report per round, the store's upload state written per batch);
- ``raw POSTs``: an ``httpx.AsyncClient`` doing the protocol by hand on the same bodies: open a
  report per round, POST each body with its report id rewritten, close; no store, no state.

Prints measurements/s (median of *repeat*) and the probe's ratio to the raw POSTs. Asserts
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from measurements.store.store import Store, open_store
from measurements.store.uploads import StoreUploads
from probe.upload import upload_pending
from tests.upload.helpers import fill, settings

PER_ROUND = 100
ENVELOPE = ("probe_asn", "probe_cc", "software_name", "software_version", "test_name", "test_version",
            "data_format_version")  # fmt: skip


def _null_collector(listener: socket.socket) -> None:
    """Answer every request on *listener* at once: a report id, a measurement uid, or success."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                length = next(
                    (int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length:")), 0
                )
                await reader.readexactly(length)
                if path == "/report":
                    body = b'{"report_id": "20260101T000000Z_webconnectivity_PK_17557_n1_AAAAAAAAAAAAAAAA"}'
                elif path.endswith("/close"):
                    body = b'{"status": "success"}'
                else:
                    body = b'{"measurement_uid": "x"}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode() + b"\r\n\r\n" + body
                )  # fmt: skip
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, sock=listener)
        for sock in server.sockets:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await server.serve_forever()

    asyncio.run(main())


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def _start_collector(db_url: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with _listener() as probe_port:
        port = probe_port.getsockname()[1]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "probe.cli", "collector", "serve", "--listen", f"127.0.0.1:{port}",
             "--db", db_url, "--report-rate", "100000"],
            stdout=out, stderr=out,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}/"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"the collector did not start: {log.read_text()[-1000:]}")


def _bodies(store: Store) -> list[tuple[int, str]]:
    from sqlalchemy import select

    from measurements.store.tables import MeasurementRecord as M

    with store.snapshot() as conn:
        return [(r, b) for r, b in conn.execute(select(M.round_id, M.body).order_by(M.measured_at, M.id))]


async def _raw(url: str, bodies: list[tuple[int, str]]) -> None:
    """The protocol by hand: a report per round, each body POSTed with its report id, closed."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        report: dict[int, str] = {}
        for round_id, body in bodies:
            doc = json.loads(body)
            if round_id not in report:
                envelope = {k: doc[k] for k in ENVELOPE}
                answer = await client.post("report", json={**envelope, "format": "json"})
                answer.raise_for_status()
                report[round_id] = answer.json()["report_id"]
            doc["report_id"] = report[round_id]
            answer = await client.post(f"report/{report[round_id]}", json={"format": "json", "content": doc})
            answer.raise_for_status()
        for report_id in report.values():
            await client.post(f"report/{report_id}/close")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="measurements per measurement run")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, first = args.n, 0
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_DATA_HOME"] = tmp  # the stores' installation id and round locks: not the user's
        root = Path(tmp)
        collector, collector_url = _start_collector(f"sqlite:///{root / 'collector.sqlite3'}", root / "log")
        listener = _listener()
        null = multiprocessing.Process(target=_null_collector, args=(listener,), daemon=True)
        null.start()
        null_url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
        try:
            for name, url in (("collector", collector_url), ("null collector", null_url)):
                rates: dict[str, list[float]] = {"probe": [], "raw POSTs": []}
                for rep in range(args.repeat):
                    order = ("probe", "raw POSTs") if rep % 2 == 0 else ("raw POSTs", "probe")
                    for who in order:
                        path = root / f"probe-{first}.sqlite3"
                        with open_store(f"sqlite:///{path}") as store:
                            fill(
                                store, rounds=max(1, n // PER_ROUND), per_round=min(n, PER_ROUND), first=first
                            )
                            first += n
                            bodies = _bodies(store)
                            t0 = time.perf_counter()
                            if who == "probe":
                                ledger = StoreUploads(store)
                                summary = asyncio.run(upload_pending(ledger, settings(url, batch_size=50)))
                                assert summary.uploaded == len(bodies), summary
                            else:
                                asyncio.run(_raw(url, bodies))
                            rates[who].append(len(bodies) / (time.perf_counter() - t0))
                probe, raw = statistics.median(rates["probe"]), statistics.median(rates["raw POSTs"])
                size = statistics.mean(len(b) for _, b in bodies) / 1024
                print(
                    f"{name:15} probe {probe:7.0f} measurements/s   raw POSTs {raw:7.0f}/s   "
                    f"ratio {probe / raw:.2f}   ({n} measurements of {size:.1f} KiB, median of {args.repeat})"
                )
        finally:
            collector.terminate()
            collector.wait(10)
            null.terminate()


if __name__ == "__main__":
    main()
