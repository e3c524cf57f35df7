"""RST forensics and TTL localisation against real loopback servers, captured on ``lo`` (root only).

On loopback the server is the only sender, so every reset is the end host's: these tests prove
the capture, the timing and the classification of real kernel packets; the lab tests
(tests/lab/test_forensics.py) prove the injected case with a real censor in between.
"""

from __future__ import annotations

import asyncio

import pytest
import trustme

from probe.errors import TargetError
from probe.raw.forensics import ForensicsConfig, rst_forensics
from probe.raw.localise import LocaliseConfig, localise
from probe.raw.model import RstForensics, Verdict
from tests.servers.tcp_server import Behaviour, closed_port, tcp_server

FAST = ForensicsConfig(timeout_s=2.0, linger_s=0.2)


def _forensics(port: int, config: ForensicsConfig = FAST) -> RstForensics:
    return asyncio.run(rst_forensics("127.0.0.1", port, "x.com", config=config))


@pytest.mark.raw
@pytest.mark.parametrize(
    ("behaviour", "verdict", "failure", "flags"),
    [
        ("tls", "none", None, []),
        ("reset_after_hello", "end_host", "connection_reset", ["RA"]),
        ("close_after_hello", "end_host", "eof_error", ["FA"]),
    ],
)
def test_server_behaviours(
    ca: trustme.CA, behaviour: Behaviour, verdict: Verdict, failure: str | None, flags: list[str]
) -> None:
    with tcp_server(behaviour, ca.issue_cert("x.com") if behaviour == "tls" else None) as port:
        result = _forensics(port)
    assert (result.interface, result.capture_failure, result.failure) == ("lo", None, failure)
    assert (result.verdict, result.signs) == (verdict, ())
    assert result.client_hello_sent and result.client_hello_bytes > 200
    assert result.server_answered is (behaviour == "tls")
    assert result.syn_ack is not None
    assert (result.syn_ack.ttl, result.syn_ack.hops_estimate) == (64, 1)
    assert [reset.flags for reset in result.resets] == flags
    for reset in result.resets:
        assert (reset.ttl, reset.phase) == (64, "after_client_hello")
        assert reset.since_client_hello_ms is not None and 0 <= reset.since_client_hello_ms < 1000


@pytest.mark.raw
def test_a_silent_server_is_no_reset() -> None:
    with tcp_server("accept") as port:
        result = _forensics(port, ForensicsConfig(timeout_s=0.3, linger_s=0.1))
    assert (result.failure, result.verdict, result.resets) == ("generic_timeout_error", "none", ())


@pytest.mark.raw
def test_a_refused_connect_has_no_syn_ack_to_compare_with() -> None:
    result = _forensics(closed_port())
    assert (result.failure, result.verdict, result.signs) == (
        "connection_refused",
        "unknown",
        ("no_syn_ack",),
    )
    assert not result.client_hello_sent
    assert [(reset.flags, reset.ttl, reset.phase) for reset in result.resets] == [("RA", 64, "after_syn")]


@pytest.mark.raw
def test_a_capture_that_cannot_start_is_a_failure_string() -> None:
    result = _forensics(closed_port(), ForensicsConfig(interface="nosuchif0"))
    assert result.capture_failure is not None and result.capture_failure.startswith("unknown_failure: ")
    assert (result.verdict, result.signs, result.failure, result.syn_ack) == (
        "unknown",
        ("no_capture",),
        None,
        None,
    )


@pytest.mark.raw
def test_localise_finds_the_server_at_the_first_hop(ca: trustme.CA) -> None:
    with tcp_server("tls", ca.issue_cert("x.com")) as port:
        located = asyncio.run(localise("127.0.0.1", port, "x.com", config=LocaliseConfig(max_hops=3)))
    assert [(probe.ttl, probe.outcome) for probe in located.probes] == [(1, "server")]
    assert (located.server_ttl, located.server_hops_estimate, located.blocking_ttl) == (1, 1, None)


@pytest.mark.raw
def test_localise_a_server_that_resets() -> None:
    with tcp_server("reset_after_hello") as port:
        located = asyncio.run(localise("127.0.0.1", port, "x.com", config=LocaliseConfig(max_hops=3)))
    assert [(probe.ttl, probe.outcome, probe.reply_ttl) for probe in located.probes] == [(1, "reset", 64)]
    assert (located.blocking_ttl, located.reset_source, located.device_hop) == (1, "end_host", None)


@pytest.mark.parametrize(
    ("ip", "port", "server_name", "message"),
    [
        ("::1", 443, "x.com", "'::1' is not an IPv4 address (raw forensics is IPv4 only)"),
        ("127.0.0.1", 0, "x.com", "invalid port 0"),
        ("127.0.0.1", 443, "", "empty server name (SNI)"),
    ],
)
def test_bad_endpoints_are_refused_before_any_packet(
    ip: str, port: int, server_name: str, message: str
) -> None:
    with pytest.raises(TargetError) as refused:
        asyncio.run(rst_forensics(ip, port, server_name))
    assert str(refused.value) == message
    with pytest.raises(TargetError):
        asyncio.run(localise(ip, port, server_name))


def test_max_hops_is_bounded() -> None:
    with pytest.raises(ValueError, match=r"max_hops must be within 1\.\.255, not 0"):
        asyncio.run(localise("127.0.0.1", 443, "x.com", config=LocaliseConfig(max_hops=0)))
