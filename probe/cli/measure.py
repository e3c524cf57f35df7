"""``probe measure URL``: one Web Connectivity measurement, as JSON or a short summary."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

import click

# The steps and rich load when a measurement runs, not for ``--help``.
if TYPE_CHECKING:
    from rich.console import Console

    from probe import webconnectivity
    from probe.model import HTTPTransaction, Measurement

NO_CONTROL = "none"


@click.command()
@click.argument("url")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Settings file (resolvers, CA file, timeouts, control, network); flags override it.",
)
@click.option(
    "--control",
    metavar="URL|none",
    help="Test helper (control vantage) to compare with; 'none' to skip. Default: control.url of --config.",
)
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
    config_file: Path | None,
    control: str | None,
    resolvers: tuple[str, ...],
    ca_file: Path | None,
    timeout: float | None,
    no_system_resolver: bool,
    allow_loopback: bool,
    as_json: bool,
) -> None:
    """Measure URL: DNS, TCP, TLS and HTTP, step by step, then compare with the control.

    Exits 0 whatever it finds.
    """
    from rich.console import Console

    from probe import webconnectivity
    from probe.serialize import to_json
    from probe.steps import dns

    config = _base_config(config_file)
    changes: dict[str, object] = {}
    if resolvers:
        changes["resolvers"] = tuple(dns.parse_resolver(text) for text in resolvers)
    if no_system_resolver:
        changes["use_system_resolver"] = False
    if ca_file is not None:
        changes["ca_file"] = ca_file
    if allow_loopback:
        changes["allow_loopback"] = True
    if control is not None:
        changes["control_url"] = None if control.strip().lower() == NO_CONTROL else _control_url(control)
    config = dataclasses.replace(config, **changes)  # type: ignore[arg-type]  # keys are fields
    if timeout is not None:
        config = config.with_timeout(timeout)
    result = asyncio.run(webconnectivity.measure(url, config=config))
    if as_json:
        click.echo(to_json(result))
    else:
        render_summary(result, Console(highlight=False, soft_wrap=True))


def _base_config(path: Path | None) -> webconnectivity.MeasureConfig:
    """The settings file's configuration, or the defaults (no extra resolver, no control)."""
    from probe import webconnectivity

    if path is None:
        return webconnectivity.MeasureConfig()
    from probe.rounds.service import measure_config  # loads the settings machinery: only when a file is given
    from probe.rounds.settings import load_settings

    return measure_config(load_settings(path))


def _control_url(text: str) -> str:
    """*text* if it is an http(s) URL with a valid host (as ``control.url`` in settings)."""
    from probe.errors import TargetError
    from probe.steps.urls import split_url

    try:
        split_url(text)
    except TargetError as exc:
        message = f"expected an http(s):// URL or 'none': {exc}"
        raise click.BadParameter(message, param_hint="--control") from None
    return text


def render_summary(m: Measurement, console: Console) -> None:
    """One line per step; failures in red."""
    from rich.markup import escape

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
        what = f"{r.request.method} {r.request.url} via {r.address}"
        _line(console, "http", what, r.failure, got, r.t - r.t0, note=_transfer(r))
    verdict = (
        f"blocking={_json(keys.blocking)} accessible={_json(keys.accessible)} "
        f"dns_consistency={_json(keys.dns_consistency)} mechanism={_json(keys.mechanism)}"
    )
    if keys.confirmed:
        verdict += f" confirmed={keys.confirmed}"
    control = f" (control: {keys.control_failure})" if keys.control_failure else ""
    console.print(f"verdict: {verdict}{escape(control)}")


def _line(
    console: Console, step: str, what: str, failure: str | None, ok: str, elapsed: float, note: str = ""
) -> None:
    from rich.markup import escape

    outcome = f"[bold red]✗ {escape(failure)}[/]" if failure else f"[green]{escape(ok)}[/]"
    note = f"  [dim]{escape(note)}[/]" if note else ""
    console.print(f"  {step:<4} {escape(what)}  → {outcome}  [dim]{elapsed * 1000:.0f} ms[/]{note}")


def _transfer(r: HTTPTransaction) -> str:
    """How the body came: ``81920 body bytes in 9.60 s (68 kbit/s)``; empty when none came.

    The rate is the body's (from the headers to its last bytes), the number that tells a
    throttled transfer (``http.throttle``) from a slow server that answered late.
    """
    received, start, last = r.x_body_bytes_received, r.x_headers_t, r.x_body_last_byte_t
    if not received or start is None or last is None:
        return ""
    seconds = last - start
    rate = f" ({received * 8 / seconds / 1000:.0f} kbit/s)" if seconds > 0 else ""
    return f"{received} body bytes in {seconds:.2f} s{rate}"


def _json(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
