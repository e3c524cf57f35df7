"""``probe dashboard``: serve the read-only web dashboard over the store, on loopback by default.

The application is :mod:`measurements.views.dashboard.app`; this shell opens the store, runs the
first detection, binds the socket and serves it with hypercorn until SIGINT or SIGTERM. The
dashboard has no login, so an address other than loopback needs ``--public`` as well: a
volunteer's measurements say which sites they tried to reach.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from probe.cli.options import config_option, database_url, db_option
from probe.errors import ConfigError

if TYPE_CHECKING:  # the store, the app and the server load when it serves, not for --help
    import socket

logger = logging.getLogger("probe.dashboard")


@click.command()
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    metavar="HOST:PORT",
    help="Address to serve on (port 0: any free port).",
)
@click.option(
    "--public",
    is_flag=True,
    help="Allow a --listen address that is not loopback (the dashboard has no login: anyone who "
    "reaches it sees every measurement).",
)
@click.option(
    "--refresh",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds between looks for new rounds (the flags are then recomputed in memory).",
)
@db_option
@config_option("for storage.database_url")
def dashboard(
    listen: str, public: bool, refresh: float, db_url: str | None, config_file: Path | None
) -> None:
    """Serve a read-only web dashboard of the stored measurements (loopback only unless --public)."""
    from probe.cli.helper import parse_listen

    host, port = parse_listen(listen)
    if not ipaddress.ip_address(host).is_loopback and not public:
        raise ConfigError(
            f"--listen {listen}: not a loopback address; add --public to serve it to the network"
        )
    from measurements.store.store import open_store
    from measurements.views.dashboard.analysis import Analysis
    from measurements.views.dashboard.app import create_app
    from measurements.views.dashboard.security import LOOPBACK_HOSTS
    from probe.helper.server import bind

    store = open_store(database_url(db_url, config_file))
    try:
        analysis = Analysis(store, check_s=refresh)
        click.echo(f"probe dashboard: analysing {store.name} …", err=True)
        found = analysis.refresh()
        hosts = ["*"] if public else [*LOOPBACK_HOSTS, f"[{host}]" if ":" in host else host]
        app = create_app(store, analysis=analysis, hosts=hosts)
        try:
            sock = bind(host, port)
        except OSError as exc:
            raise ConfigError(f"--listen {listen}: {exc.strerror or exc}") from None
        shown = f"[{host}]" if ":" in host else host
        click.echo(
            f"probe dashboard: {found.n_measurements} measurements in {found.n_rounds} rounds; "
            f"serving on http://{shown}:{sock.getsockname()[1]}/ (Ctrl-C to stop)",
            err=True,
        )
        logging.basicConfig(level=logging.WARNING, format="probe dashboard: %(message)s")
        asyncio.run(_serve(app, sock))
    finally:
        store.close()


async def _serve(app: Any, sock: socket.socket) -> None:
    """Serve *app* on the listening *sock* until SIGINT or SIGTERM (graceful shutdown)."""
    from hypercorn.asyncio.run import worker_serve
    from hypercorn.config import Config, Sockets
    from hypercorn.typing import ASGIFramework
    from hypercorn.utils import wrap_app

    config = Config()
    config.accesslog = None  # nothing logs who looked
    config.errorlog = logger
    config.include_server_header = False
    config.graceful_timeout = 2.0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # starlette types its ASGI scope loosely, hypercorn with TypedDicts: the same protocol.
    wrapped = wrap_app(cast(ASGIFramework, app), config.wsgi_max_body_size, "asgi")
    await worker_serve(wrapped, config, sockets=Sockets([], [sock], []), shutdown_trigger=stop.wait)
