"""``probe sni-blocking``: does a name in the TLS ClientHello, rather than the address, draw the block?"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from probe.cli.circview import common_options


@click.command("sni-blocking")
@click.argument("targets", nargs=-1)
@common_options("CA file and timeouts of [measure]")
@click.option(
    "--control-sni", default=None, help="The decoy name sent in the control handshake. Default: example.org."
)
@click.option(
    "--testhelper",
    default=None,
    metavar="ADDR:PORT",
    help="Where both handshakes go. Default: <control SNI>:443.",
)
@click.option("--ca-file", type=click.Path(path_type=Path), help="Trust only this PEM CA file for TLS.")
def sni_blocking(
    targets: tuple[str, ...],
    config_file: Path | None,
    endpoints_file: Path | None,
    timeout: float | None,
    as_json: bool,
    control_sni: str | None,
    testhelper: str | None,
    ca_file: Path | None,
) -> None:
    """Handshake with each TARGET name and a decoy name at one address: SNI filtering or IP blocking?

    TARGET is a host name or URL. Without one, the targets are the [[sni_blocking]] list
    (config/nettests/sni_blocking.toml, or --endpoints): role target (host), and one role
    testhelper entry (host and port: where the handshakes go; server_name: the decoy), which
    --endpoints also gives TARGETs. Exits 0 whatever it finds.
    """
    from rich.console import Console
    from rich.markup import escape

    from probe.cli.circview import emit_json, failure_markup, read_settings, verdict_line
    from probe.cli.stepview import step_lines
    from probe.errors import ConfigError
    from probe.model import OONIMeasurement
    from probe.nettests import endpoints
    from probe.nettests import sni_blocking as test
    from probe.nettests.base import Context
    from probe.steps.tls import make_ssl_context
    from probe.steps.urls import authority

    settings = read_settings(config_file, timeout)
    names = list(targets)
    if not names or endpoints_file is not None:
        listed = endpoints.load(test.TEST_NAME, endpoints_file)
        names = names or [e.url or e.host for e in listed.role("target")]
        for helper in listed.role("testhelper")[:1]:
            if not helper.ports:
                raise ConfigError(f"{helper.where}: sni_blocking.ports: the test helper's port is needed")
            testhelper = testhelper or authority(helper.host, helper.ports[0])
            control_sni = control_sni or helper.server_name or None
    if not names:
        raise ConfigError(f"probe sni-blocking: no TARGET, and {listed.source} lists no target")
    context = make_ssl_context(ca_file or settings.ca_file)

    async def run_all() -> list[OONIMeasurement]:
        decoy = control_sni or test.DEFAULT_CONTROL_SNI
        measured = []
        for name in names:
            measured.append(
                await test.measure(
                    name,
                    context=Context(),
                    control_sni=decoy,
                    testhelper=testhelper,
                    ssl_context=context,
                    timeout=settings.timeout,
                )
            )
        return measured

    measured = asyncio.run(run_all())
    if as_json:
        emit_json(measured)
        return
    console = Console(highlight=False, soft_wrap=True)
    for m in measured:
        keys = m.document["test_keys"]
        console.print(f"[bold]{escape(str(m.document['input']))}[/]  ({m.test_runtime:.2f} s, sni_blocking)")
        for role in ("target", "control"):
            side = keys[role]
            where = f"sni={escape(side['sni'])} at {escape(side['th_address'])}"
            console.print(f"  {role} {where}: {failure_markup(side['failure'])}")
            for line in step_lines(side):
                console.print(line)
        console.print(f"  result: {escape(keys['result'])}")
        console.print(f"  verdict: {escape(verdict_line(m))}")
