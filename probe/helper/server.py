"""Running the helper with hypercorn: the one place that knows about the HTTP server.

The helper serves strangers on the open Internet, so the server must not be the weak point:

- **Every connection has a deadline for its request head.** hypercorn's ``keep_alive_timeout``
  is an idle timer that starts when a connection is accepted (after its TLS handshake, itself
  bounded by ``ssl_handshake_timeout``), stops only when a request's headers are complete, and
  starts again once the response is sent (``hypercorn/asyncio/tcp_server.py``: the timer is
  started before the first read; ``protocol/h11.py`` stops it on ``h11.Request`` and restarts
  it after the response). A connection that says nothing, half a header, or a header a byte at
  a time (slowloris) is closed after :attr:`~.app.Limits.idle_timeout_s`; so is an idle
  kept-alive one.
- **No limit counts sockets.** uvicorn, which served the helper before, has neither deadline
  (its keep-alive timer starts only after a first response) and its ``limit_concurrency``
  counts connections, so 128 silent sockets made it answer 503 to everyone. Here the one bound
  on concurrency is the application's: measurements in flight (:attr:`~.app.Limits.max_concurrency`,
  503 beyond). The body's deadline, its size and the measurement's deadline are the
  application's too (:mod:`.app`); the head is capped at :data:`MAX_HEAD_BYTES` (431).
- ``read_timeout`` stays off: a probe sends nothing while its measurement runs (up to
  :attr:`~.app.Limits.deadline_s`), and every phase in which a client could stall already has
  its own deadline.
- Nothing logs a client address: no access log, the error log goes to this module's logger
  (exceptions are caught in the application before hypercorn would log them), and no
  ``X-Forwarded-*`` header is trusted (hypercorn only does so behind its ProxyFix middleware,
  which we do not use). TLS offers HTTP/1.1 only: one protocol to bound.

The server is handed sockets the caller bound (:func:`bind`): the lab and the tests rely on it.
For that (and to know when it accepts) we call ``hypercorn.asyncio.run.worker_serve``, which
``hypercorn.asyncio.serve`` wraps without its ``sockets`` argument; pyproject pins hypercorn's
minor version for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Final, cast

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.typing import ASGIFramework
from hypercorn.utils import wrap_app
from starlette.types import ASGIApp

from probe.helper.app import HelperSettings, create_app

MAX_HEAD_BYTES: Final = 16 * 1024
"""A request head (request line and headers) still incomplete past this is refused (431)."""
LISTEN_BACKLOG: Final = 1024
GRACEFUL_SHUTDOWN_S: Final = 5.0
"""Time given to requests in flight on shutdown; idle connections are closed at once."""
H2_MAX_STREAMS: Final = 16
"""Streams per connection for a client that upgrades to cleartext HTTP/2 (h2c)."""
logger = logging.getLogger(__name__)


class _Config(Config):
    """hypercorn's configuration, with a TLS context built (and checked) up front."""

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self._tls = tls

    @property
    def ssl_enabled(self) -> bool:
        return self._tls is not None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self._tls


class HelperServer:
    """The hardened HTTP(S) server for an ASGI *app*: ``await serve(sockets=[…])`` until
    :attr:`should_exit`.

    It serves the helper's application (:func:`make_server`) and the collector's
    (:mod:`probe.collector.server`). *idle_timeout_s* is the deadline for a request's head
    (and a TLS handshake) and for an idle kept-alive connection; *tls*, when given, makes it
    HTTPS. :attr:`started` turns true once the sockets accept connections; setting
    :attr:`should_exit` (from any thread) starts a graceful shutdown: no new connections, idle
    ones closed, requests in flight given :data:`GRACEFUL_SHUTDOWN_S` to finish.
    """

    def __init__(self, app: ASGIApp, *, idle_timeout_s: float, tls: ssl.SSLContext | None = None) -> None:
        config = _Config(tls)
        config.accesslog = None
        config.errorlog = logger
        config.include_server_header = False
        config.include_date_header = False
        config.keep_alive_timeout = idle_timeout_s
        config.ssl_handshake_timeout = idle_timeout_s
        config.read_timeout = None
        config.h11_max_incomplete_size = MAX_HEAD_BYTES
        config.h2_max_concurrent_streams = H2_MAX_STREAMS
        config.h2_max_header_list_size = MAX_HEAD_BYTES
        config.backlog = LISTEN_BACKLOG
        config.graceful_timeout = GRACEFUL_SHUTDOWN_S
        self._config = config
        # starlette types its ASGI scope loosely, hypercorn with TypedDicts: the same protocol.
        self._app = wrap_app(cast(ASGIFramework, app), config.wsgi_max_body_size, "asgi")
        self.started = False
        self._should_exit = False
        self._exit: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def should_exit(self) -> bool:
        """Whether a shutdown was asked for; set it true to ask (from any thread)."""
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        loop, event = self._loop, self._exit
        if value and loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # a closed loop: the server is already gone
                loop.call_soon_threadsafe(event.set)

    async def serve(self, sockets: Sequence[socket.socket]) -> None:
        """Serve on the listening *sockets* until :attr:`should_exit`; closes them on return."""
        listening = list(sockets)
        tls = self._config.ssl_enabled
        self._exit = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self._should_exit:  # asked before the loop was known
            self._exit.set()
        try:
            await worker_serve(
                self._app,
                self._config,
                sockets=Sockets(
                    secure_sockets=listening if tls else [],
                    insecure_sockets=[] if tls else listening,
                    quic_sockets=[],
                ),
                shutdown_trigger=self._until_told_to_exit,
            )
        finally:
            self._loop = None

    async def _until_told_to_exit(self) -> None:
        # hypercorn awaits its shutdown trigger once every socket is being served.
        self.started = True
        assert self._exit is not None
        await self._exit.wait()


def make_server(
    settings: HelperSettings, *, tls_cert: Path | None = None, tls_key: Path | None = None
) -> HelperServer:
    """The helper's server for *settings*; TLS with *tls_cert* (key in it unless *tls_key*).

    Raises:
        OSError: the certificate or key cannot be read or used (``ssl.SSLError`` included).
    """
    tls = tls_context(tls_cert, tls_key) if tls_cert is not None else None
    return HelperServer(create_app(settings), idle_timeout_s=settings.limits.idle_timeout_s, tls=tls)


def tls_context(cert: Path, key: Path | None = None) -> ssl.SSLContext:
    """A server context for *cert* (a PEM chain; its key in it unless *key*): TLS 1.2 or later,
    HTTP/1.1 the one protocol offered (ALPN).

    Raises:
        OSError: the certificate or key cannot be read or used (``ssl.SSLError`` included).
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=cert, keyfile=key)
    context.set_alpn_protocols(["http/1.1"])
    return context


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on *host*:*port* (IPv6 when *host* is an IPv6 address), its
    connections without Nagle's algorithm (``TCP_NODELAY``).

    hypercorn writes a response's head and body in two writes; with Nagle's algorithm the
    second waits for the client's delayed ACK: ~40 ms on every request of a kept-alive
    connection after the first (the collector measured 44 ms, 0.9 ms without). asyncio turns
    it off on the sockets it is handed only when their ``proto`` says TCP, which a socket made
    with ``proto=0`` does not; so the socket is made with ``IPPROTO_TCP`` and the option is set
    on it too, for accepted sockets inherit it (Linux).

    Raises:
        OSError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
