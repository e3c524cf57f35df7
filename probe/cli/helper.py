"""``probe helper serve``: the control vantage (test helper) for probes, OONI-compatible."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import click

from probe.errors import ConfigError

if TYPE_CHECKING:  # the server and the measuring code load when it serves, not for --help
    from probe.helper.server import HelperServer


@click.group()
def helper() -> None:
    """The control vantage (test helper) that probes compare their view with."""


@helper.command()
@click.option("--listen", required=True, metavar="HOST:PORT", help="Address to serve on, e.g. 0.0.0.0:8443.")
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False), help="PEM certificate (chain).")
@click.option(
    "--tls-key", type=click.Path(path_type=Path, dir_okay=False), help="PEM key (default: in --tls-cert)."
)
@click.option(
    "--allow",
    "allowed",
    multiple=True,
    metavar="CIDR",
    help="Also measure targets in this private/bogon network (the lab's). Repeatable.",
)
@click.option(
    "--resolver",
    "resolvers",
    multiple=True,
    metavar="ADDR[:PORT]|URL",
    help="Resolve with this resolver (A and AAAA) instead of the system's. Repeatable.",
)
@click.option("--ca-file", type=click.Path(path_type=Path), help="Trust only this PEM CA file for TLS.")
@click.option(
    "--asn-database", type=click.Path(path_type=Path), help="IP → ASN (.csv, .toml, .mmdb) for whoami."
)
@click.option(
    "--country-database", type=click.Path(path_type=Path), help="IP → country (.csv, .mmdb) for whoami."
)
@click.option(
    "--max-concurrency",
    type=click.IntRange(1, 1024),
    default=32,
    show_default=True,
    help="Control requests measured at once; more are answered 503.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True, max=60),
    default=None,
    help="Seconds per step (DNS 4, TCP/TLS/HTTP 10 by default); a request gets 2.5x this overall.",
)
def serve(
    listen: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    allowed: tuple[str, ...],
    resolvers: tuple[str, ...],
    ca_file: Path | None,
    asn_database: Path | None,
    country_database: Path | None,
    max_concurrency: int,
    timeout: float | None,
) -> None:
    """Serve control requests (POST /) and whoami (GET /whoami) until interrupted."""
    from probe.helper.app import HelperSettings, Limits
    from probe.helper.geo import Geo, load_country_database
    from probe.helper.measure import HelperConfig
    from probe.helper.policy import AddressPolicy
    from probe.helper.server import bind, make_server
    from probe.ipinfo import load_asn_database
    from probe.steps import dns

    host, port = parse_listen(listen)
    if tls_key is not None and tls_cert is None:
        raise ConfigError("--tls-key needs --tls-cert")
    asn_of = load_asn_database(asn_database)
    config = HelperConfig(
        resolvers=tuple(dns.parse_resolver(text) for text in resolvers), ca_file=ca_file, asn_of=asn_of
    )
    limits = Limits(max_concurrency=max_concurrency)
    if timeout is not None:
        config = HelperConfig(
            resolvers=config.resolvers,
            ca_file=ca_file,
            asn_of=asn_of,
            dns_timeout=timeout,
            tcp_timeout=timeout,
            tls_timeout=timeout,
            http_timeout=timeout,
        )
        limits = Limits(max_concurrency=max_concurrency, deadline_s=2.5 * timeout + 1)
    settings = HelperSettings(
        config=config,
        policy=AddressPolicy.allowing(allowed),
        limits=limits,
        geo=Geo(asn_of=asn_of, cc_of=load_country_database(country_database)),
    )
    logging.basicConfig(level=logging.WARNING, format="probe helper: %(message)s")
    try:
        server = make_server(settings, tls_cert=tls_cert, tls_key=tls_key)
    except OSError as exc:  # ssl.SSLError included
        raise ConfigError(f"--tls-cert {tls_cert}: {exc.strerror or exc}") from None
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise ConfigError(f"--listen {listen}: {exc.strerror or exc}") from None
    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"probe helper: serving on {scheme}://{shown}:{sock.getsockname()[1]}/", err=True)
    asyncio.run(_serve_until_signalled(server, sock))


async def _serve_until_signalled(server: HelperServer, sock: socket.socket) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, setattr, server, "should_exit", True)
    await server.serve(sockets=[sock])


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
