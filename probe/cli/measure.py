"""``probe measure URL``: one Web Connectivity measurement, as JSON or a short summary."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from probe import dns, webconnectivity
from probe.model import Measurement
from probe.serialize import to_json


@click.command()
@click.argument("url")
@click.option(
    "--resolver",
    "resolvers",
    multiple=True,
    metavar="ADDR[:PORT]|URL",
    help="Also ask this resolver: IP[:PORT] (UDP), tcp://IP[:PORT], or a DoH https:// URL. Repeatable.",
)
@click.option("--ca-file", type=click.Path(path_type=Path), help="Trust only this PEM CA file for TLS.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True, max=300),
    default=None,
    help="Seconds allowed for each step (DNS, TCP, TLS, HTTP). Default: 4 for DNS, 10 for the others.",
)
@click.option("--no-system-resolver", is_flag=True, help="Skip getaddrinfo; use only --resolver.")
@click.option("--allow-loopback", is_flag=True, help="Connect to loopback answers (for local tests).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole measurement as one JSON object.")
def measure(
    url: str,
    resolvers: tuple[str, ...],
    ca_file: Path | None,
    timeout: float | None,
    no_system_resolver: bool,
    allow_loopback: bool,
    as_json: bool,
) -> None:
    """Measure URL: DNS, TCP, TLS and HTTP, step by step (exit 0 whatever it finds)."""
    config = webconnectivity.MeasureConfig(
        resolvers=tuple(dns.parse_resolver(text) for text in resolvers),
        use_system_resolver=not no_system_resolver,
        ca_file=ca_file,
        allow_loopback=allow_loopback,
    )
    if timeout is not None:
        config = config.with_timeout(timeout)
    result = asyncio.run(webconnectivity.measure(url, config=config))
    if as_json:
        click.echo(to_json(result))
    else:
        render_summary(result, Console(highlight=False))


def render_summary(m: Measurement, console: Console) -> None:
    """One line per step; failures in red."""
    keys = m.test_keys
    console.print(f"[bold]{escape(m.input)}[/]  ({m.test_runtime:.2f} s, {m.probe_asn} {m.probe_cc})")
    for q in keys.queries:
        where = q.engine if not q.resolver_address else f"{q.engine} {q.resolver_address}"
        outcome = ", ".join(q.addresses) or "(no addresses)"
        _line(console, "dns", f"{where} {q.hostname} {q.query_type}", q.failure, outcome, q.t - q.t0)
    for c in keys.tcp_connect:
        _line(console, "tcp", f"{c.ip}:{c.port}", c.status.failure, "connected", c.t - c.t0)
    for h in keys.tls_handshakes:
        ok = f"{h.tls_version} {h.negotiated_protocol}".strip()
        _line(console, "tls", f"{h.address} sni={h.server_name}", h.failure, ok, h.t - h.t0)
    for r in reversed(keys.requests):
        got = ""
        if r.response is not None:
            truncated = ", truncated" if r.response.body_is_truncated else ""
            got = f"{r.response.code} ({r.response.body_length} bytes{truncated}) {r.response.title!r}"
        _line(
            console, "http", f"{r.request.method} {r.request.url} via {r.address}", r.failure, got, r.t - r.t0
        )
    verdict = (
        f"blocking={_json(keys.blocking)} accessible={_json(keys.accessible)} "
        f"mechanism={_json(keys.mechanism)}"
    )
    control = f" (control: {keys.control_failure})" if keys.control_failure else ""
    console.print(f"verdict: {verdict}{escape(control)}")


def _line(console: Console, step: str, what: str, failure: str | None, ok: str, elapsed: float) -> None:
    outcome = f"[bold red]✗ {escape(failure)}[/]" if failure else f"[green]{escape(ok)}[/]"
    console.print(f"  {step:<4} {escape(what)}  → {outcome}  [dim]{elapsed * 1000:.0f} ms[/]")


def _json(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
