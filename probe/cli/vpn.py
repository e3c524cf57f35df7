"""``probe vpn``: do the VPN endpoints an operator lists answer a handshake?"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from probe.cli.circview import common_options


@click.command()
@common_options("timeouts of [measure]")
def vpn(config_file: Path | None, endpoints_file: Path | None, timeout: float | None, as_json: bool) -> None:
    """Send a WireGuard handshake initiation or OpenVPN's hard reset to each endpoint of --endpoints.

    --endpoints FILE lists [[vpn]] entries: role wireguard (host, ports, params.public_key
    and params.private_key of a client the server knows, optional params.preshared_key) or
    openvpn (params.transport udp or tcp). Nothing is shipped: the endpoints are yours.
    Exits 0 whatever it finds.
    """
    from rich.console import Console
    from rich.markup import escape

    from probe.cli.circview import emit_json, failure_markup, read_settings, verdict_line
    from probe.errors import ConfigError
    from probe.nettests import endpoints
    from probe.nettests import vpn as test
    from probe.nettests.base import Context

    if endpoints_file is None:
        raise ConfigError("probe vpn: --endpoints FILE is required (a [[vpn]] list; nothing is shipped)")
    settings = read_settings(config_file, timeout)
    targets = test.endpoints_from(endpoints.load(test.FAMILY, endpoints_file, fallback=False))
    measured = asyncio.run(test.measure_all(targets, context=Context(), timeout=settings.timeout))
    if as_json:
        emit_json(measured)
        return
    console = Console(highlight=False, soft_wrap=True)
    for m in measured:
        keys = m.document["test_keys"]
        console.print(f"[bold]{escape(str(m.document['input']))}[/]  ({m.test_runtime:.2f} s, {m.test_name})")
        for event in keys["network_events"] or []:
            packet = event.get("packet") or {}
            what = packet.get("opcode") or event["operation"]
            console.print(f"  [dim]{event['t']:.3f}[/] {escape(event['operation'])} {escape(str(what))}")
        console.print(f"  handshake: {failure_markup(keys['failure'])}")
        if "x_same_host_reachable" in keys:
            other = "answers" if keys["x_same_host_reachable"] else "does not answer"
            console.print(f"  the same host {other} on its other endpoints")
        console.print(f"  verdict: {escape(verdict_line(m))}")
