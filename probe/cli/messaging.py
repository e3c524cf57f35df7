"""``probe telegram|whatsapp|signal|facebook-messenger``: one messaging-app test, step by step.

The four commands differ only in the test they run (:mod:`probe.nettests.telegram`, …), so
one factory makes them. Each loads the family's endpoint list (``--endpoints FILE`` instead
of the shipped one: a list updated without a release, or the lab's), measures, and prints
every step, the test's own keys and the verdict; ``--json`` prints the OONI measurement.
Exit status 0 whatever the test found, 2 for bad input (a file, a flag) with one line saying
which. The measurement machinery is imported when a command runs, never for ``--help``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from probe.cli.options import config_option

if TYPE_CHECKING:
    from rich.console import Console

    from probe.model import OONIMeasurement
    from probe.nettests.urlgetter import GetterConfig


@dataclasses.dataclass(frozen=True, slots=True)
class _Test:
    command: str
    module: str
    """``probe.nettests.<module>``: its ``FAMILY`` and ``measure``."""
    summary: str
    """The command's one-line help (``probe --help`` lists it from ``COMMANDS``)."""


def _make(test: _Test) -> click.Command:
    @click.command(name=test.command, help=f"{test.summary}\n\nExits 0 whatever it finds.")
    @click.option(
        "--endpoints",
        "endpoints_file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Endpoint list (TOML) to measure instead of the shipped one.",
    )
    @config_option("timeouts, CA file, resolvers, ASN database, public networks")
    @click.option(
        "--resolver",
        metavar="ADDR[:PORT]|URL",
        help="Ask this resolver (IP[:PORT], tcp://…, https://…) instead of the system's.",
    )
    @click.option("--ca-file", type=click.Path(path_type=Path), help="Trust only this PEM CA file for TLS.")
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True, max=300),
        default=None,
        help="Seconds allowed for each step (DNS, TCP, TLS, HTTP). Default: 4 for DNS, 10 for the others.",
    )
    @click.option(
        "--allow-loopback", is_flag=True, help="Loopback answers are no censor's (for local tests)."
    )
    @click.option("--json", "as_json", is_flag=True, help="Print the OONI measurement as one JSON object.")
    def run(
        endpoints_file: Path | None,
        config_file: Path | None,
        resolver: str | None,
        ca_file: Path | None,
        timeout: float | None,
        allow_loopback: bool,
        as_json: bool,
    ) -> None:
        import importlib

        from rich.console import Console

        from probe.nettests import endpoints
        from probe.nettests.base import Context
        from probe.serialize import to_json

        nettest = importlib.import_module(f"probe.nettests.{test.module}")
        config = _config(config_file, resolver, ca_file, timeout, allow_loopback)
        listed = endpoints.load(nettest.FAMILY, endpoints_file, fallback=False)
        measurement = asyncio.run(nettest.measure(listed, context=Context(), config=config))
        if as_json:
            click.echo(to_json(measurement))
        else:
            render(measurement, nettest.KEY_PREFIXES, Console(highlight=False, soft_wrap=True))

    return run


def _config(
    config_file: Path | None,
    resolver: str | None,
    ca_file: Path | None,
    timeout: float | None,
    allow_loopback: bool,
) -> GetterConfig:
    """The test's configuration: the settings file's (or the defaults), then the flags."""
    from probe.nettests.urlgetter import GetterConfig
    from probe.steps import dns

    config = GetterConfig()
    if config_file is not None:
        from probe.rounds.service import measure_config  # the settings machinery: only with a file
        from probe.rounds.settings import load_settings

        config = GetterConfig.from_measure_config(measure_config(load_settings(config_file)))
    changes: dict[str, Any] = {}
    if resolver is not None:
        changes["resolver"] = dns.parse_resolver(resolver)
    if ca_file is not None:
        changes["ca_file"] = ca_file
    if allow_loopback:
        changes["allow_loopback"] = True
    config = dataclasses.replace(config, **changes)
    return config.with_timeout(timeout) if timeout is not None else config


def render(m: OONIMeasurement, prefixes: tuple[str, ...], console: Console) -> None:
    """Every step, the test's own keys, then the verdict and what a volunteer reads."""
    from rich.markup import escape

    from probe.cli.stepview import step_lines
    from probe.outcome import describe, outcome_of

    keys: dict[str, Any] = dict(m.document["test_keys"])
    console.print(f"[bold]{escape(m.test_name)}[/]  ({m.test_runtime:.2f} s, {m.probe_asn} {m.probe_cc})")
    # Our requests are in the order they were made; the step view expects OONI's reverse order.
    for line in step_lines({**keys, "requests": list(reversed(keys.get("requests") or []))}):
        console.print(line)
    for name, value in keys.items():
        if name.startswith(prefixes):
            console.print(f"  {escape(name)} = {escape(_json(value))}")
    s = m.summary
    outcome = outcome_of(
        blocking=s.blocking,
        accessible=s.accessible,
        mechanism=s.mechanism,
        confirmed=None,
        control_failure=None,
    )
    verdict = f"blocking={_json(s.blocking)} accessible={_json(s.accessible)} mechanism={_json(s.mechanism)}"
    console.print(f"verdict: {escape(verdict)} — {escape(describe(outcome))}")


def _json(value: object) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


telegram = _make(
    _Test("telegram", "telegram", "Test Telegram: its data centres (HTTP POST) and web.telegram.org (HTTPS).")
)
whatsapp = _make(
    _Test(
        "whatsapp",
        "whatsapp",
        "Test WhatsApp: its endpoints (TCP 443, 5222), the registration service and WhatsApp web (HTTPS).",
    )
)
signal = _make(_Test("signal", "signal", "Test Signal: its backends over HTTPS, with Signal's own roots."))
facebook_messenger = _make(
    _Test(
        "facebook-messenger",
        "facebook_messenger",
        "Test Facebook Messenger: its services' DNS answers (Facebook's AS?) and TCP port 443.",
    )
)
