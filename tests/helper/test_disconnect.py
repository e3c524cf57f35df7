"""A client that goes away in the middle of its body is no error of the helper's.

starlette raises ``ClientDisconnect`` from the body's stream; it must not become a 500 and an
``internal error`` log line (those mean a bug of ours). The request is known to have reached
the application when hypercorn answers ``100 Continue`` (it does once the head is parsed and
the request handed over); the server's graceful shutdown then waits for the request to end, so
what it logged is all there once the helper has stopped.
"""

from __future__ import annotations

import logging
import socket

import pytest

from probe.helper.app import HelperSettings
from tests.servers.helper_server import running_helper

CONTINUE = b"HTTP/1.1 100 \r\n\r\n"
CUT_SHORT = b"HTTP/1.1 400 \r\ncontent-length: 0\r\nconnection: close\r\n\r\n"


@pytest.mark.parametrize(
    "path",
    [
        "/",  # the control request (read_body)
        "/x/throughput",  # the throughput route reads its body its own way
    ],
)
def test_a_client_gone_mid_body_is_not_an_internal_error(path: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with running_helper(HelperSettings()) as url:
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            head = f"POST {path} HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n"
            sock.sendall(head.encode())
            received = b""
            while not received.endswith(b"\r\n\r\n") and (chunk := sock.recv(65536)):
                received += chunk
            assert received == CONTINUE
            sock.sendall(b'{"http_request": "http://exa')  # a part of the body, then gone
            sock.shutdown(socket.SHUT_WR)
            after = b""
            while chunk := sock.recv(65536):  # whatever the server still says, until it closes
                after += chunk
    # hypercorn's own answer to a body cut short (h11 sees the end of the stream first): the
    # application's answer, whatever it is, reaches nobody; what matters is what it logged.
    assert after == CUT_SHORT
    server_side = [record for record in caplog.records if record.name.startswith(("probe", "hypercorn"))]
    assert [record.getMessage() for record in server_side if record.levelno >= logging.WARNING] == []
