"""``probe tor``: can Tor's directory authorities (and an operator's bridges) be reached?"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from probe.cli.circview import common_options


@click.command()
@common_options("timeouts of [measure]")
@click.option(
    "--parallelism",
    type=click.IntRange(1, 32),
    default=4,
    show_default=True,
    help="Targets measured at once.",
)
def tor(
    config_file: Path | None,
    endpoints_file: Path | None,
    timeout: float | None,
    as_json: bool,
    parallelism: int,
) -> None:
    """Reach Tor's directory authorities and listed bridges: TLS to OR ports, consensus from dir ports.

    The targets are the shipped list (config/nettests/tor.toml), or the [[tor]] entries of
    --endpoints (bridges: role or_port or obfs4, params.fingerprint; params.source makes a
    bridge private: its address is scrubbed from the output). Exits 0 whatever it finds.
    """
    from rich.console import Console
    from rich.markup import escape

    from probe.cli.circview import emit_json, failure_markup, read_settings, verdict_line
    from probe.cli.stepview import step_lines
    from probe.nettests import endpoints
    from probe.nettests import tor as test
    from probe.nettests.base import Context

    settings = read_settings(config_file, timeout)
    targets = test.targets_from(endpoints.load(test.TEST_NAME, endpoints_file))
    config = test.TorConfig(timeout=settings.timeout, parallelism=parallelism)
    m = asyncio.run(test.measure(targets, context=Context(), config=config))
    if as_json:
        emit_json([m])
        return
    console = Console(highlight=False, soft_wrap=True)
    keys = m.document["test_keys"]
    console.print(f"[bold]tor[/]  ({m.test_runtime:.2f} s, {len(targets)} targets)")
    for target in targets:
        entry = keys["targets"][target.id]
        name = f" {target.name}" if target.name else ""
        console.print(
            f"{escape(entry['target_protocol'])}{escape(name)} {escape(entry['target_address'])}: "
            f"{failure_markup(entry['failure'])}"
        )
        for line in step_lines(entry):
            console.print(line)
    totals = ", ".join(
        f"{p} {keys[f'{p}_accessible']}/{keys[f'{p}_total']}" for p in test.PROTOCOLS if keys[f"{p}_total"]
    )
    console.print(f"accessible: {escape(totals)}")
    console.print(f"verdict: {escape(verdict_line(m))}")
