"""TTL localisation (the CenTrace idea): at which hop does the ClientHello draw the reset?

Method. For k = 1, 2, … ``max_hops``: one fresh connection to the endpoint — the TCP handshake
at the normal TTL, so a stateful censor sees a real connection — then ``IP_TTL = k`` on the
connected socket and the ClientHello (:mod:`probe.raw.attempt`). That ClientHello dies at hop k
if k is short of the server, and the router there answers ICMP time-exceeded (quoting it, which
names the hop); if a censor sits within k hops it sees the ClientHello and resets; if the
server is within k hops it answers. The probing stops at the first reset or server answer.

Reading the result (:func:`summarise`):

- ``blocking_ttl``: the smallest k whose ClientHello drew a RST/FIN. The censoring device sits
  beyond hop k-1 and no farther than hop k. A censor in a router's forwarding path (iptables,
  most in-path DPI) only sees packets that router forwards — and a router drops a packet whose
  TTL runs out before forwarding it — so it shows at k = its own hop + 1, the same router
  having answered time-exceeded at k-1; a tap that looks before hop k's TTL check shows at k.
  The reset's own TTL (``hops_estimate``) tells the two apart when it falls in that window:
  then it is ``device_hop``, and ``device_address`` the router that answered at that hop.
- the server: ``server_hops_estimate`` from its SYN-ACK TTL, ``server_ttl`` the smallest k it
  answered at. A reset drawn at k below the server's hop count cannot be the server's:
  ``reset_source`` is ``injected`` then, or when the reset's TTL differs from the SYN-ACK's.

In the lab (``tests/lab/test_forensics.py``: client — ISP router — server) an ``iptables``
SNI reset on the ISP router reads: TTL 1 → time-exceeded from the router; TTL 2 → RST with TTL
64 (sent from hop 1) while the SYN-ACK had 63 (hop 2): ``blocking_ttl`` 2, ``device_hop`` 1,
``device_address`` the router's.

Limits. Routers that send no time-exceeded leave silent hops (``router`` null). ICMP errors are
rate-limited (Linux: a burst of 6, then one a second per destination), which is why each k
stops at the first one. Every k is a new connection with a new source port, so per-flow load
balancing may send it along another path (CenTrace shares this). A censor that forges its TTL,
a middlebox that rewrites TTLs, or one that resets only after seeing the server's reply,
blurs the picture; so does residual censorship (a censor that, once triggered, blocks the
same client and server for a while: later probes then fail to connect, which ends the run with
``failure``). The raw probes are kept so a reader can check. A silent path costs
``max_hops`` times ``hop_wait_s``. IPv4 only. Every ClientHello is an ordinary client's; those that
expire never reach the server, and each connection is closed at the normal TTL again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from probe.raw import attempt
from probe.raw.forensics import check_endpoint
from probe.raw.model import HopProbe, Localisation, ResetSource
from probe.raw.packets import ICMP_TIME_EXCEEDED, ICMP_UNREACHABLE, Observation, hops_estimate, observe

MAX_TTL = 255


@dataclass(frozen=True, slots=True)
class LocaliseConfig:
    """How far to probe, how long to wait, where to listen."""

    max_hops: int = 30
    connect_timeout_s: float = 5.0
    hop_wait_s: float = 1.0
    """How long a TTL-limited ClientHello may stay unanswered before the hop counts as silent."""
    linger_s: float = 0.2
    interface: str | None = None


async def localise(
    ip: str, port: int, server_name: str, *, config: LocaliseConfig | None = None
) -> Localisation:
    """Probe with TTL-limited ClientHellos for *server_name* until a reset or the server answers.

    Returns:
        The probes and their summary; a capture or connect that fails ends the probing with
        ``failure`` set.

    Raises:
        TargetError: bad endpoint.
        ValueError: ``max_hops`` outside 1..255.
    """
    check_endpoint(ip, port, server_name)
    config = config or LocaliseConfig()
    if not 1 <= config.max_hops <= MAX_TTL:
        raise ValueError(f"max_hops must be within 1..{MAX_TTL}, not {config.max_hops}")
    probes: list[HopProbe] = []
    server_hops: int | None = None
    failure: str | None = None
    for ttl in range(1, config.max_hops + 1):
        settings = attempt.Settings(
            connect_timeout_s=config.connect_timeout_s,
            wait_s=config.hop_wait_s,
            linger_s=config.linger_s,
            ttl=ttl,
            until_icmp=True,
            interface=config.interface,
        )
        done = await attempt.run(ip, port, server_name, settings)
        if done.flow is None or done.capture_failure is not None:
            failure = f"capture: {done.capture_failure}"
            break
        seen = observe(done.frames, done.flow, syn_ns=done.syn_ns, client_hello_ns=done.client_hello_ns)
        if server_hops is None and seen.syn_ack is not None:
            server_hops = seen.syn_ack.hops_estimate
        probe = hop_probe(ttl, seen, done.connect_failure)
        probes.append(probe)
        if probe.outcome == "connect_failed":
            failure = f"connect_failed: {done.connect_failure}"
            break
        if probe.outcome in ("reset", "server"):
            break
    return summarise(config.max_hops, tuple(probes), server_hops, failure)


def hop_probe(ttl: int, seen: Observation, connect_failure: str | None = None) -> HopProbe:
    """What the ClientHello sent with *ttl* drew (a reset outranks an answer, which outranks ICMP)."""
    icmp = {reply.type: reply for reply in reversed(seen.icmp)}  # the first of each type
    exceeded, unreachable = icmp.get(ICMP_TIME_EXCEEDED), icmp.get(ICMP_UNREACHABLE)
    reply = exceeded or unreachable
    silent = HopProbe(
        ttl=ttl,
        outcome="silent",
        router=None,
        reply_flags=None,
        reply_ttl=None,
        reply_ip_id=None,
        icmp_code=None,
        since_client_hello_ms=None,
        syn_ack_ttl=seen.syn_ack.ttl if seen.syn_ack else None,
        failure=None,
    )
    if connect_failure is not None:
        return replace(silent, outcome="connect_failed", failure=connect_failure)
    router = reply.source if reply else None
    resets = [reset for reset in seen.resets if reset.phase == "after_client_hello"]
    if resets:
        first = resets[0]
        return replace(
            silent,
            outcome="reset",
            router=router,
            reply_flags=first.flags,
            reply_ttl=first.ttl,
            reply_ip_id=first.ip_id,
            since_client_hello_ms=first.since_client_hello_ms,
        )
    if seen.server_answered:
        return replace(silent, outcome="server", router=router)
    if reply is None:
        return silent
    hello = seen.client_hello_ns
    return replace(
        silent,
        outcome="time_exceeded" if reply is exceeded else "unreachable",
        router=reply.source,
        reply_ttl=reply.ttl,
        reply_ip_id=reply.ip_id,
        icmp_code=reply.code,
        since_client_hello_ms=None if hello is None else round((reply.t_ns - hello) / 1e6, 3),
    )


def summarise(
    max_hops: int, probes: tuple[HopProbe, ...], server_hops_estimate: int | None, failure: str | None = None
) -> Localisation:
    """Read the probes: blocking TTL, server distance, and where the device sits (module docstring)."""
    server_ttl = next((probe.ttl for probe in probes if probe.outcome == "server"), None)
    blocking = next((probe for probe in probes if probe.outcome == "reset"), None)
    source: ResetSource | None = None
    device_hop: int | None = None
    device_address: str | None = None
    if blocking is not None and blocking.reply_ttl is not None:
        k = blocking.ttl
        forged_distance = server_hops_estimate is not None and k < server_hops_estimate
        other_ttl = blocking.syn_ack_ttl is not None and blocking.reply_ttl != blocking.syn_ack_ttl
        if forged_distance or other_ttl:
            source = "injected"
            origin = hops_estimate(blocking.reply_ttl)
            if max(1, k - 1) <= origin <= k:
                device_hop = origin
                device_address = next(
                    (probe.router for probe in probes if probe.ttl == origin and probe.router), None
                )
        elif blocking.syn_ack_ttl is not None:
            source = "end_host"
    return Localisation(
        max_hops=max_hops,
        probes=probes,
        server_hops_estimate=server_hops_estimate,
        server_ttl=server_ttl,
        blocking_ttl=blocking.ttl if blocking else None,
        reset_source=source,
        device_hop=device_hop,
        device_address=device_address,
        failure=failure,
    )
