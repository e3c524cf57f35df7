"""TTL localisation, the pure part: what each TTL-limited ClientHello drew, and where the censor sits."""

from __future__ import annotations

from typing import Any

import pytest

from probe.raw.localise import hop_probe, summarise
from probe.raw.model import HopOutcome, HopProbe
from probe.raw.packets import Frame, observe
from probe.serialize import as_dict
from tests.raw.test_packets import FLOW, HELLO, HELLO_END, ROUTER, handshake, icmp_about, received, sent


def _limited(ttl: int) -> list[Frame]:
    """The handshake at the normal TTL, then the ClientHello with IP TTL *ttl*."""
    frames = handshake()
    return [*frames[:3], sent(300, "PA", payload=HELLO, ttl=ttl)]


def test_a_router_answering_time_exceeded() -> None:
    frames = _limited(1)
    seen = observe([*frames, icmp_about(frames[3], t_us=400, ip_id=36972)], FLOW)
    assert hop_probe(1, seen) == HopProbe(1, "time_exceeded", ROUTER, None, 64, 36972, 0, 0.1, 63, None)


def test_an_unreachable_answer() -> None:
    frames = _limited(3)
    seen = observe([*frames, icmp_about(frames[3], t_us=450, kind=3, source="10.1.2.1")], FLOW)
    assert hop_probe(3, seen) == HopProbe(3, "unreachable", "10.1.2.1", None, 64, 7, 0, 0.15, 63, None)


def test_a_reset_outranks_an_icmp_error_at_the_same_ttl() -> None:
    frames = _limited(2)
    seen = observe([*frames, icmp_about(frames[3], t_us=400), received(380, "R", ttl=64)], FLOW)
    assert hop_probe(2, seen) == HopProbe(2, "reset", ROUTER, "R", 64, 0, None, 0.08, 63, None)


@pytest.mark.parametrize(
    ("extra", "outcome"),
    [
        ([], "silent"),
        ([received(500, "A", ttl=63, ack=HELLO_END)], "server"),
        ([received(500, "PA", ttl=63, payload=b"\x16\x03\x03\x00\x01x")], "server"),
    ],
)
def test_silence_and_the_server(extra: list[Frame], outcome: HopOutcome) -> None:
    probe = hop_probe(4, observe([*_limited(4), *extra], FLOW))
    assert (probe.outcome, probe.router, probe.reply_ttl, probe.syn_ack_ttl) == (outcome, None, None, 63)


def test_a_failed_connect() -> None:
    seen = observe([sent(0, "S", seq=999, ack=0), received(150, "RA", ttl=64, seq=0, ack=1000)], FLOW)
    assert hop_probe(1, seen, "connection_refused") == HopProbe(
        1, "connect_failed", None, None, None, None, None, None, None, "connection_refused"
    )


def _hop(ttl: int, outcome: HopOutcome, **fields: Any) -> HopProbe:
    base: dict[str, Any] = {
        "router": None,
        "reply_flags": None,
        "reply_ttl": None,
        "reply_ip_id": None,
        "icmp_code": None,
        "since_client_hello_ms": None,
        "syn_ack_ttl": 63,
        "failure": None,
    }
    return HopProbe(ttl, outcome, **{**base, **fields})


EXCEEDED_1 = _hop(1, "time_exceeded", router="10.23.1.1", reply_ttl=64, icmp_code=0)


def test_an_in_path_censor_in_the_first_router() -> None:
    """The lab's shape: the ISP router answers at TTL 1, its FORWARD rule resets at TTL 2."""
    reset = _hop(2, "reset", reply_flags="R", reply_ttl=64, reply_ip_id=0)
    located = summarise(30, (EXCEEDED_1, reset), server_hops_estimate=2)
    assert as_dict(located) == {
        "max_hops": 30,
        "probes": [as_dict(EXCEEDED_1), as_dict(reset)],
        "server_hops_estimate": 2,
        "server_ttl": None,
        "blocking_ttl": 2,
        "reset_source": "injected",
        "device_hop": 1,
        "device_address": "10.23.1.1",
        "failure": None,
    }


def test_the_server_resetting_itself() -> None:
    reset = _hop(2, "reset", reply_flags="R", reply_ttl=63)
    located = summarise(30, (EXCEEDED_1, reset), server_hops_estimate=2)
    assert (located.blocking_ttl, located.reset_source, located.device_hop, located.device_address) == (
        2,
        "end_host",
        None,
        None,
    )


def test_a_reset_short_of_the_server_is_injected_even_with_the_servers_ttl() -> None:
    """A censor forging the SYN-ACK's TTL still gives itself away by answering too early."""
    probes = (
        EXCEEDED_1,
        _hop(2, "time_exceeded", router="10.23.2.1", reply_ttl=63, syn_ack_ttl=57),
        _hop(3, "reset", reply_flags="RA", reply_ttl=57, syn_ack_ttl=57),
    )
    located = summarise(30, probes, server_hops_estimate=8)
    assert (located.blocking_ttl, located.reset_source) == (3, "injected")
    # The forged TTL puts the sender at hop 8, outside the window the probes measured (2..3).
    assert (located.device_hop, located.device_address) == (None, None)


def test_a_tap_seen_at_the_hop_itself() -> None:
    probes = (
        EXCEEDED_1,
        _hop(2, "time_exceeded", router="10.23.2.1", reply_ttl=63),
        _hop(3, "reset", router="10.23.3.1", reply_flags="R", reply_ttl=62, syn_ack_ttl=60),
    )
    located = summarise(30, probes, server_hops_estimate=5)
    assert (located.device_hop, located.device_address) == (3, "10.23.3.1")


def test_no_censor_on_the_way_to_the_server() -> None:
    probes = (EXCEEDED_1, _hop(2, "silent"), _hop(3, "server"))
    located = summarise(30, probes, server_hops_estimate=3)
    assert (located.server_ttl, located.blocking_ttl, located.reset_source, located.device_hop) == (
        3,
        None,
        None,
        None,
    )


def test_a_failure_is_kept() -> None:
    probe = _hop(1, "connect_failed", syn_ack_ttl=None, failure="connection_refused")
    located = summarise(30, (probe,), None, "connect_failed: connection_refused")
    assert (located.failure, located.blocking_ttl, located.server_hops_estimate) == (
        "connect_failed: connection_refused",
        None,
        None,
    )
