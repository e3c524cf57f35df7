"""Packet analysis, pure: the captured packets of one connection → SYN-ACK, resets, ICMP, verdict.

Input is what :mod:`probe.raw.capture` records — IPv4 packets with a kernel timestamp and a
direction — so the tests feed it packets built with scapy, no privilege needed.

Who sent a reset (:func:`classify`), by the signs the literature uses (Weaver et al., "Detecting
Forged TCP Reset Packets", NDSS 2009; CenTrace, Raman et al., CoNEXT 2022):

- ``ttl_mismatch`` — a RST/FIN arrived with an IP TTL other than the SYN-ACK's. The server's
  packets cross the same number of routers, so a different TTL means another sender, a
  middlebox at another hop count: **injected**. (A route change within the connection's
  lifetime would also do it: rare on the milliseconds this takes.)
- ``resets_disagree_ttl`` — several RSTs/FINs with different TTLs between themselves (an
  injector racing the server, or several injectors): **injected**.
- ``resets_disagree_ip_id`` — several RSTs/FINs whose non-zero IP-IDs are not one sender's
  sequence (each later one at most :data:`IP_ID_STEP` above the earlier): **injected**.
  Zero IDs are ignored: Linux sends IP-ID 0 on DF packets that belong to no socket, its RSTs
  included. Weaker than the TTL signs: a busy host with one global counter jumps too.

With no such sign the resets are the server's own (``end_host``); with no reset at all
``none``; resets without a SYN-ACK to compare with (a RST answering the SYN) ``unknown``.
"""

from __future__ import annotations

import functools
import ipaddress
import itertools
import struct
from dataclasses import dataclass

from scapy.layers.inet import ICMP, IP, TCP

from probe.raw.model import Phase, ResetPacket, SynAck, Verdict

IP_ID_STEP = 64
"""The largest forward step between two IP-IDs still read as one sender's counter."""
INITIAL_TTLS = (32, 64, 128, 255)
"""The initial TTLs operating systems use (Windows 128, Linux/macOS 64, network gear 255)."""
ICMP_UNREACHABLE = 3
ICMP_TIME_EXCEEDED = 11
_TCP = 6
_ICMP = 1
_SEQ_SPACE = 1 << 32


@dataclass(frozen=True, slots=True)
class Flow:
    """One TCP connection as seen from the client: the server's ``ip:port`` and our port."""

    remote_ip: str
    remote_port: int
    local_port: int


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured IPv4 packet."""

    t_ns: int
    """Kernel timestamp, nanoseconds since the epoch (``CLOCK_REALTIME``, as ``time.time_ns``)."""
    outbound: bool
    """Sent by this machine (``PACKET_OUTGOING``), not received."""
    data: bytes
    """The IPv4 packet from its header on (link-layer padding may follow)."""


@dataclass(frozen=True, slots=True)
class IcmpReply:
    """An ICMP error quoting one of the flow's packets (time exceeded, unreachable)."""

    type: int
    code: int
    source: str
    ttl: int
    ip_id: int
    t_ns: int


@dataclass(frozen=True, slots=True)
class Observation:
    """What one connection's packets show."""

    syn_ns: int | None
    client_hello_ns: int | None
    syn_ack: SynAck | None
    resets: tuple[ResetPacket, ...]
    icmp: tuple[IcmpReply, ...]
    server_answered: bool
    """The server sent data, or acknowledged the ClientHello, in a packet that was no RST/FIN."""


def belongs(data: bytes, flow: Flow) -> bool:
    """Whether an IPv4 packet is the flow's, either way, or an ICMP error quoting one of its packets.

    A cheap test on raw bytes (no parsing), to keep a busy interface's other traffic out.
    """
    if len(data) < 20 or data[0] >> 4 != 4:
        return False
    ihl = (data[0] & 0x0F) * 4
    remote = _packed(flow.remote_ip)
    if data[9] == _TCP and len(data) >= ihl + 4:
        sport, dport = struct.unpack_from("!HH", data, ihl)
        if data[12:16] == remote:
            return (sport, dport) == (flow.remote_port, flow.local_port)
        if data[16:20] == remote:
            return (sport, dport) == (flow.local_port, flow.remote_port)
        return False
    if data[9] == _ICMP and len(data) >= ihl + 8 + 20 and data[ihl] in (ICMP_UNREACHABLE, ICMP_TIME_EXCEEDED):
        inner = data[ihl + 8 :]
        inner_ihl = (inner[0] & 0x0F) * 4
        if inner[9] != _TCP or inner[16:20] != remote or len(inner) < inner_ihl + 4:
            return False
        return struct.unpack_from("!HH", inner, inner_ihl) == (flow.local_port, flow.remote_port)
    return False


@functools.lru_cache(maxsize=64)
def _packed(ip: str) -> bytes:
    return ipaddress.IPv4Address(ip).packed


def hops_estimate(ttl: int) -> int:
    """The hop a packet was sent from (1 = the first router), assuming a common initial TTL."""
    initial = next(value for value in INITIAL_TTLS if value >= ttl)
    return initial - ttl + 1


def observe(
    frames: list[Frame] | tuple[Frame, ...],
    flow: Flow,
    *,
    syn_ns: int | None = None,
    client_hello_ns: int | None = None,
) -> Observation:
    """Read one connection's captured packets.

    *syn_ns* and *client_hello_ns* are the sender's own clock readings, used only when the
    capture missed the outgoing SYN or ClientHello (the captured times are more exact).
    """
    ordered = sorted(frames, key=lambda frame: frame.t_ns)
    packets = [(frame, IP(frame.data)) for frame in ordered]
    syn_captured = hello_captured = None
    hello_end = None
    for frame, ip in packets:
        if not (frame.outbound and ip.proto == _TCP and _is_outbound(ip, flow)):
            continue
        tcp, payload = ip[TCP], _payload_length(ip)
        if syn_captured is None and tcp.flags.S and not tcp.flags.A:
            syn_captured = frame.t_ns
        elif payload and hello_captured is None:
            hello_captured = frame.t_ns
            hello_end = (tcp.seq + payload) % _SEQ_SPACE
    syn_t = syn_captured if syn_captured is not None else syn_ns
    hello_t = hello_captured if hello_captured is not None else client_hello_ns
    syn_ack: SynAck | None = None
    resets: list[ResetPacket] = []
    icmp: list[IcmpReply] = []
    answered = False
    for frame, ip in packets:
        if frame.outbound:
            continue
        if ip.proto == _ICMP:
            if belongs(frame.data, flow):  # an error quoting one of our packets
                icmp.append(IcmpReply(ip[ICMP].type, ip[ICMP].code, ip.src, ip.ttl, ip.id, frame.t_ns))
            continue
        if not _is_inbound(ip, flow):
            continue
        tcp = ip[TCP]
        if tcp.flags.S and tcp.flags.A:
            if syn_ack is None:
                syn_ack = SynAck(ip.ttl, ip.id, hops_estimate(ip.ttl), _ms(frame.t_ns, syn_t))
        elif tcp.flags.R or tcp.flags.F:
            after_hello = hello_t is not None and frame.t_ns >= hello_t
            phase: Phase = "after_client_hello" if after_hello else "after_syn"
            since_hello = _ms(frame.t_ns, hello_t) if after_hello else None
            resets.append(
                ResetPacket(
                    flags=str(tcp.flags),
                    ttl=ip.ttl,
                    ip_id=ip.id,
                    hops_estimate=hops_estimate(ip.ttl),
                    seq=tcp.seq,
                    ack=tcp.ack,
                    window=tcp.window,
                    phase=phase,
                    since_syn_ms=_ms(frame.t_ns, syn_t),
                    since_client_hello_ms=since_hello,
                )
            )
        elif _payload_length(ip) or (hello_end is not None and tcp.flags.A and _covers(tcp.ack, hello_end)):
            answered = True
    return Observation(syn_t, hello_t, syn_ack, tuple(resets), tuple(icmp), answered)


def classify(syn_ack: SynAck | None, resets: tuple[ResetPacket, ...]) -> tuple[Verdict, tuple[str, ...]]:
    """Who sent *resets*: the verdict and the signs behind it (rules in the module docstring)."""
    if not resets:
        return "none", ()
    signs: list[str] = []
    if syn_ack is not None and any(reset.ttl != syn_ack.ttl for reset in resets):
        signs.append("ttl_mismatch")
    if len({reset.ttl for reset in resets}) > 1:
        signs.append("resets_disagree_ttl")
    if _ip_ids_disagree([reset.ip_id for reset in resets]):
        signs.append("resets_disagree_ip_id")
    if signs:
        return "injected", tuple(signs)
    if syn_ack is None:
        return "unknown", ("no_syn_ack",)
    return "end_host", ()


def _ip_ids_disagree(ids: list[int]) -> bool:
    nonzero = [value for value in ids if value]
    return any((later - earlier) % 65536 > IP_ID_STEP for earlier, later in itertools.pairwise(nonzero))


def _is_outbound(ip: IP, flow: Flow) -> bool:
    tcp = ip[TCP]
    return bool(ip.dst == flow.remote_ip and (tcp.sport, tcp.dport) == (flow.local_port, flow.remote_port))


def _is_inbound(ip: IP, flow: Flow) -> bool:
    if ip.proto != _TCP:
        return False
    tcp = ip[TCP]
    return bool(ip.src == flow.remote_ip and (tcp.sport, tcp.dport) == (flow.remote_port, flow.local_port))


def _payload_length(ip: IP) -> int:
    """TCP payload bytes from the headers' lengths: link-layer padding is not payload."""
    return max(0, int(ip.len) - int(ip.ihl) * 4 - int(ip[TCP].dataofs) * 4)


def _covers(ack: int, end: int) -> bool:
    """Whether *ack* acknowledges everything up to *end* (sequence numbers wrap)."""
    return (ack - end) % _SEQ_SPACE < _SEQ_SPACE // 2


def _ms(t_ns: int, since_ns: int | None) -> float | None:
    return None if since_ns is None else round((t_ns - since_ns) / 1e6, 3)
