"""One connection under capture: connect, maybe lower the TTL, send a ClientHello, wait, linger.

The connection is the operating system's own (an asyncio socket), so the SYN, the SYN-ACK and
the ClientHello are what any client sends; the ClientHello is the stdlib's (OpenSSL through an
``ssl.MemoryBIO``), written once the connection is up, so the IP TTL can be lowered on the
connected socket first (``IP_TTL``) — the handshake itself travels at the normal TTL. The TLS
handshake then runs to its end, or to its failure; certificates are not verified: this
measurement asks who resets the connection, not whether the certificate is right (the TLS step
of ``probe measure`` does that).

The capture starts before the SYN and stops before the socket is closed, so our own teardown
(and the peer's answer to it) is never mistaken for the network's.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from probe.raw.capture import FlowCapture, route_interface
from probe.raw.packets import Flow, Frame
from probe.steps import failures

ALPN = ("h2", "http/1.1")
"""What a browser offers: the ClientHello should look like the real thing."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one connection did, and the packets it captured."""

    interface: str | None
    flow: Flow | None
    frames: tuple[Frame, ...]
    capture_failure: str | None
    connect_failure: str | None
    failure: str | None
    """Connect or handshake failure; ``None`` when the handshake completed, or when waiting was
    cut short by an ICMP error (``until_icmp``)."""
    client_hello_bytes: int
    server_answered: bool
    syn_ns: int | None
    client_hello_ns: int | None


@dataclass(frozen=True, slots=True)
class Settings:
    """How one attempt runs."""

    connect_timeout_s: float
    wait_s: float
    """Bound on the handshake (with ``until_icmp``: on the wait for the first ICMP error)."""
    linger_s: float
    """Keep capturing this long after the outcome, for late or repeated resets."""
    ttl: int | None = None
    """The ClientHello's IP TTL; ``None``: the system's."""
    until_icmp: bool = False
    interface: str | None = None
    """Capture here; ``None``: on the interface of the route to the endpoint."""


async def run(ip: str, port: int, server_name: str, settings: Settings) -> Attempt:
    """Connect to *ip*:*port* and send a ClientHello for *server_name*, capturing every packet."""
    interface = settings.interface or route_interface(ip)
    if interface is None:
        return _failed(None, None, capture=failures.NETWORK_UNREACHABLE)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.bind(("0.0.0.0", 0))
        flow = Flow(ip, port, int(sock.getsockname()[1]))
        capture = FlowCapture(interface, flow)
        try:
            capture.start()
        except OSError as exc:
            return _failed(interface, flow, capture=failures.classify_connect(exc))
        try:
            return await _exchange(sock, capture, server_name, settings)
        finally:
            capture.stop()
    finally:
        _close(sock, settings.ttl)


async def _exchange(
    sock: socket.socket, capture: FlowCapture, server_name: str, settings: Settings
) -> Attempt:
    loop = asyncio.get_running_loop()
    flow = capture.flow
    syn_ns = time.time_ns()
    try:
        async with asyncio.timeout(settings.connect_timeout_s):
            await loop.sock_connect(sock, (flow.remote_ip, flow.remote_port))
    except failures.NETWORK_EXCEPTIONS as exc:
        connect_failure = failures.classify_connect(exc)
        await asyncio.sleep(settings.linger_s)  # a reset to the SYN may have company
        return Attempt(
            interface=capture.interface,
            flow=flow,
            frames=capture.stop(),
            capture_failure=None,
            connect_failure=connect_failure,
            failure=connect_failure,
            client_hello_bytes=0,
            server_answered=False,
            syn_ns=syn_ns,
            client_hello_ns=None,
        )
    if settings.ttl is not None:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, settings.ttl)
    handshake = _Handshake(loop, sock, server_name)
    hello = handshake.client_hello()
    hello_ns = time.time_ns()
    task = asyncio.ensure_future(handshake.run(hello))
    waiters: set[asyncio.Future[Any]] = {task}
    if settings.until_icmp:
        waiters.add(asyncio.ensure_future(capture.icmp_seen.wait()))
    try:
        done, _ = await asyncio.wait(waiters, timeout=settings.wait_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
    failure: str | None = handshake.failure
    if task not in done:
        failure = None if capture.icmp_seen.is_set() else failures.GENERIC_TIMEOUT
    await asyncio.sleep(settings.linger_s)
    return Attempt(
        interface=capture.interface,
        flow=flow,
        frames=capture.stop(),
        capture_failure=None,
        connect_failure=None,
        failure=failure,
        client_hello_bytes=len(hello),
        server_answered=handshake.answered,
        syn_ns=syn_ns,
        client_hello_ns=hello_ns,
    )


class _Handshake:
    """A TLS client handshake over a connected non-blocking socket, through memory BIOs."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, server_name: str) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(list(ALPN))
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname=server_name)
        self._loop, self._sock = loop, sock
        self.answered = False
        self.failure: str | None = None

    def client_hello(self) -> bytes:
        """The ClientHello the handshake opens with (not sent yet)."""
        with contextlib.suppress(ssl.SSLWantReadError):
            self._tls.do_handshake()
        return self._outgoing.read()

    async def run(self, hello: bytes) -> None:
        """Send *hello* and drive the handshake to its end; a failure lands in ``failure``."""
        try:
            await self._loop.sock_sendall(self._sock, hello)
            while True:
                try:
                    self._tls.do_handshake()
                    return
                except ssl.SSLWantReadError:
                    pending = self._outgoing.read()
                    if pending:
                        await self._loop.sock_sendall(self._sock, pending)
                data = await self._loop.sock_recv(self._sock, 65536)
                if data:
                    self.answered = True
                    self._incoming.write(data)
                else:
                    self._incoming.write_eof()
        except failures.NETWORK_EXCEPTIONS as exc:
            self.failure = failures.classify_tls_handshake(exc)


def _failed(interface: str | None, flow: Flow | None, *, capture: str) -> Attempt:
    return Attempt(
        interface=interface,
        flow=flow,
        frames=(),
        capture_failure=capture,
        connect_failure=None,
        failure=None,
        client_hello_bytes=0,
        server_answered=False,
        syn_ns=None,
        client_hello_ns=None,
    )


def _close(sock: socket.socket, ttl: int | None) -> None:
    """Close with the normal TTL again, so the server hears of it even past a limiting TTL."""
    with contextlib.suppress(OSError):
        if ttl is not None:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, -1)  # -1: the system default
    sock.close()
