"""Loopback TCP and TLS servers with scripted misbehaviour, each in a background thread.

:func:`connection_server` is the accept loop every loopback server here shares: it gives each
connection to a handler. :func:`tcp_server` scripts the common behaviours (what the server
does once a client connects):

- ``accept``: accept and hold the connection open, saying nothing;
- ``reset``: accept, then close with SO_LINGER 0, so the kernel sends a RST;
- ``reset_after_hello``: read the ClientHello (first bytes), then RST — an SNI censor;
- ``close_after_hello``: read the ClientHello, then close normally (FIN);
- ``tls``: complete a TLS handshake with the given certificate and hold the connection.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

import trustme

Behaviour = Literal["accept", "reset", "reset_after_hello", "close_after_hello", "tls"]
Handler = Callable[[socket.socket], None]


def closed_port() -> int:
    """A loopback port on which nothing listens (connects are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rst_close(conn: socket.socket) -> None:
    """Close *conn* with SO_LINGER 0: the kernel sends a RST instead of a FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def fin_close(conn: socket.socket) -> None:
    """Close *conn* with a FIN the client is sure to see as one.

    Closing a socket whose receive queue holds unread bytes makes the kernel send a RST, so a
    client that wrote anything after its request (an HTTP/2 SETTINGS acknowledgement, a
    WINDOW_UPDATE) would see a reset, or not, depending on timing. Send the FIN first, then read
    until the client closes too (or the socket's timeout passes), then close.
    """
    try:
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):
            pass
    except OSError:
        pass
    conn.close()


def read_client_hello(conn: socket.socket) -> bytes:
    """Read one whole TLS record, so closing afterwards leaves no unread data (which would RST)."""
    data = b""
    while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@contextmanager
def connection_server(
    handle: Handler,
    *,
    host: str = "127.0.0.1",
    threaded: bool = False,
    stop: threading.Event | None = None,
) -> Iterator[int]:
    """Accept on *host*, port 0, and give each connection to *handle*; yields the port.

    *handle* runs in the accept thread, or in a thread per connection when *threaded*. An
    ``OSError`` from it (the client went away first: the point of most scenarios) is ignored.
    Every connection is closed, and every thread joined, on exit; *stop* (set on exit) lets
    long-running handlers notice.
    """
    stop = stop or threading.Event()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen(64)
    listener.settimeout(0.05)
    held: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def run(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):  # includes ssl.SSLError
            handle(conn)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(5)
            held.append(conn)
            if threaded:
                thread = threading.Thread(target=run, args=(conn,), daemon=True)
                thread.start()
                threads.append(thread)
            else:
                run(conn)

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        acceptor.join(timeout=5)
        for thread in threads:
            thread.join(timeout=5)
        listener.close()
        for conn in held:
            conn.close()


@contextmanager
def tcp_server(behaviour: Behaviour, cert: trustme.LeafCert | None = None) -> Iterator[int]:
    """Serve *behaviour* on 127.0.0.1; yields the port. All sockets are closed on exit."""
    context: ssl.SSLContext | None = None
    wrapped: list[ssl.SSLSocket] = []
    if behaviour == "tls":
        assert cert is not None, "a tls server needs a certificate"
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)

    def handle(conn: socket.socket) -> None:
        if behaviour == "reset":
            rst_close(conn)
        elif behaviour in ("reset_after_hello", "close_after_hello"):
            read_client_hello(conn)
            if behaviour == "reset_after_hello":
                rst_close(conn)
            else:
                conn.close()
        elif context is not None:
            wrapped.append(context.wrap_socket(conn, server_side=True))
        # accept: hold the connection; connection_server closes it on exit

    try:
        with connection_server(handle) as port:
            yield port
    finally:
        for sock in wrapped:
            sock.close()
