"""Issue 12: the page is fetched over the connection the TCP and TLS steps measured.

A loopback server counts the TCP connections it accepts and the TLS handshakes it completes:
one measured endpoint is one of each — the page fetched as HTTP/1.1, or as HTTP/2 when the
server chose ``h2`` in the handshake — unless the server closed the measured connection before
the request could go over it (then a new one, not a false failure).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import pytest
import trustme

from probe import webconnectivity
from probe.model import HTTPTransaction, Measurement
from probe.steps import bodies, http, tcp, tls
from probe.steps.clock import relative_clock
from probe.steps.dns import ResolverSpec
from probe.webconnectivity import MeasureConfig
from tests.servers.dns_server import Reply, ScriptedDNSServer
from tests.servers.tcp_server import connection_server, fin_close, rst_close

BODY = b"<html><title>one handshake</title></html>"


@dataclass
class Counting:
    """What a counting server saw."""

    port: int = 0
    connections: int = 0
    handshakes: int = 0
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def counting_server(
    cert: trustme.LeafCert | None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    alpn: tuple[str, ...] = ("http/1.1",),
    close_first_after_handshake: bool = False,
    handshake_delay: float = 0.0,
    after_request: str = "answer",
) -> Iterator[Counting]:
    """Answer every request with :data:`BODY`, counting connections, handshakes and requests."""
    seen = Counting()
    context: ssl.SSLContext | None = None
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if alpn:
            context.set_alpn_protocols(list(alpn))
        cert.configure_cert(context)

    def handle(raw: socket.socket) -> None:
        with seen.lock:
            seen.connections += 1
            first = seen.connections == 1
        raw.settimeout(5)
        time.sleep(handshake_delay)
        conn = context.wrap_socket(raw, server_side=True) if context is not None else raw
        with conn:
            with seen.lock:
                seen.handshakes += context is not None
            if close_first_after_handshake and first:
                return  # closed, as by a server whose idle timeout ran out before any request
            if isinstance(conn, ssl.SSLSocket) and conn.selected_alpn_protocol() == "h2":
                _answer_h2(conn, seen, after_request)
                return
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return  # the client closed it without a request (an h2 handshake, say)
                head += chunk
            with seen.lock:
                seen.requests += 1
            if after_request == "reset":
                rst_close(conn)
                return
            if after_request == "close":
                fin_close(conn)
                return
            if after_request == "hang":
                time.sleep(2)
                return
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
                + BODY
            )

    if port:
        # connection_server binds port 0: serve a second address on a given port by hand.
        with _server_on(handle, host, port):
            seen.port = port
            yield seen
        return
    with connection_server(handle, host=host, threaded=True) as bound:
        seen.port = bound
        yield seen


H2_HEADERS = (("content-type", "text/html"), ("x-served-over", "h2"))


def _answer_h2(conn: ssl.SSLSocket, seen: Counting, after_request: str) -> None:
    """Speak HTTP/2 on *conn*: answer every request stream with :data:`BODY` (or reset, close or
    hang as *after_request* says), until the client closes."""
    h2conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    h2conn.initiate_connection()
    conn.sendall(h2conn.data_to_send())
    while data := conn.recv(65536):
        for event in h2conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                with seen.lock:
                    seen.requests += 1
                if after_request == "reset":
                    rst_close(conn)
                    return
                if after_request == "close":
                    fin_close(conn)
                    return
                if after_request == "hang":
                    time.sleep(2)
                    return
                headers = [(":status", "200"), *H2_HEADERS, ("content-length", str(len(BODY)))]
                h2conn.send_headers(event.stream_id, headers)
                h2conn.send_data(event.stream_id, BODY, end_stream=True)
        conn.sendall(h2conn.data_to_send())


@contextmanager
def _server_on(handle: object, host: str, port: int) -> Iterator[None]:
    listener = socket.create_server((host, port))
    listener.settimeout(0.05)
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=_quietly, args=(handle, conn))
            thread.start()
            threads.append(thread)

    accepting = threading.Thread(target=serve)
    accepting.start()
    try:
        yield
    finally:
        stop.set()
        accepting.join()
        for thread in threads:
            thread.join()
        listener.close()


def _quietly(handle: object, conn: socket.socket) -> None:
    try:
        handle(conn)  # type: ignore[operator]  # the handler of counting_server
    except OSError:
        pass
    finally:
        conn.close()


def measure(url: str, addresses: tuple[str, ...], ca_file: Path | None) -> Measurement:
    with ScriptedDNSServer({"example.com": Reply(a=addresses)}) as resolver:
        config = MeasureConfig(
            resolvers=(ResolverSpec("udp", resolver.host, resolver.port),),
            query_types=("A",),
            use_system_resolver=False,
            allow_loopback=True,
            ca_file=ca_file,
        ).with_timeout(3.0)
        return asyncio.run(webconnectivity.measure(url, config=config))


@pytest.mark.parametrize(("alpn", "chosen"), [(("http/1.1",), "http/1.1"), ((), "")])
def test_one_tls_handshake_per_https_endpoint(
    ca: trustme.CA, ca_file: Path, alpn: tuple[str, ...], chosen: str
) -> None:
    with counting_server(ca.issue_cert("example.com"), alpn=alpn) as server:
        m = measure(f"https://example.com:{server.port}/", ("127.0.0.1",), ca_file)
    keys = m.test_keys
    assert (server.connections, server.handshakes, server.requests) == (1, 1, 1)
    [handshake] = keys.tls_handshakes
    [transaction] = keys.requests
    assert handshake.failure is None
    assert handshake.negotiated_protocol == chosen
    assert transaction.failure is None
    assert transaction.response is not None
    assert transaction.response.body == BODY
    assert transaction.response.title == "one handshake"
    assert transaction.alpn == chosen  # what the server chose, seen on the connection fetched over
    assert transaction.transaction_id == handshake.transaction_id
    assert handshake.t <= transaction.t0  # the transaction's time holds no handshake


def test_one_connection_per_http_endpoint() -> None:
    with counting_server(None) as server:
        m = measure(f"http://example.com:{server.port}/", ("127.0.0.1",), None)
    assert (server.connections, server.handshakes, server.requests) == (1, 0, 1)
    [transaction] = m.test_keys.requests
    assert transaction.failure is None
    assert transaction.alpn == ""


def test_a_server_that_chose_h2_is_fetched_over_the_measured_connection_in_http2(
    ca: trustme.CA, ca_file: Path
) -> None:
    """The handshake offers a browser's ``h2, http/1.1``; the page comes over that connection as
    HTTP/2, as OONI's Web Connectivity fetches it (one handshake, the protocol it agreed)."""
    assert bodies.SPEAKS_H2
    with counting_server(ca.issue_cert("example.com"), alpn=("h2", "http/1.1")) as server:
        m = measure(f"https://example.com:{server.port}/", ("127.0.0.1",), ca_file)
    assert (server.connections, server.handshakes, server.requests) == (1, 1, 1)
    [handshake] = m.test_keys.tls_handshakes
    [transaction] = m.test_keys.requests
    assert handshake.negotiated_protocol == "h2"
    assert transaction.failure is None
    assert transaction.alpn == "h2"
    assert transaction.transaction_id == handshake.transaction_id
    assert transaction.response is not None
    assert transaction.response.code == 200
    assert transaction.response.body == BODY
    assert transaction.response.title == "one handshake"
    assert transaction.response.headers_list == (*H2_HEADERS, ("content-length", str(len(BODY))))
    assert transaction.x_body_bytes_received == len(BODY)


def test_a_measured_connection_the_server_closed_is_not_a_failure(ca: trustme.CA, ca_file: Path) -> None:
    """The first endpoint's server closes its connection while a slow second one is measured."""
    cert = ca.issue_cert("example.com")
    with (
        counting_server(cert, close_first_after_handshake=True) as first,
        counting_server(cert, host="127.0.0.2", port=first.port, handshake_delay=0.5) as second,
    ):
        m = measure(f"https://example.com:{first.port}/", ("127.0.0.1", "127.0.0.2"), ca_file)
    assert [h.failure for h in m.test_keys.tls_handshakes] == [None, None]
    [transaction] = m.test_keys.requests
    assert transaction.address == f"127.0.0.1:{first.port}"
    assert transaction.failure is None
    assert (first.connections, first.handshakes, first.requests) == (2, 2, 1)
    assert (second.connections, second.handshakes, second.requests) == (1, 1, 0)


async def _fetch(port: int, ca_file: Path, *, handed: bool) -> HTTPTransaction:
    """Fetch ``https://example.com:PORT/`` at 127.0.0.1 over a handed connection or a new one."""
    contexts = tls.load_client_contexts(ca_file)
    clock = relative_clock()
    url = f"https://example.com:{port}/"
    if not handed:
        return await http.fetch(
            url, address="127.0.0.1", ssl_context=contexts.httpx, timeout=1.0, clock=clock
        )
    _, connection = await tcp.connect("127.0.0.1", port, timeout=1.0, clock=clock)
    assert connection is not None
    try:
        handshake = await tls.handshake(
            connection,
            address=f"127.0.0.1:{port}",
            server_name="example.com",
            ssl_context=contexts.handshake,
            timeout=1.0,
            clock=clock,
        )
        assert handshake.failure is None
        return await http.fetch(
            url,
            address="127.0.0.1",
            ssl_context=contexts.httpx,
            timeout=1.0,
            clock=clock,
            connection=connection,
        )
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("after_request", "failure"),
    [("reset", "connection_reset"), ("close", "eof_error"), ("hang", "generic_timeout_error")],
)
def test_a_handed_connection_fails_as_a_new_one_does(
    ca: trustme.CA, ca_file: Path, after_request: str, failure: str
) -> None:
    """The failure strings of the HTTP step do not depend on who opened the connection."""
    with counting_server(ca.issue_cert("example.com"), after_request=after_request) as server:
        handed = asyncio.run(_fetch(server.port, ca_file, handed=True))
        new = asyncio.run(_fetch(server.port, ca_file, handed=False))
    assert (handed.failure, new.failure) == (failure, failure)
    assert handed.response is None and new.response is None
    assert (server.handshakes, server.requests) == (2, 2)


@pytest.mark.parametrize(
    ("after_request", "failure"), [("reset", "connection_reset"), ("close", "eof_error")]
)
def test_an_h2_connection_fails_as_an_http1_one_does(
    ca: trustme.CA, ca_file: Path, after_request: str, failure: str
) -> None:
    """Over HTTP/2 the HTTP step records the failure strings it records over HTTP/1.1."""
    with counting_server(
        ca.issue_cert("example.com"), alpn=("h2", "http/1.1"), after_request=after_request
    ) as server:
        m = measure(f"https://example.com:{server.port}/", ("127.0.0.1",), ca_file)
    [transaction] = m.test_keys.requests
    assert (transaction.failure, transaction.response) == (failure, None)
    assert m.test_keys.http_experiment_failure == failure
    assert (server.connections, server.handshakes, server.requests) == (1, 1, 1)
