"""What ``probe tor``, ``probe vpn`` and ``probe sni-blocking`` share: their common options,
the settings they read, and how a measurement's verdict and failures are printed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from probe.cli.options import config_option

if TYPE_CHECKING:
    from probe.model import OONIMeasurement

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_TIMEOUT = 10.0


def common_options(uses: str) -> Callable[[F], F]:
    """``--config``, ``--endpoints``, ``--timeout`` and ``--json`` (what the lab runner passes)."""

    def decorate(command: F) -> F:
        for option in reversed(
            (
                config_option(uses),
                click.option(
                    "--endpoints",
                    "endpoints_file",
                    type=click.Path(path_type=Path, dir_okay=False),
                    help="Endpoint list (TOML) replacing the shipped one for the families it lists.",
                ),
                click.option(
                    "--timeout",
                    type=click.FloatRange(min=0, min_open=True, max=300),
                    default=None,
                    help=f"Seconds allowed for each step (connect, handshake). Default: {DEFAULT_TIMEOUT:g}.",
                ),
                click.option(
                    "--json",
                    "as_json",
                    is_flag=True,
                    help="Print each measurement as one JSON object per line.",
                ),
            )
        ):
            command = option(command)
        return command

    return decorate


@dataclass(frozen=True, slots=True)
class Settings:
    """What these commands take from the settings file."""

    ca_file: Path | None = None
    timeout: float = DEFAULT_TIMEOUT


def read_settings(config_file: Path | None, timeout: float | None) -> Settings:
    """The CA file and the connect/handshake timeout: ``--timeout``, else the settings', else 10 s.

    Raises:
        ConfigError: the settings file is invalid.
    """
    if config_file is None:
        return Settings(timeout=timeout or DEFAULT_TIMEOUT)
    from probe.rounds.settings import load_settings

    measure = load_settings(config_file).measure
    return Settings(ca_file=measure.ca_file, timeout=timeout or max(measure.tcp_timeout, measure.tls_timeout))


def emit_json(measurements: list[OONIMeasurement]) -> None:
    """One JSON document per line."""
    from probe.serialize import to_json

    for m in measurements:
        click.echo(to_json(m))


def verdict_line(m: OONIMeasurement) -> str:
    """``blocking=… accessible=… mechanism=… → what people read``."""
    from probe.cli.stepview import ooni_keys
    from probe.outcome import describe, outcome_of

    s = m.summary
    mechanism = None if s.mechanism is None else str(s.mechanism)
    outcome = outcome_of(
        blocking=s.blocking, accessible=s.accessible, mechanism=mechanism, confirmed=s.confirmed,
        control_failure=s.control_failure,
    )  # fmt: skip
    keys = {"blocking": s.blocking, "accessible": s.accessible, "control_failure": s.control_failure}
    return f"{ooni_keys(keys, mechanism=mechanism, confirmed=s.confirmed)} → {describe(outcome)}"


def failure_markup(failure: str | None) -> str:
    """``ok`` in green, or the failure string in red (rich markup, escaped)."""
    from rich.markup import escape

    return "[green]ok[/]" if failure is None else f"[red]{escape(failure)}[/]"
