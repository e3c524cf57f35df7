"""``probe throughput URL``: a bounded, timed download against the volunteer's line and the control."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from probe.cli.http3 import emit, endpoints_option
from probe.cli.options import config_option

if TYPE_CHECKING:
    from rich.console import Console

    from probe.model import OONIMeasurement

NO_CONTROL = "none"


@click.command()
@click.argument("url", required=False)
@config_option("CA file and timeouts of [measure], the control, [tests] throughput_reference_url")
@endpoints_option("without URL, its [[throughput]] role media URLs (and role reference)")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True, max=300),
    default=None,
    help="Seconds allowed for DNS, the connect and the TLS handshake, each. Default: 10.",
)
@click.option(
    "--reference",
    "reference_url",
    metavar="URL",
    help="An object on an unshaped host: your line's own speed. Default: [tests] of --config.",
)
@click.option(
    "--control",
    metavar="URL|none",
    help="Our test helper, which downloads URL from outside (POST /x/throughput); 'none' to skip.",
)
@click.option(
    "--max-bytes",
    type=click.IntRange(min=1024, max=1024**3),
    default=1024 * 1024,
    show_default=True,
    help="Body bytes of each download (URL, reference, control).",
)
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=0, min_open=True, max=300),
    default=15.0,
    show_default=True,
    help="Seconds each download may take once connected.",
)
@click.option("--ca-file", type=click.Path(path_type=Path), help="Trust only this PEM CA file for TLS.")
@click.option("--allow-loopback", is_flag=True, help="Connect to loopback answers (for local tests).")
@click.option("--json", "as_json", is_flag=True, help="Print the whole measurement as one JSON object.")
def throughput(
    url: str | None,
    config_file: Path | None,
    endpoints: Path | None,
    timeout: float | None,
    reference_url: str | None,
    control: str | None,
    max_bytes: int,
    max_seconds: float,
    ca_file: Path | None,
    allow_loopback: bool,
    as_json: bool,
) -> None:
    """Time a bounded download of URL and compare its speed with a reference host's and the control's.

    Without URL, the media URLs of --endpoints' [[throughput]] list (role media; role reference
    for the reference); --json then prints one measurement per line. Exits 0 whatever it finds.
    """
    from dataclasses import replace

    from probe.nettests import throughput as test
    from probe.nettests.base import Context

    config = test.ThroughputConfig(
        max_bytes=max_bytes, max_seconds=max_seconds, allow_loopback=allow_loopback
    )
    if config_file is not None:
        from probe.rounds.settings import load_settings

        settings = load_settings(config_file)
        config = replace(
            config, ca_file=settings.measure.ca_file, step_timeout=settings.measure.tcp_timeout,
            control_url=settings.control.url, reference_url=settings.tests.throughput_reference_url,
            allow_loopback=allow_loopback or settings.measure.allow_loopback,
        )  # fmt: skip
    if reference_url is not None:
        config = replace(config, reference_url=_url(reference_url, "--reference"))
    if control is not None:
        config = replace(
            config, control_url=None if control.strip().lower() == NO_CONTROL else _url(control, "--control")
        )
    if ca_file is not None:
        config = replace(config, ca_file=ca_file)
    if timeout is not None:
        config = replace(config, step_timeout=timeout)
    urls = [url] if url is not None else _listed(endpoints)
    if url is None and endpoints is not None and reference_url is None:
        from probe.nettests import endpoints as lists

        reference = lists.load("throughput", endpoints, fallback=False).role("reference")
        if reference:
            config = replace(config, reference_url=reference[0].url)

    async def measure_all() -> list[OONIMeasurement]:
        return [await test.measure(u, context=Context(), config=config) for u in urls]

    emit(asyncio.run(measure_all()), as_json=as_json, render=render)


def _listed(endpoints: Path | None) -> list[str]:
    """The media URLs of *endpoints*' ``[[throughput]]`` list.

    Raises:
        click.UsageError: no URL and no list to take them from.
    """
    if endpoints is None:
        raise click.UsageError("give URL, or --endpoints with a [[throughput]] list")
    from probe.nettests import endpoints as lists

    return [e.url for e in lists.load("throughput", endpoints, fallback=False).require("media").role("media")]


def _url(text: str, option: str) -> str:
    from probe.errors import TargetError
    from probe.steps.urls import split_url

    try:
        split_url(text)
    except TargetError as exc:
        raise click.BadParameter(f"expected an http(s):// URL: {exc}", param_hint=option) from None
    return text


def render(m: OONIMeasurement, console: Console) -> None:
    """Each download step by step, the speeds and their ratios, then the verdict."""
    from rich.markup import escape

    from probe.cli.http3 import verdict_line
    from probe.cli.stepview import step_lines

    keys: dict[str, Any] = m.document["test_keys"]
    console.print(f"[bold]{escape(str(m.document['input']))}[/]  ({m.test_runtime:.2f} s, throughput)")
    for line in step_lines(keys):
        console.print(line)
    console.print(f"speed: {_rate(keys.get('x_bytes_per_second'))}")
    for name, side, ratio in (
        ("reference", keys.get("x_reference"), keys.get("x_ratio_to_reference")),
        ("control", keys.get("x_control"), keys.get("x_ratio_to_control")),
    ):
        if side is not None:
            failed = f" ({escape(side['failure'])})" if side.get("failure") else ""
            console.print(f"{name}: {_rate(side.get('bytes_per_second'))}, ratio {_ratio(ratio)}{failed}")
    console.print(f"verdict: {escape(verdict_line(m))}")


def _rate(bytes_per_second: object) -> str:
    if not isinstance(bytes_per_second, int | float):
        return "not measured"
    return f"{bytes_per_second * 8 / 1000:.0f} kbit/s ({bytes_per_second:.0f} B/s)"


def _ratio(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, int | float) else "—"
