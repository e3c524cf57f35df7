"""``probe forensics URL``: who resets the TLS connection (RST forensics), and where (TTL localisation).

Needs root or ``CAP_NET_RAW`` (raw packet capture); without, exit 2 with one line. scapy is
imported only when the command runs, so the other commands do not pay for it.
"""

from __future__ import annotations

import asyncio
import json

import click
from rich.console import Console
from rich.markup import escape

from probe.errors import PrivilegeError
from probe.raw.model import ForensicsReport, HopProbe, Localisation, ResetPacket, RstForensics


@click.command()
@click.argument("url")
@click.option(
    "--address", metavar="IP", help="Measure this IPv4 address instead of resolving the URL's host."
)
@click.option(
    "--max-hops",
    type=click.IntRange(0, 255),
    default=30,
    show_default=True,
    help="Highest TTL of the localisation probes; 0 skips localisation.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True, max=60),
    default=5.0,
    show_default=True,
    help="Seconds allowed for the connect, and again for the TLS handshake.",
)
@click.option(
    "--hop-wait",
    type=click.FloatRange(min=0, min_open=True, max=30),
    default=1.0,
    show_default=True,
    help="Seconds a TTL-limited ClientHello may go unanswered before its hop counts as silent.",
)
@click.option("--interface", metavar="NAME", help="Capture on this interface (default: the route's).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def forensics(
    url: str,
    address: str | None,
    max_hops: int,
    timeout: float,
    hop_wait: float,
    interface: str | None,
    as_json: bool,
) -> None:
    """Send a TLS ClientHello for URL's host and capture who resets it, then localise the censor.

    Exits 0 whatever it finds; 2 for bad input or without raw-socket privileges.
    """
    from probe.raw.capture import capture_problem
    from probe.raw.forensics import ForensicsConfig
    from probe.raw.investigate import investigate, parse_target
    from probe.raw.localise import LocaliseConfig

    parse_target(url, address)  # bad input first: telling it needs no privilege
    problem = capture_problem()
    if problem is not None:
        raise PrivilegeError(f"probe forensics: {problem}")
    located = None
    if max_hops:
        located = LocaliseConfig(
            max_hops=max_hops, connect_timeout_s=timeout, hop_wait_s=hop_wait, interface=interface
        )
    report = asyncio.run(
        investigate(
            url=url,
            address=address,
            forensics=ForensicsConfig(timeout_s=timeout, interface=interface),
            localisation=located,
        )
    )
    if as_json:
        from probe.serialize import as_dict

        click.echo(json.dumps(as_dict(report), ensure_ascii=False))
    else:
        render(report, Console(highlight=False, soft_wrap=True))


def render(report: ForensicsReport, console: Console) -> None:
    """The report for people: the resets against the SYN-ACK, the verdict, then the hops."""
    console.print(
        f"[bold]{escape(report.input)}[/]  {report.ip}:{report.port} sni={escape(report.server_name)}"
        f"  ({report.test_runtime_s:.2f} s)"
    )
    _render_resets(report.rst_forensics, console)
    if report.localisation is not None:
        _render_localisation(report.localisation, console)


def _render_resets(rst: RstForensics, console: Console) -> None:
    if rst.capture_failure:
        console.print(f"  capture on {rst.interface or '?'}: [bold red]✗ {escape(rst.capture_failure)}[/]")
    if rst.syn_ack is not None:
        s = rst.syn_ack
        console.print(
            f"  syn-ack    ttl={s.ttl} ip_id={s.ip_id} (hop ≈{s.hops_estimate})  {_ms(s.since_syn_ms)}"
        )
    elif not rst.capture_failure:
        console.print("  syn-ack    [dim](none)[/]")
    for reset in rst.resets:
        console.print(f"  {_reset_line(reset)}")
    if not rst.capture_failure:
        outcome = f"[bold red]✗ {escape(rst.failure)}[/]" if rst.failure else "[green]handshake completed[/]"
        console.print(f"  tls        {outcome}")
    signs = f" ({', '.join(rst.signs)})" if rst.signs else ""
    colour = {"injected": "bold red", "end_host": "yellow", "none": "green"}.get(rst.verdict, "bold")
    console.print(f"verdict: [{colour}]{rst.verdict}[/]{escape(signs)}")


def _reset_line(reset: ResetPacket) -> str:
    when = (
        f"+{reset.since_client_hello_ms:.2f} ms after the ClientHello"
        if reset.since_client_hello_ms is not None
        else f"after the SYN ({_ms(reset.since_syn_ms)})"
    )
    return (
        f"{'reset' if 'R' in reset.flags else 'fin':<5} {reset.flags:<4} ttl={reset.ttl} "
        f"ip_id={reset.ip_id} (hop ≈{reset.hops_estimate})  {when}"
    )


def _render_localisation(loc: Localisation, console: Console) -> None:
    console.print("localisation (TTL-limited ClientHello):")
    for probe in loc.probes:
        console.print(f"  ttl {probe.ttl:>3}  {_hop_line(probe)}")
    if loc.failure:
        console.print(f"  [bold red]✗ {escape(loc.failure)}[/]")
    server = (
        f"server at hop ≈{loc.server_hops_estimate}" if loc.server_hops_estimate else "server hop unknown"
    )
    if loc.server_ttl is not None:
        server += f", answered at ttl {loc.server_ttl}"
    if loc.blocking_ttl is None:
        if not loc.failure:
            console.print(f"→ no reset within {len(loc.probes)} hop(s); {server}")
        return
    where = ""
    if loc.device_hop is not None:
        where = f"; device at hop {loc.device_hop}" + (
            f" ({loc.device_address})" if loc.device_address else ""
        )
    console.print(
        f"→ reset drawn at ttl {loc.blocking_ttl} ({loc.reset_source or 'source unknown'}){where}; {server}"
    )


def _hop_line(probe: HopProbe) -> str:
    parts: list[str] = [probe.outcome]
    if probe.router:
        parts.append(f"from {probe.router}")
    if probe.reply_flags:
        parts.append(probe.reply_flags)
    if probe.reply_ttl is not None:
        parts.append(f"reply ttl={probe.reply_ttl} ip_id={probe.reply_ip_id}")
    if probe.failure:
        parts.append(probe.failure)
    return escape("  ".join(parts)) + (
        f"  {_ms(probe.since_client_hello_ms)}" if probe.since_client_hello_ms else ""
    )


def _ms(value: float | None) -> str:
    return "" if value is None else f"[dim]{value:.2f} ms[/]"
