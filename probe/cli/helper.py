"""``probe helper serve``: the control vantage (test helper) for probes, OONI-compatible."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from probe.cli import serving
from probe.cli.serving import check_options, parse_listen

__all__ = ["helper", "parse_listen"]  # parse_listen: the dashboard's and the tests' import


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
    from probe.helper.server import make_server
    from probe.ipinfo import load_asn_database
    from probe.steps import dns

    check_options(listen, tls_cert, tls_key)
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
    serving.serve(
        "helper",
        lambda: make_server(settings, tls_cert=tls_cert, tls_key=tls_key),
        listen=listen,
        tls_cert=tls_cert,
    )
