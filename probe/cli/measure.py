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
    from probe.model import Measurement

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
@click.option(
    "--decoy-sni",
    metavar="NAME",
    help="After a failed TLS handshake, try the same address naming NAME: SNI filtering only if it passes.",
)
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
    decoy_sni: str | None,
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
    if decoy_sni is not None:
        changes["decoy_sni"] = _decoy(decoy_sni)
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


def _decoy(text: str) -> str:
    """*text* as a host name on the wire (``--decoy-sni``)."""
    from probe.errors import TargetError
    from probe.steps.urls import encode_hostname

    try:
        return encode_hostname(text)
    except TargetError as exc:
        raise click.BadParameter(str(exc), param_hint="--decoy-sni") from None


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
    """One line per step, failures in red, then the verdict keys (as ``probe show`` prints them)."""
    from rich.markup import escape

    from probe.cli.stepview import ooni_keys, step_lines
    from probe.serialize import as_dict

    keys = as_dict(m)["test_keys"]
    console.print(f"[bold]{escape(m.input)}[/]  ({m.test_runtime:.2f} s, {m.probe_asn} {m.probe_cc})")
    for line in step_lines(keys):
        console.print(line)
    verdict = ooni_keys(keys, mechanism=m.test_keys.mechanism, confirmed=m.test_keys.confirmed)
    console.print(f"verdict: {escape(verdict)}")
