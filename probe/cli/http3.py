"""``probe http3 URL``: HTTP/3 reachability (QUIC handshake and GET) beside TLS over TCP."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from probe.cli.options import F, config_option

if TYPE_CHECKING:
    from rich.console import Console

    from probe.model import OONIMeasurement


def endpoints_option(what: str) -> Callable[[F], F]:
    """``--endpoints FILE``: an endpoint-list file (:mod:`probe.nettests.endpoints`); *what* it gives."""
    return click.option(
        "--endpoints", type=click.Path(path_type=Path, dir_okay=False), help=f"An endpoint-list file: {what}."
    )


def emit(
    results: list[OONIMeasurement], *, as_json: bool, render: Callable[[OONIMeasurement, Console], None]
) -> None:
    """Print each measurement: one JSON document per line with *as_json*, else by *render*."""
    from rich.console import Console

    from probe.serialize import to_json

    console = Console(highlight=False, soft_wrap=True)
    for result in results:
        if as_json:
            click.echo(to_json(result))
        else:
            render(result, console)


@click.command()
@click.argument("url", required=False)
@config_option("CA file and timeouts of [measure]")
@endpoints_option("without URL, measure its [[http3]] sites (listed: known to serve HTTP/3)")
@click.option(
    "--ca-file", type=click.Path(path_type=Path), help="Trust only this PEM CA file (TLS and QUIC)."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True, max=300),
    default=None,
    help="Seconds allowed for each step (DNS, TCP, TLS, QUIC, HTTP). Default: 4 for DNS, 10 for the others.",
)
@click.option(
    "--expect-h3",
    is_flag=True,
    help="The site serves HTTP/3 (no Alt-Svc needed): a QUIC failure beside working TLS is then blocking.",
)
@click.option("--allow-loopback", is_flag=True, help="Connect to loopback answers (for local tests).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole measurement as one JSON object.")
def http3(
    url: str | None,
    config_file: Path | None,
    endpoints: Path | None,
    ca_file: Path | None,
    timeout: float | None,
    expect_h3: bool,
    allow_loopback: bool,
    as_json: bool,
) -> None:
    """Measure URL over HTTP/3 (QUIC handshake and GET, UDP 443) beside TLS over TCP to the same address.

    Without URL, every site of the HTTP/3 list (the shipped one, or --endpoints'), each known to
    serve HTTP/3; --json then prints one measurement per line. Exits 0 whatever it finds.
    """
    from dataclasses import replace

    from probe.nettests import http3 as test
    from probe.nettests.base import Context

    config = test.HTTP3Config(expect_h3=expect_h3, allow_loopback=allow_loopback)
    if config_file is not None:
        from probe.rounds.settings import load_settings

        m = load_settings(config_file).measure
        config = replace(
            config, ca_file=m.ca_file, dns_timeout=m.dns_timeout, tcp_timeout=m.tcp_timeout,
            tls_timeout=m.tls_timeout, quic_timeout=m.tls_timeout, http_timeout=m.http_timeout,
            allow_loopback=allow_loopback or m.allow_loopback,
        )  # fmt: skip
    if ca_file is not None:
        config = replace(config, ca_file=ca_file)
    if timeout is not None:
        config = replace(
            config, dns_timeout=timeout, tcp_timeout=timeout, tls_timeout=timeout, quic_timeout=timeout,
            http_timeout=timeout,
        )  # fmt: skip
    if url is not None:
        jobs = [(url, config)]
    else:
        from probe.nettests import endpoints as lists

        sites = lists.load("http3", endpoints).require("site").role("site")
        jobs = [(site.url, replace(config, expect_h3=True)) for site in sites]

    async def measure_all() -> list[OONIMeasurement]:
        return [await test.measure(u, context=Context(), config=c) for u, c in jobs]

    emit(asyncio.run(measure_all()), as_json=as_json, render=render)


def render(m: OONIMeasurement, console: Console) -> None:
    """The steps in the order they ran (the reference path, then QUIC), then the verdict."""
    from rich.markup import escape

    from probe.cli.stepview import step_lines

    keys: dict[str, Any] = dict(m.document["test_keys"])
    requests = keys.get("requests") or []
    over_tcp = [r for r in requests if (r.get("request") or {}).get("x_transport") != "udp"]
    over_udp = [r for r in requests if (r.get("request") or {}).get("x_transport") == "udp"]
    console.print(f"[bold]{escape(str(m.document['input']))}[/]  ({m.test_runtime:.2f} s, HTTP/3)")
    lines = step_lines({**keys, "requests": over_tcp})
    quic = step_lines({"tls_handshakes": keys.get("quic_handshakes") or []})
    lines += [line.replace("  tls ", "  quic", 1) for line in quic]
    lines += step_lines({"requests": over_udp})
    for line in lines:
        console.print(line)
    console.print(f"verdict: {escape(verdict_line(m))}")


def verdict_line(m: OONIMeasurement) -> str:
    """``blocking=… accessible=… mechanism=… → what people read`` for a test beyond websites."""
    from probe.cli.stepview import ooni_keys
    from probe.outcome import describe, outcome_of

    s = m.summary
    keys = {"blocking": s.blocking, "accessible": s.accessible, "control_failure": s.control_failure}
    mechanism = None if s.mechanism is None else str(s.mechanism)
    outcome = outcome_of(
        blocking=s.blocking, accessible=s.accessible, mechanism=mechanism, confirmed=s.confirmed,
        control_failure=s.control_failure,
    )  # fmt: skip
    return f"{ooni_keys(keys, mechanism=mechanism, confirmed=s.confirmed)} → {describe(outcome)}"
