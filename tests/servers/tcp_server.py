"""Loopback TCP and TLS servers with scripted misbehaviour, each in a background thread.

Behaviours (what the server does once a client connects):

- ``accept``: accept and hold the connection open, saying nothing;
- ``reset``: accept, then close with SO_LINGER 0, so the kernel sends a RST;
- ``reset_after_hello``: read the ClientHello (first bytes), then RST — an SNI censor;
- ``close_after_hello``: read the ClientHello, then close normally (FIN);
- ``tls``: complete a TLS handshake with the given certificate and hold the connection.
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import trustme

Behaviour = Literal["accept", "reset", "reset_after_hello", "close_after_hello", "tls"]


def closed_port() -> int:
    """A loopback port on which nothing listens (connects are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_client_hello(conn: socket.socket) -> bytes:
    """Read one whole TLS record, so closing afterwards leaves no unread data (which would RST)."""
    data = b""
    while len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def _rst_close(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


@contextmanager
def tcp_server(behaviour: Behaviour, cert: trustme.LeafCert | None = None) -> Iterator[int]:
    """Serve *behaviour* on 127.0.0.1; yields the port. All sockets are closed on exit."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()
    held: list[socket.socket] = []
    context: ssl.SSLContext | None = None
    if behaviour == "tls":
        assert cert is not None, "a tls server needs a certificate"
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)

    def handle(conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            if behaviour == "reset":
                _rst_close(conn)
            elif behaviour in ("reset_after_hello", "close_after_hello"):
                _read_client_hello(conn)
                if behaviour == "reset_after_hello":
                    _rst_close(conn)
                else:
                    conn.close()
            elif context is not None:
                held.append(context.wrap_socket(conn, server_side=True))
            else:
                held.append(conn)
        except (OSError, ssl.SSLError):
            conn.close()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            handle(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        for sock in held:
            sock.close()
