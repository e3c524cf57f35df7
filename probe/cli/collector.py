"""``probe collector serve``: the fleet's collector, OONI's collector protocol into the store."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import click

from probe.cli import serving
from probe.cli.serving import check_options


@click.group()
def collector() -> None:
    """The collector many probes upload to (OONI's collector protocol), storing into one database."""


@collector.command()
@click.option("--listen", required=True, metavar="HOST:PORT", help="Address to serve on, e.g. 0.0.0.0:8443.")
@click.option(
    "--db",
    "db_url",
    required=True,
    metavar="URL",
    help="The fleet's database: postgresql+psycopg://… (or sqlite:///FILE for a trial).",
)
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False), help="PEM certificate (chain).")
@click.option(
    "--tls-key", type=click.Path(path_type=Path, dir_okay=False), help="PEM key (default: in --tls-cert)."
)
@click.option(
    "--tokens",
    "tokens_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Accept only probes presenting one of these tokens (one per line); default: anyone.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(64 * 1024, 64 * 1024 * 1024),
    default=4 * 1024 * 1024,
    show_default=True,
    help="Largest request body (413 beyond).",
)
@click.option(
    "--report-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=100.0,
    show_default=True,
    help="Submissions per second one report may take on average (429 beyond; bursts of 10x).",
)
@click.option(
    "--report-lifetime-hours",
    type=click.FloatRange(min=2),
    default=24.0,
    show_default=True,
    help="Hours after opening a report stops taking new measurements (410).",
)
@click.option(
    "--store-threads",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Threads writing to the database at once (its connections in use).",
)
def serve(
    listen: str,
    db_url: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    tokens_file: Path | None,
    max_body_bytes: int,
    report_rate: float,
    report_lifetime_hours: float,
    store_threads: int,
) -> None:
    """Take measurements from probes (POST /report, /report/ID, /report/ID/close, /measurement)."""
    from measurements.store.reports import Reports
    from measurements.store.store import open_store
    from probe.collector.app import CollectorSettings, Limits
    from probe.collector.server import make_server
    from probe.collector.tokens import load_tokens

    check_options(listen, tls_cert, tls_key)
    tokens = load_tokens(tokens_file) if tokens_file is not None else None
    limits = Limits(
        max_body_bytes=max_body_bytes,
        report_rate=report_rate,
        report_burst=max(1, int(10 * report_rate)),
        report_lifetime=timedelta(hours=report_lifetime_hours),
        store_threads=store_threads,
    )
    settings = CollectorSettings(limits=limits, tokens=tokens)
    logging.basicConfig(level=logging.WARNING, format="probe collector: %(message)s")
    store = open_store(db_url)
    try:
        access = f"{len(tokens)} token(s)" if tokens is not None else "open submission"
        serving.serve(
            "collector",
            lambda: make_server(Reports(store), settings, tls_cert=tls_cert, tls_key=tls_key),
            listen=listen,
            tls_cert=tls_cert,
            detail=f" into {store.name} ({access})",
        )
    finally:
        store.close()
