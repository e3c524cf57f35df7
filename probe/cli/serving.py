"""What ``probe helper serve`` and ``probe collector serve`` share: the address, the socket, the signals.

Both build a :class:`~probe.helper.server.HelperServer` for their application, bind the
``--listen`` address, say where they serve on stderr and serve until SIGINT or SIGTERM. The
server and its dependencies are imported when a command serves, never for ``--help``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from probe.errors import ConfigError

if TYPE_CHECKING:  # hypercorn and starlette load when a command serves, not for --help
    from probe.helper.server import HelperServer


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` → (host, port).

    Raises:
        ConfigError: no port, a port out of range, or a host that is not an IP address.
    """
    host, sep, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"--listen {text}: expected HOST:PORT with a port in 0-65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"--listen {text}: the host must be an IP address") from None
    return host, int(port_text)


def check_options(listen: str, tls_cert: Path | None, tls_key: Path | None) -> tuple[str, int]:
    """The ``--listen`` address as (host, port), once the TLS options are consistent.

    Raises:
        ConfigError: a malformed ``--listen``, or ``--tls-key`` without ``--tls-cert``.
    """
    host, port = parse_listen(listen)
    if tls_key is not None and tls_cert is None:
        raise ConfigError("--tls-key needs --tls-cert")
    return host, port


def serve(
    name: str,
    make_server: Callable[[], HelperServer],
    *,
    listen: str,
    tls_cert: Path | None,
    detail: str = "",
) -> None:
    """Serve ``make_server()`` on *listen* until SIGINT or SIGTERM, then shut down gracefully.

    Prints ``probe NAME: serving on URL`` (and *detail*) on stderr once the socket is bound.

    Raises:
        ConfigError: *make_server* cannot read or use *tls_cert*, or *listen* cannot be bound.
    """
    from probe.helper.server import bind

    host, port = parse_listen(listen)
    try:
        server = make_server()
    except OSError as exc:  # ssl.SSLError included
        raise ConfigError(f"--tls-cert {tls_cert}: {exc.strerror or exc}") from None
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise ConfigError(f"--listen {listen}: {exc.strerror or exc}") from None
    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"probe {name}: serving on {scheme}://{shown}:{sock.getsockname()[1]}/{detail}", err=True)
    asyncio.run(serve_until_signalled(server, sock))


async def serve_until_signalled(server: HelperServer, sock: socket.socket) -> None:
    """Serve on *sock* until SIGINT or SIGTERM, then shut down gracefully (closes *sock*)."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, setattr, server, "should_exit", True)
    await server.serve(sockets=[sock])
