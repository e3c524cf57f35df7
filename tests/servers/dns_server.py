"""A scripted DNS server on loopback: UDP and TCP on one port, and DNS-over-HTTPS on another.

Each query name maps to a :class:`Reply`, what the server does when asked about that name;
names not in the script get the *default* (NXDOMAIN). A reply can carry an rcode, A and AAAA
addresses (answered only to a query of that type, so an A-only name gives NOERROR with no
answer to AAAA), a CNAME chain (the addresses then belong to its last name), or an *action*:

- ``reply``: a well-formed response (the default);
- ``silent``: say nothing (UDP), hold the connection open (TCP, DoH);
- ``garbage``: the query's ID followed by bytes that do not parse as a DNS message;
- ``wrong_id``: a well-formed response whose ID is not the query's;
- ``truncated``: over UDP, the response with the TC bit set and its answer section left out
  (too big for a datagram, as a resolver says it); over TCP and DoH, the full response;
- ``truncated_cut``: over UDP, the full response with TC set and cut off in the middle of
  its answer section (it no longer parses); over TCP and DoH, the full response.

The DoH endpoint (when the server is given a certificate) answers ``POST /dns-query`` from the
same script; ``/status-500`` answers HTTP 500 and ``/wrong-type`` a 200 ``text/html`` page.

Usage::

    with ScriptedDNSServer({"example.com": Reply(a=("192.0.2.1",))}) as server:
        ...  # query 127.0.0.1:server.port over UDP or TCP
"""

from __future__ import annotations

import errno
import http.server
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import trustme

Action = Literal["reply", "silent", "garbage", "wrong_id", "truncated", "truncated_cut"]
_POLL = 0.05


@dataclass(frozen=True)
class Reply:
    """What the server does when asked about one name."""

    rcode: str = "NOERROR"
    a: tuple[str, ...] = ()
    aaaa: tuple[str, ...] = ()
    cname: tuple[str, ...] = ()
    """A chain: the name is an alias of ``cname[0]``, which is one of ``cname[1]``, …"""
    ttl: int = 300
    action: Action = "reply"


NXDOMAIN = Reply(rcode="NXDOMAIN")


class ScriptedDNSServer:
    """UDP and TCP on ``host:port`` (one port number for both), plus DoH when given *cert*.

    Every socket and thread is closed and joined when the ``with`` block ends.
    """

    def __init__(
        self,
        script: Mapping[str, Reply],
        *,
        host: str = "127.0.0.1",
        cert: trustme.LeafCert | None = None,
        default: Reply = NXDOMAIN,
    ) -> None:
        self.script = {name.lower().rstrip("."): reply for name, reply in script.items()}
        self.default = default
        self.host = host
        self.cert = cert
        self.queries: list[tuple[str, dns.message.Message]] = []
        """``(transport, query)`` for every query that parsed: ``udp``, ``tcp`` or ``doh``."""
        self.port = 0
        self.doh_port = 0
        self.stopped = threading.Event()
        """Set when the ``with`` block ends: anything holding a client open lets go then."""
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._doh: _DoHServer | None = None

    @property
    def address(self) -> str:
        """``host:port`` as a resolver address (IPv6 in brackets)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def doh_url(self, path: str = "/dns-query") -> str:
        """The DoH URL of *path* (the certificate must name ``self.host``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.doh_port}{path}"

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        """The scripted reply to the query *wire* (``None``: say nothing)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if not query.question:
            return None
        self.queries.append((transport, query))
        question = query.question[0]
        reply = self.script.get(question.name.to_text(omit_final_dot=True).lower(), self.default)
        if reply.action == "silent":
            return None
        if reply.action == "garbage":
            # A header announcing one question and one answer, then a label type that does not exist.
            return wire[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00" + b"\xff\xff\xff\xff"
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        response.set_rcode(dns.rcode.from_text(reply.rcode))
        owner = question.name
        for target in reply.cname:
            alias = dns.name.from_text(target)
            response.answer.append(dns.rrset.from_text(owner, reply.ttl, "IN", "CNAME", alias.to_text()))
            owner = alias
        addresses = {dns.rdatatype.A: reply.a, dns.rdatatype.AAAA: reply.aaaa}.get(question.rdtype, ())
        if addresses:
            response.answer.append(
                dns.rrset.from_text_list(owner, reply.ttl, "IN", question.rdtype, list(addresses))
            )
        if reply.action == "wrong_id":
            response.id = (query.id + 1) & 0xFFFF
        if reply.action in ("truncated", "truncated_cut") and transport == "udp":
            response.flags |= dns.flags.TC
            if reply.action == "truncated":
                response.answer.clear()
            else:
                return response.to_wire(want_shuffle=False)[:-3]
        return response.to_wire(want_shuffle=False)  # answers in script order, so tests can say it

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> ScriptedDNSServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        udp, tcp = _bind_pair(family, self.host)
        self._sockets += [udp, tcp]
        self.port = int(udp.getsockname()[1])
        self._spawn(self._serve_udp, udp)
        self._spawn(self._serve_tcp, tcp)
        if self.cert is not None:
            self._doh = _DoHServer(self, self.cert, family)
            self.doh_port = int(self._doh.server_address[1])
            self._spawn(self._doh.serve_forever, _POLL)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stopped.set()
        if self._doh is not None:
            self._doh.shutdown()
        for thread in self._threads:
            thread.join(timeout=5)
        if self._doh is not None:
            self._doh.server_close()  # joins the request threads
        for sock in self._sockets:
            sock.close()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _serve_udp(self, sock: socket.socket) -> None:
        sock.settimeout(_POLL)
        while not self.stopped.is_set():
            try:
                wire, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            reply = self.answer(wire, "udp")
            if reply is not None:
                sock.sendto(reply, peer)

    def _serve_tcp(self, listener: socket.socket) -> None:
        listener.settimeout(_POLL)
        while not self.stopped.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            self._sockets.append(conn)
            self._spawn(self._serve_connection, conn)

    def _serve_connection(self, conn: socket.socket) -> None:
        conn.settimeout(_POLL)
        buffer = b""
        while not self.stopped.is_set():
            try:
                chunk = conn.recv(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while len(buffer) >= 2 and len(buffer) >= 2 + int.from_bytes(buffer[:2], "big"):
                size = int.from_bytes(buffer[:2], "big")
                wire, buffer = buffer[2 : 2 + size], buffer[2 + size :]
                reply = self.answer(wire, "tcp")
                if reply is not None:
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)


def _bind_pair(family: socket.AddressFamily, host: str) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket bound to the same free port (retrying if the TCP one is taken)."""
    for _ in range(50):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        udp.bind((host, 0))
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            tcp.bind((host, udp.getsockname()[1]))
        except OSError as exc:
            udp.close()
            tcp.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        tcp.listen(16)
        return udp, tcp
    raise RuntimeError("no free port for both UDP and TCP")


class _DoHServer(http.server.ThreadingHTTPServer):
    """HTTPS on a port of its own; the TLS handshake runs in each request's thread."""

    daemon_threads = False  # so that server_close() joins them

    def __init__(self, dns_server: ScriptedDNSServer, cert: trustme.LeafCert, family: int) -> None:
        self.address_family = family
        self.dns_server = dns_server
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.context)
        super().__init__((dns_server.host, 0), _DoHHandler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(5)
        with self.context.wrap_socket(request, server_side=True) as tls:
            super().finish_request(tls, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away or rejected our certificate is not a server error."""


class _DoHHandler(http.server.BaseHTTPRequestHandler):
    server: _DoHServer

    def do_POST(self) -> None:
        wire = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path == "/status-500":
            self._send(500, "text/plain", b"internal error")
        elif self.path == "/wrong-type":
            self._send(200, "text/html", b"<html>not dns</html>")
        elif self.path == "/dns-query":
            reply = self.server.dns_server.answer(wire, "doh")
            if reply is None:  # silent: hold the request until the client gives up or we stop
                self.server.dns_server.stopped.wait(10)
                self.close_connection = True
                return
            self._send(200, "application/dns-message", reply)
        else:
            self._send(404, "text/plain", b"not found")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows stderr of failing tests, and this would drown it."""
