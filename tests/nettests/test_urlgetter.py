"""The messaging tests' shared parts: configuration from the settings, verdicts of operations."""

from __future__ import annotations

from pathlib import Path

import pytest

from probe.mechanism import Mechanism
from probe.model import DNSQuery
from probe.nettests.urlgetter import CONNECT, HTTP_ROUND_TRIP, RESOLVE, TLS_HANDSHAKE, GetterConfig, Operation
from probe.nettests.urlverdict import deciding, verdict
from probe.steps import dns
from probe.webconnectivity import MeasureConfig


def test_the_settings_become_the_tests_configuration() -> None:
    resolver = dns.parse_resolver("10.1.65.53")
    settings = MeasureConfig(
        resolvers=(resolver,), ca_file=Path("/lab/ca.pem"), dns_timeout=1.5, tcp_timeout=2.0,
        tls_timeout=3.0, http_timeout=4.0, public_networks=("10.1.64.0/18",), allow_loopback=True,
        volunteer_addresses=("192.0.2.9",),
    )  # fmt: skip
    config = GetterConfig.from_measure_config(settings)
    # The system resolver, as OONI's tests use, while the settings keep it on.
    assert config.resolver is None
    assert _timeouts(config) == (1.5, 2.0, 3.0, 4.0)
    assert (config.ca_file, config.public_networks, config.allow_loopback) == (
        Path("/lab/ca.pem"), ("10.1.64.0/18",), True,
    )  # fmt: skip
    assert config.volunteer_addresses == ("192.0.2.9",)
    off = GetterConfig.from_measure_config(MeasureConfig(resolvers=(resolver,), use_system_resolver=False))
    assert off.resolver == resolver
    timed = config.with_timeout(0.5)
    assert _timeouts(timed) == (0.5,) * 4


def _timeouts(config: GetterConfig) -> tuple[float, ...]:
    return (config.dns_timeout, config.tcp_timeout, config.tls_timeout, config.http_timeout)


def _query() -> DNSQuery:
    return DNSQuery("getaddrinfo", "", "x.example", "ANY", (), None, None, 0.0, 0.1)


def _failed(failure: str, step: str, *addresses: str, looked_up: bool = True) -> Operation:
    queries = (_query(),) if looked_up and addresses else ()
    return Operation("u", queries=queries, failure=failure, failed_operation=step, addresses=addresses)


TIMEOUT, RESET, REFUSED = "generic_timeout_error", "connection_reset", "connection_refused"


@pytest.mark.parametrize(
    ("operation", "blocking", "mechanism"),
    [
        (Operation("u"), False, Mechanism.OK),
        (_failed("dns_nxdomain_error", RESOLVE), "dns", Mechanism.DNS_NXDOMAIN),
        (_failed(TIMEOUT, RESOLVE), "dns", Mechanism.DNS_TIMEOUT),
        (_failed(TIMEOUT, CONNECT), "tcp_ip", Mechanism.TCP_TIMEOUT),
        (_failed(REFUSED, CONNECT), "tcp_ip", Mechanism.TCP_REFUSED),
        (_failed(REFUSED, CONNECT, "127.0.0.1"), "dns", Mechanism.DNS_LOCALHOST),
        (_failed(TIMEOUT, CONNECT, "10.10.34.35"), "dns", Mechanism.DNS_BOGON),
        # An IP address target has no lookup: its address says nothing of the DNS.
        (_failed(TIMEOUT, CONNECT, "10.10.34.35", looked_up=False), "tcp_ip", Mechanism.TCP_TIMEOUT),
        (_failed(RESET, TLS_HANDSHAKE), "http-failure", Mechanism.TLS_RESET),
        (_failed(TIMEOUT, TLS_HANDSHAKE), "http-failure", Mechanism.TLS_TIMEOUT),
        (_failed("ssl_invalid_hostname", TLS_HANDSHAKE), "http-failure", Mechanism.TLS_CERTIFICATE),
        (_failed(RESET, HTTP_ROUND_TRIP), "http-failure", Mechanism.HTTP_RESET),
        (_failed(TIMEOUT, HTTP_ROUND_TRIP), "http-failure", Mechanism.HTTP_TIMEOUT),
    ],
)
def test_the_verdict_of_an_operation(operation: Operation, blocking: object, mechanism: Mechanism) -> None:
    assert verdict(operation) == (blocking, mechanism)


def test_the_public_networks_and_loopback_allowance_are_no_lies() -> None:
    lab = _failed(REFUSED, CONNECT, "10.1.64.7")
    assert verdict(lab, GetterConfig(public_networks=("10.1.64.0/18",))) == ("tcp_ip", Mechanism.TCP_REFUSED)
    local = _failed(REFUSED, CONNECT, "127.0.0.1")
    assert verdict(local, GetterConfig(allow_loopback=True)) == ("tcp_ip", Mechanism.TCP_REFUSED)


def test_the_deciding_failure_is_the_most_common_then_the_first() -> None:
    a, b, c = _failed(TIMEOUT, CONNECT), _failed(REFUSED, CONNECT), _failed(REFUSED, CONNECT)
    assert deciding([a, b, c]) is b
    assert deciding([a, b]) is a
    with pytest.raises(ValueError, match="no failed operation"):
        deciding([])
