"""The collector's listening socket: no Nagle wait between a response's head and body."""

from __future__ import annotations

import socket

from probe.collector.server import bind


def test_the_listening_socket_has_no_nagle_delay() -> None:
    """hypercorn writes head and body apart; with Nagle the body waited ~40 ms for the client's
    delayed ACK on every kept-alive request after the first (an uploader's batch). Accepted
    sockets inherit the option from the listening one."""
    with bind("127.0.0.1", 0) as listening:
        assert listening.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        with socket.create_connection(listening.getsockname()) as client:
            client.setblocking(True)
            listening.setblocking(True)
            accepted, _ = listening.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
