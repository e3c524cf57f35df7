"""RST forensics: who reset the connection — the server, or a middlebox on the path?

One ordinary TCP connection to the endpoint with a TLS ClientHello for the SNI, every packet
captured (:mod:`probe.raw.attempt`). The server's SYN-ACK is the reference: its IP TTL is the
server's hop count as the client sees it, and its IP-ID the server's. Each RST or FIN that
comes back is recorded with its TTL, IP-ID, flags, sequence numbers and timing — whether it
answered the SYN or the ClientHello, and how many milliseconds after the ClientHello left — and
:func:`probe.raw.packets.classify` decides: ``injected`` (a TTL other than the SYN-ACK's, or
resets that disagree among themselves), ``end_host``, ``none`` or ``unknown``.

``reference/pakistan.md`` §1.2: Pakistan's SNI blocking (2024→) is "RST right after
ClientHello"; this tells an injected reset from a server's refusal.

Limits: a censor that forges the server's TTL exactly (it can learn it from the SYN-ACK it saw)
passes for the end host; a server behind a load balancer that terminates TCP elsewhere may show
two TTLs. IPv4 only.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass

from probe.errors import TargetError
from probe.raw import attempt
from probe.raw.model import RstForensics
from probe.raw.packets import classify, observe


@dataclass(frozen=True, slots=True)
class ForensicsConfig:
    """How long to wait, and where to listen."""

    timeout_s: float = 5.0
    """Bound on the connect, and again on the TLS handshake."""
    linger_s: float = 0.5
    """Keep capturing this long after the outcome: injectors often send several resets, and
    the server's own answer can follow an injected one."""
    interface: str | None = None
    """Capture here instead of on the interface of the route to the endpoint."""


def check_endpoint(ip: str, port: int, server_name: str) -> None:
    """Refuse what these measurements cannot take.

    Raises:
        TargetError: *ip* is not an IPv4 address, *port* is outside 1..65535, or *server_name*
            is empty.
    """
    try:
        ipaddress.IPv4Address(ip)
    except ValueError:
        raise TargetError(f"{ip!r} is not an IPv4 address (raw forensics is IPv4 only)") from None
    if not 0 < port < 65536:
        raise TargetError(f"invalid port {port}")
    if not server_name:
        raise TargetError("empty server name (SNI)")


async def rst_forensics(
    ip: str, port: int, server_name: str, *, config: ForensicsConfig | None = None
) -> RstForensics:
    """Connect to *ip*:*port*, send a ClientHello for *server_name*, and judge any reset.

    Returns:
        The forensics; network outcomes and a capture that cannot run (no privilege, no
        route) are recorded as failure strings, with verdict ``unknown`` when nothing was seen.

    Raises:
        TargetError: bad endpoint (see :func:`check_endpoint`).
    """
    check_endpoint(ip, port, server_name)
    config = config or ForensicsConfig()
    started = time.monotonic()
    settings = attempt.Settings(
        connect_timeout_s=config.timeout_s,
        wait_s=config.timeout_s,
        linger_s=config.linger_s,
        interface=config.interface,
    )
    done = await attempt.run(ip, port, server_name, settings)
    elapsed_ms = round((time.monotonic() - started) * 1000, 3)
    if done.flow is None or done.capture_failure is not None:
        return RstForensics(
            ip=ip,
            port=port,
            server_name=server_name,
            interface=done.interface,
            capture_failure=done.capture_failure,
            failure=None,
            client_hello_sent=False,
            client_hello_bytes=0,
            server_answered=False,
            syn_ack=None,
            resets=(),
            verdict="unknown",
            signs=("no_capture",),
            elapsed_ms=elapsed_ms,
        )
    seen = observe(done.frames, done.flow, syn_ns=done.syn_ns, client_hello_ns=done.client_hello_ns)
    verdict, signs = classify(seen.syn_ack, seen.resets)
    return RstForensics(
        ip=ip,
        port=port,
        server_name=server_name,
        interface=done.interface,
        capture_failure=None,
        failure=done.failure,
        client_hello_sent=done.client_hello_ns is not None,
        client_hello_bytes=done.client_hello_bytes,
        server_answered=done.server_answered,
        syn_ack=seen.syn_ack,
        resets=seen.resets,
        verdict=verdict,
        signs=signs,
        elapsed_ms=elapsed_ms,
    )
