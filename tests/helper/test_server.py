"""The helper's server against hostile clients, on loopback: idle sockets, slow heads and bodies.

A server on the open Internet must not be shut for everyone by a few hundred connections that
say nothing: every connection gets a deadline for its request head, idle kept-alive connections
are closed, and the only limit on concurrency counts measurements in flight, not sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from probe.helper.app import HelperSettings, Limits
from probe.helper.measure import HelperConfig
from probe.helper.policy import AddressPolicy
from probe.helper.server import HelperServer, bind, make_server
from probe.steps import dns
from tests.servers.dns_server import Reply, ScriptedDNSServer
from tests.servers.http_server import http_server

LOOPBACK = AddressPolicy.allowing(["127.0.0.0/8"])
SILENT, HALF_HEADER = 300, 50
CLOSE_MARGIN_S = 6.0
"""How much later than its deadline a connection may be seen closed (a loaded 2-core machine)."""


@contextlib.contextmanager
def serving(
    settings: HelperSettings, *, host: str = "127.0.0.1", cert: Path | None = None
) -> Iterator[tuple[str, int, HelperServer, threading.Thread]]:
    """Serve the helper on *host*, port 0 (TLS with *cert*); yield (host, port, server, thread)."""
    sock = bind(host, 0)
    port = sock.getsockname()[1]
    server = make_server(settings, tls_cert=cert)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the helper did not start"
        time.sleep(0.01)
    try:
        yield host, port, server, thread
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def url_of(host: str, port: int, scheme: str = "http") -> str:
    return f"{scheme}://[{host}]:{port}/" if ":" in host else f"{scheme}://{host}:{port}/"


def enough_file_descriptors(needed: int) -> None:
    """Raise the soft RLIMIT_NOFILE to *needed* if it is lower (never above the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed}")


def connect(port: int, host: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection((host, port), timeout=10)


def closed_by_server(sock: socket.socket, within_s: float) -> float | None:
    """Seconds until the server closed *sock* (EOF or reset), reading what it sent; ``None``: still open."""
    start = time.monotonic()
    deadline = start + within_s
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        except TimeoutError:
            return None
    return None


def still_open(sock: socket.socket) -> bool:
    """No EOF, reset or data waiting on *sock*: the server holds it open."""
    readable, _, _ = select.select([sock], [], [], 0)
    return not readable


@pytest.fixture
def resolver() -> Iterator[ScriptedDNSServer]:
    with ScriptedDNSServer({"site.test": Reply(a=("127.0.0.1",))}) as server:
        yield server


def control_settings(resolver: ScriptedDNSServer, limits: Limits) -> HelperSettings:
    config = HelperConfig(resolvers=(dns.parse_resolver(resolver.address),), http_timeout=5.0)
    return HelperSettings(config=config, policy=LOOPBACK, limits=limits)


def test_idle_and_half_open_connections_do_not_shut_the_helper(resolver: ScriptedDNSServer) -> None:
    enough_file_descriptors(4 * (SILENT + HALF_HEADER) + 256)  # both ends of each, and the rest
    # A long idle deadline: every hostile socket is still held while the legitimate request runs.
    settings = control_settings(resolver, Limits(idle_timeout_s=60))
    with http_server() as site, serving(settings) as (host, port, _server, _thread):
        hostile: list[socket.socket] = []
        try:
            for _ in range(SILENT):
                hostile.append(connect(port))
            for i in range(HALF_HEADER):
                sock = connect(port)
                sock.sendall(f"POST / HTTP/1.1\r\nHost: th.test\r\nX-Half-{i}: ".encode())
                hostile.append(sock)
            request = {"http_request": site.url("/", host="site.test"), "tcp_connect": []}
            start = time.monotonic()
            reply = httpx.post(url_of(host, port), json=request, timeout=20)
            elapsed = time.monotonic() - start
            held = sum(still_open(sock) for sock in hostile)
        finally:
            for sock in hostile:
                sock.close()
    print(f"legitimate control request with {len(hostile)} hostile sockets open: {elapsed:.3f} s")
    assert (reply.status_code, reply.headers["content-type"]) == (200, "application/json")
    assert reply.json()["http_request"]["status_code"] == 200
    assert held == SILENT + HALF_HEADER  # the server held them all while it answered


HOSTILE_OPENINGS = {
    "silent": [],
    "half-header": [b"GET /whoami HTTP/1.1\r\nHost: th.test\r\nX-Slow: "],
    # Slowloris: a byte of head every 0.2 s, so a read timeout alone never fires.
    "dripping-header": [b"GET /whoami HTTP/1.1\r\nHost: th.test\r\n", *(b"X" for _ in range(200))],
}


@pytest.mark.parametrize("opening", HOSTILE_OPENINGS, ids=list(HOSTILE_OPENINGS))
def test_a_request_head_must_arrive_within_the_idle_deadline(opening: str) -> None:
    settings = HelperSettings(limits=Limits(idle_timeout_s=1.0))
    with serving(settings) as (_host, port, _server, _thread), connect(port) as sock:
        start = time.monotonic()
        closed_after: float | None = None
        for piece in HOSTILE_OPENINGS[opening]:
            try:
                sock.sendall(piece)
            except OSError:  # closed under us: what we wait for
                break
            if (closed_after := closed_by_server(sock, 0.2)) is not None:
                break
        if closed_after is None:
            closed_after = closed_by_server(sock, 1.0 + CLOSE_MARGIN_S - (time.monotonic() - start))
        else:
            closed_after = time.monotonic() - start
    assert closed_after is not None, f"a {opening} connection was still open after {1 + CLOSE_MARGIN_S} s"


def test_an_idle_kept_alive_connection_is_closed() -> None:
    settings = HelperSettings(limits=Limits(idle_timeout_s=1.0))
    with serving(settings) as (_host, port, _server, _thread), connect(port) as sock:
        sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: th.test\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            answer += sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert closed_by_server(sock, 1.0 + CLOSE_MARGIN_S) is not None


def test_a_request_body_must_arrive_within_its_deadline() -> None:
    settings = HelperSettings(limits=Limits(body_timeout_s=1.0))
    with serving(settings) as (_host, port, _server, _thread), connect(port) as sock:
        head = b"POST / HTTP/1.1\r\nHost: th.test\r\nContent-Length: 500\r\n\r\n"
        sock.sendall(head + b'{"http_request": ')
        sock.settimeout(1.0 + CLOSE_MARGIN_S)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(4096):
                answer += chunk
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body) == {"error": "the request body did not arrive within 1 s"}


def test_an_oversized_request_head_is_refused() -> None:
    with serving(HelperSettings()) as (_host, port, _server, _thread), connect(port) as sock:
        sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: th.test\r\n")
        # 8 KiB of header at a time, so that the server has read all we sent when it answers
        # (closing on unread data would reset the connection before we read the answer).
        for _ in range(64):
            sock.sendall(b"X-Big: " + b"a" * 8192 + b"\r\n")
            if select.select([sock], [], [], 0.1)[0]:
                break
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert closed_by_server(sock, CLOSE_MARGIN_S) is not None


def test_a_measurement_past_its_deadline_is_cut_there_and_answered(resolver: ScriptedDNSServer) -> None:
    # Issue 10: a 504 is a lost verdict. The steps are clipped to the deadline instead, and the
    # one still running when it passes is a timeout, like any other (504 is only a backstop).
    settings = control_settings(resolver, Limits(deadline_s=1.0))
    with http_server() as site, serving(settings) as (host, port, _server, _thread):
        # /trickle never ends: the measurement would take the whole 5 s HTTP budget.
        request = {"http_request": site.url("/trickle", host="site.test"), "tcp_connect": []}
        started = time.monotonic()
        reply = httpx.post(url_of(host, port), json=request, timeout=20)
        elapsed = time.monotonic() - started
    assert reply.status_code == 200
    assert reply.json()["http_request"]["failure"] == "generic_timeout_error"
    assert elapsed < 3.0  # 1 s and the exchange (5 s unclipped), with room for a busy machine


def test_tls_with_the_key_in_the_certificate_file(ca: trustme.CA, tmp_path: Path) -> None:
    pem = tmp_path / "th.pem"
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(pem))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    settings = HelperSettings(limits=Limits(idle_timeout_s=1.0))
    with serving(settings, cert=pem) as (host, port, _server, _thread):
        reply = httpx.get(url_of(host, port, "https") + "whoami", verify=context, timeout=10)
        with connect(port) as silent:  # never starts its handshake
            closed_after = closed_by_server(silent, 1.0 + CLOSE_MARGIN_S)
    assert reply.json()["probe_asn"] == "AS0"
    assert reply.http_version == "HTTP/1.1"
    assert closed_after is not None


def test_serves_ipv6() -> None:
    try:
        socket.socket(socket.AF_INET6).close()
        bind("::1", 0).close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    with serving(HelperSettings(), host="::1") as (host, port, _server, _thread):
        reply = httpx.get(url_of(host, port) + "whoami", timeout=10)
    assert reply.json()["probe_asn"] == "AS0"


def test_shutdown_finishes_the_request_in_flight(resolver: ScriptedDNSServer) -> None:
    settings = control_settings(resolver, Limits())
    settings = HelperSettings(
        config=HelperConfig(resolvers=settings.config.resolvers, http_timeout=1.5), policy=LOOPBACK
    )
    with http_server() as site, serving(settings) as (host, port, server, thread):
        request = {"http_request": site.url("/trickle", host="site.test"), "tcp_connect": []}

        async def post_then_stop() -> httpx.Response:
            async with httpx.AsyncClient(timeout=20) as client:
                pending = asyncio.create_task(client.post(url_of(host, port), json=request))
                await asyncio.sleep(0.5)
                server.should_exit = True
                return await pending

        reply = asyncio.run(post_then_stop())
        thread.join(15)
        stopped = not thread.is_alive()
        with pytest.raises(OSError):
            connect(port).close()
    assert reply.status_code == 200
    assert reply.json()["http_request"]["failure"] == "generic_timeout_error"
    assert stopped
