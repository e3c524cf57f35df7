"""Running the helper with uvicorn: the one place that knows about the HTTP server.

The access log is off and uvicorn trusts no ``X-Forwarded-*`` header: no client address is
written anywhere. uvicorn's own ``limit_concurrency`` bounds open connections (503 beyond it)
on top of the application's bound on measurements in flight.
"""

from __future__ import annotations

import socket
from pathlib import Path

import uvicorn

from probe.helper.app import HelperSettings, create_app

CONNECTION_FACTOR = 4
"""Open connections allowed per measurement slot (keep-alive, whoami, refused requests)."""
MIN_CONNECTIONS = 64
"""uvicorn answers 503 to every request while more connections than this are open, so a
small burst must stay under it: the application's own bound then answers the excess."""


def make_server(
    settings: HelperSettings, *, tls_cert: Path | None = None, tls_key: Path | None = None
) -> uvicorn.Server:
    """A uvicorn server for the helper; run it with ``await server.serve(sockets=[…])``."""
    config = uvicorn.Config(
        create_app(settings),
        access_log=False,
        proxy_headers=False,
        server_header=False,
        date_header=False,
        log_config=None,
        log_level="warning",
        lifespan="off",
        limit_concurrency=max(MIN_CONNECTIONS, settings.limits.max_concurrency * CONNECTION_FACTOR),
        timeout_keep_alive=5,
        timeout_graceful_shutdown=5,
        h11_max_incomplete_event_size=16 * 1024,
        ssl_certfile=str(tls_cert) if tls_cert else None,
        ssl_keyfile=str(tls_key) if tls_key else None,
    )
    return uvicorn.Server(config)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on *host*:*port* (IPv6 when *host* is an IPv6 address).

    Raises:
        OSError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
