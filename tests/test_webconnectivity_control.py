"""One URL end to end with a loopback helper: the verdict keys, exactly.

``localhost`` resolves from /etc/hosts (no DNS traffic); the probe and the helper both treat
loopback as public here (``public_networks``, ``--allow``), the probe connects to it
(``allow_loopback``), and nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from probe import webconnectivity
from probe.helper.app import HelperSettings
from probe.helper.geo import Geo
from probe.helper.measure import HelperConfig
from probe.helper.policy import AddressPolicy
from probe.model import DNSAnswer, DNSQuery, Measurement
from probe.webconnectivity import MeasureConfig, _lookup_failure
from tests.servers.helper_server import running_helper
from tests.servers.http_server import PAGE, HTTPServer, http_server
from tests.servers.tcp_server import closed_port

LOOPBACK = ("127.0.0.0/8", "::1/128")


@pytest.fixture(scope="module")
def site() -> Iterator[HTTPServer]:
    with http_server() as server:
        yield server


@pytest.fixture(scope="module")
def helper() -> Iterator[str]:
    settings = HelperSettings(
        config=HelperConfig(dns_timeout=2, tcp_timeout=2, tls_timeout=2, http_timeout=3),
        policy=AddressPolicy.allowing(LOOPBACK),
        geo=Geo(asn_of=lambda ip: 64500, cc_of=lambda ip: "PK"),
    )
    with running_helper(settings) as url:
        yield url


def measure(url: str, control_url: str | None) -> Measurement:
    config = MeasureConfig(
        allow_loopback=True, control_url=control_url, public_networks=LOOPBACK
    ).with_timeout(3)
    return asyncio.run(webconnectivity.measure(url, config=config))


def verdict(m: Measurement) -> dict[str, object]:
    k = m.test_keys
    return {
        "control_failure": k.control_failure,
        "dns_experiment_failure": k.dns_experiment_failure,
        "http_experiment_failure": k.http_experiment_failure,
        "dns_consistency": k.dns_consistency,
        "body_proportion": k.body_proportion,
        "body_length_match": k.body_length_match,
        "status_code_match": k.status_code_match,
        "headers_match": k.headers_match,
        "title_match": k.title_match,
        "blocking": k.blocking,
        "accessible": k.accessible,
        "mechanism": k.mechanism,
        "confirmed": k.confirmed,
    }


NO_DIFF = {
    "body_proportion": 0.0,
    "body_length_match": None,
    "status_code_match": None,
    "headers_match": None,
    "title_match": None,
}


def test_accessible_with_control(site: HTTPServer, helper: str) -> None:
    m = measure(f"http://localhost:{site.port}/", helper)
    assert verdict(m) == {
        "control_failure": None,
        "dns_experiment_failure": None,
        "http_experiment_failure": None,
        "dns_consistency": "consistent",
        "body_proportion": 1.0,
        "body_length_match": True,
        "status_code_match": True,
        "headers_match": True,
        "title_match": True,
        "blocking": False,
        "accessible": True,
        "mechanism": "ok",
        "confirmed": None,
    }
    control = m.test_keys.control
    assert control is not None
    assert control.http_request.body_length == len(PAGE)
    assert control.tcp_connect[f"127.0.0.1:{site.port}"].status is True
    assert (m.probe_asn, m.probe_cc) == ("AS64500", "PK")  # from whoami, no IP stored
    assert m.probe_ip == "127.0.0.1"


def test_without_control_verdicts_fall_back(site: HTTPServer) -> None:
    m = measure(f"http://localhost:{site.port}/", None)
    assert verdict(m) == {
        "control_failure": "control_not_configured",
        "dns_experiment_failure": None,
        "http_experiment_failure": None,
        "dns_consistency": None,
        **NO_DIFF,
        "blocking": None,
        "accessible": None,
        "mechanism": "control.none",  # switched off (--control none), not unreachable
        "confirmed": None,
    }
    assert (m.probe_asn, m.probe_cc) == ("AS0", "ZZ")


def test_unreachable_control_is_a_control_failure(site: HTTPServer) -> None:
    m = measure(f"http://localhost:{site.port}/", f"http://127.0.0.1:{closed_port()}/")
    assert verdict(m)["control_failure"] == "connection_refused"
    assert (m.test_keys.blocking, m.test_keys.accessible, m.test_keys.mechanism) == (
        None,
        None,
        "control.unreachable",
    )
    assert m.test_keys.control is None


def test_website_down_for_both_is_not_blocking(helper: str) -> None:
    port = closed_port()
    m = measure(f"http://localhost:{port}/", helper)
    assert verdict(m) == {
        "control_failure": None,
        "dns_experiment_failure": None,
        "http_experiment_failure": "connection_refused",
        "dns_consistency": "consistent",
        **NO_DIFF,
        "blocking": False,
        "accessible": False,
        "mechanism": "down",
        "confirmed": None,
    }


def test_one_transaction_id_per_endpoint(site: HTTPServer, helper: str) -> None:
    keys = measure(f"http://localhost:{site.port}/r/1", helper).test_keys
    by_ip = {c.ip: c.transaction_id for c in keys.tcp_connect if c.status.success}
    for request in keys.requests:
        ip = request.address.rpartition(":")[0].strip("[]")
        connect_ids = {c.transaction_id for c in keys.tcp_connect if c.ip == ip and c.depth == request.depth}
        assert request.transaction_id in connect_ids
    assert len(keys.requests) == 2 and by_ip
    query_ids = {q.transaction_id for q in keys.queries}
    assert not query_ids & {c.transaction_id for c in keys.tcp_connect}


def _query(engine: str, query_type: str, failure: str | None, *addresses: str) -> DNSQuery:
    answers = tuple(DNSAnswer("A", ipv4=a) for a in addresses)
    resolver = "" if engine == "getaddrinfo" else "8.8.8.8:53"
    return DNSQuery(engine, resolver, "x.com", query_type, answers, None, failure, 0.0, 0.0)  # type: ignore[arg-type]


def test_a_and_aaaa_to_one_resolver_are_one_lookup() -> None:
    a_ok = _query("udp", "A", None, "127.0.0.1")
    aaaa_none = _query("udp", "AAAA", "dns_no_answer")
    assert _lookup_failure([a_ok, aaaa_none]) is None
    a_nx = _query("udp", "A", "dns_nxdomain_error")
    aaaa_nx = _query("udp", "AAAA", "dns_nxdomain_error")
    assert _lookup_failure([aaaa_none, a_nx]) == "dns_no_answer"
    assert _lookup_failure([a_nx, aaaa_nx]) == "dns_nxdomain_error"
    system = _query("getaddrinfo", "ANY", "dns_temporary_failure")
    assert _lookup_failure([system, a_ok, aaaa_none]) == "dns_temporary_failure"
    doh = DNSQuery("doh", "https://d/", "x.com", "A", (), None, "connection_refused", 0.0, 0.0)
    assert _lookup_failure([doh]) is None
