"""The packet analysis on scapy-built packets: flows, timing, resets → verdicts (no privilege needed)."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.packet import Padding, Raw

from probe.raw.model import ResetPacket, SynAck, Verdict
from probe.raw.packets import Flow, Frame, belongs, classify, hops_estimate, observe
from probe.serialize import as_dict

CLIENT, SERVER, ROUTER = "10.1.1.2", "10.1.64.10", "10.1.1.1"
FLOW = Flow(SERVER, 443, 40000)
T0 = 1_700_000_000_000_000_000
HELLO = b"\x16\x03\x01\x00\xc8" + bytes(200)
HELLO_END = 1000 + len(HELLO)


def sent(
    t_us: int, flags: str, *, seq: int = 1000, ack: int = 5000, payload: bytes = b"", ttl: int = 64
) -> Frame:
    """A packet this machine sent to the server, *t_us* microseconds after T0."""
    packet = IP(src=CLIENT, dst=SERVER, ttl=ttl) / TCP(
        sport=FLOW.local_port, dport=443, flags=flags, seq=seq, ack=ack
    )
    return Frame(T0 + t_us * 1000, True, bytes(packet / Raw(payload) if payload else packet))


def received(
    t_us: int,
    flags: str,
    *,
    ttl: int,
    ip_id: int = 0,
    seq: int = 5000,
    ack: int = HELLO_END,
    payload: bytes = b"",
    sport: int = 443,
    dport: int = FLOW.local_port,
    outbound: bool = False,
) -> Frame:
    """A packet from the server's address (whoever sent it) to this machine."""
    packet = IP(src=SERVER, dst=CLIENT, ttl=ttl, id=ip_id) / TCP(
        sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=0 if "R" in flags else 502
    )
    if payload:
        packet = packet / Raw(payload)
    return Frame(T0 + t_us * 1000, outbound, bytes(packet))


def handshake(syn_ack_ttl: int = 63) -> list[Frame]:
    """SYN at 0, SYN-ACK at 200 µs, ACK at 250 µs, ClientHello at 300 µs."""
    return [
        sent(0, "S", seq=999, ack=0),
        received(200, "SA", ttl=syn_ack_ttl, seq=4999, ack=1000),
        sent(250, "A"),
        sent(300, "PA", payload=HELLO),
    ]


def icmp_about(packet: Frame, *, t_us: int, kind: int = 11, source: str = ROUTER, ip_id: int = 7) -> Frame:
    """An ICMP error from *source* quoting the first 28 bytes of *packet* (RFC 792's minimum)."""
    error = IP(src=source, dst=CLIENT, ttl=64, id=ip_id) / ICMP(type=kind, code=0) / Raw(packet.data[:28])
    return Frame(T0 + t_us * 1000, False, bytes(error))


RESET_SCENARIOS: list[tuple[str, list[Frame], Verdict, tuple[str, ...]]] = [
    ("no reset", [], "none", ()),
    ("in-path RST, one hop nearer", [received(420, "R", ttl=64)], "injected", ("ttl_mismatch",)),
    ("server RST", [received(420, "RA", ttl=63, ip_id=0)], "end_host", ()),
    ("server FIN", [received(420, "FA", ttl=63, ip_id=311)], "end_host", ()),
    (
        "injector racing the server",
        [received(420, "R", ttl=50), received(900, "RA", ttl=63)],
        "injected",
        ("ttl_mismatch", "resets_disagree_ttl"),
    ),
    (
        "TTL forged to the server's, IP-IDs of two senders",
        [received(420, "R", ttl=63, ip_id=1234), received(430, "R", ttl=63, ip_id=40000)],
        "injected",
        ("resets_disagree_ip_id",),
    ),
    (
        "one sender's IP-ID counter",
        [received(420, "R", ttl=63, ip_id=65535), received(430, "R", ttl=63, ip_id=2)],
        "end_host",
        (),
    ),
    (
        "Linux's IP-ID 0 outside a socket",
        [received(420, "R", ttl=63, ip_id=0), received(430, "R", ttl=63, ip_id=0)],
        "end_host",
        (),
    ),
]


@pytest.mark.parametrize(
    ("extra", "verdict", "signs"),
    [scenario[1:] for scenario in RESET_SCENARIOS],
    ids=[scenario[0] for scenario in RESET_SCENARIOS],
)
def test_verdicts(extra: list[Frame], verdict: Verdict, signs: tuple[str, ...]) -> None:
    seen = observe(handshake() + extra, FLOW)
    assert seen.syn_ack == SynAck(ttl=63, ip_id=0, hops_estimate=2, since_syn_ms=0.2)
    assert classify(seen.syn_ack, seen.resets) == (verdict, signs)
    assert all(reset.phase == "after_client_hello" for reset in seen.resets)


def test_an_injected_reset_in_full() -> None:
    seen = observe([*handshake(), received(420, "R", ttl=64, seq=5000, ack=0)], FLOW)
    assert [as_dict(reset) for reset in seen.resets] == [
        {
            "flags": "R",
            "ttl": 64,
            "ip_id": 0,
            "hops_estimate": 1,
            "seq": 5000,
            "ack": 0,
            "window": 0,
            "phase": "after_client_hello",
            "since_syn_ms": 0.42,
            "since_client_hello_ms": 0.12,
        }
    ]
    assert (seen.syn_ns, seen.client_hello_ns) == (T0, T0 + 300_000)
    assert not seen.server_answered


def test_a_reset_answering_the_syn_has_nothing_to_compare_with() -> None:
    seen = observe([sent(0, "S", seq=999, ack=0), received(150, "RA", ttl=64, seq=0, ack=1000)], FLOW)
    assert seen.syn_ack is None and seen.client_hello_ns is None
    assert seen.resets == (ResetPacket("RA", 64, 0, 1, 0, 1000, 0, "after_syn", 0.15, None),)
    assert classify(seen.syn_ack, seen.resets) == ("unknown", ("no_syn_ack",))


def test_a_reset_before_the_client_hello_is_after_the_syn() -> None:
    frames = handshake()
    early = received(280, "R", ttl=64)
    seen = observe([*frames[:3], early, frames[3]], FLOW)
    assert [(reset.phase, reset.since_client_hello_ms) for reset in seen.resets] == [("after_syn", None)]
    assert classify(seen.syn_ack, seen.resets) == ("injected", ("ttl_mismatch",))


def test_other_flows_and_loopback_echoes_are_ignored() -> None:
    noise = [
        received(210, "SA", ttl=10, dport=40001),  # another local port
        received(220, "SA", ttl=20, sport=444),  # another server port
        received(205, "SA", ttl=30, seq=4999, ack=1000, outbound=True),  # loopback's outgoing copy
        received(430, "R", ttl=64, outbound=True),  # ditto: not something we received
    ]
    seen = observe(handshake() + noise, FLOW)
    assert seen.syn_ack is not None and seen.syn_ack.ttl == 63
    assert seen.resets == ()
    assert classify(seen.syn_ack, seen.resets) == ("none", ())


@pytest.mark.parametrize(
    ("answer", "answered"),
    [
        (received(500, "A", ttl=63, ack=1000), False),  # acknowledges only the handshake
        (received(500, "A", ttl=63, ack=HELLO_END), True),  # acknowledges the ClientHello
        (received(500, "PA", ttl=63, ack=1000, payload=b"\x16\x03\x03\x00\x02hi"), True),  # data
        (received(500, "RA", ttl=63, ack=HELLO_END), False),  # a reset is no answer
    ],
)
def test_server_answer(answer: Frame, answered: bool) -> None:
    assert observe([*handshake(), answer], FLOW).server_answered is answered


def test_link_layer_padding_is_not_payload() -> None:
    padded = (
        IP(src=SERVER, dst=CLIENT, ttl=63)
        / TCP(sport=443, dport=40000, flags="A", ack=1000)
        / Padding(bytes(6))
    )
    frame = Frame(T0 + 500_000, False, bytes(padded))
    assert len(frame.data) == 46
    assert observe([*handshake(), frame], FLOW).server_answered is False


def test_missed_outgoing_packets_fall_back_to_the_senders_clock() -> None:
    frames = [received(200, "SA", ttl=63, seq=4999, ack=1000), received(420, "R", ttl=64)]
    seen = observe(frames, FLOW, syn_ns=T0, client_hello_ns=T0 + 300_000)
    assert seen.syn_ack is not None and seen.syn_ack.since_syn_ms == 0.2
    assert [reset.since_client_hello_ms for reset in seen.resets] == [0.12]


def test_icmp_errors_quoting_the_flow() -> None:
    hello = sent(300, "PA", payload=HELLO, ttl=1)
    stranger = IP(src=CLIENT, dst=SERVER, ttl=1) / TCP(sport=40001, dport=443, flags="PA") / Raw(HELLO)
    frames = [
        *handshake()[:3],
        hello,
        icmp_about(hello, t_us=400),
        icmp_about(Frame(0, True, bytes(stranger)), t_us=410, source="10.9.9.9"),
    ]
    seen = observe(frames, FLOW)
    assert [(reply.type, reply.code, reply.source, reply.ttl, reply.ip_id) for reply in seen.icmp] == [
        (11, 0, ROUTER, 64, 7)
    ]


def test_belongs() -> None:
    hello = sent(300, "PA", payload=HELLO)
    assert belongs(hello.data, FLOW)
    assert belongs(received(420, "R", ttl=64).data, FLOW)
    assert not belongs(received(420, "R", ttl=64, dport=40001).data, FLOW)
    assert not belongs(bytes(IP(src=CLIENT, dst="10.1.64.11") / TCP(sport=40000, dport=443)), FLOW)
    assert belongs(icmp_about(hello, t_us=400).data, FLOW)
    assert belongs(icmp_about(hello, t_us=400, kind=3).data, FLOW)
    assert not belongs(bytes(IP(src=ROUTER, dst=CLIENT) / ICMP(type=0) / Raw(hello.data[:28])), FLOW)
    echo_of_other = IP(src=CLIENT, dst=SERVER) / TCP(sport=40001, dport=443)
    assert not belongs(icmp_about(Frame(0, True, bytes(echo_of_other)), t_us=400).data, FLOW)
    assert not belongs(b"\x60" + bytes(39), FLOW)  # IPv6
    assert not belongs(b"\x45\x00", FLOW)


@pytest.mark.parametrize(
    ("ttl", "hop"), [(64, 1), (63, 2), (50, 15), (128, 1), (113, 16), (255, 1), (250, 6), (30, 3)]
)
def test_hops_estimate(ttl: int, hop: int) -> None:
    assert hops_estimate(ttl) == hop
