"""No Nagle delay: the connections the server accepts have ``TCP_NODELAY`` set.

hypercorn writes a response's head and body in two writes; with Nagle's algorithm the second
waits for the client's delayed ACK (~40 ms a request on a kept-alive connection). Timing is a
benchmark's business: here the option is read on the very socket the server accepted,
found among this process's descriptors by its peer address.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from collections.abc import Iterator

import pytest

from probe.helper.app import HelperSettings
from probe.helper.server import bind
from tests.helper.test_server import serving


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def accepted_sockets(peer: tuple[str, int]) -> Iterator[socket.socket]:
    """Duplicates of this process's sockets connected to *peer* (closed after use)."""
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # gone meanwhile, or not a connected socket
            fd = int(name)
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            sock = socket.socket(fileno=os.dup(fd))
            with sock:
                if sock.type == socket.SOCK_STREAM and sock.getpeername()[:2] == peer:
                    yield sock


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        pytest.param(
            "::1", marks=pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
        ),
    ],
)
def test_the_listening_socket_has_no_nagle(host: str) -> None:
    with bind(host, 0) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        assert sock.proto == socket.IPPROTO_TCP  # asyncio sets TCP_NODELAY itself only then


def test_a_connection_the_server_accepted_has_no_nagle() -> None:
    with (
        serving(HelperSettings()) as (host, port, _, _),
        socket.create_connection((host, port), timeout=10) as mine,
    ):
        mine.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert mine.recv(12) == b"HTTP/1.1 200"
        found = [
            (s.getsockname()[1], s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)
            for s in accepted_sockets(mine.getsockname()[:2])
        ]
    assert found == [(port, True)]
