"""``use_system_resolver = false``: the configured resolvers' lookups stand in for the system resolver."""

from __future__ import annotations

from probe.analysis.observations import Kind, classic_observations
from tests.analysis.builders import HTTP_URL, IP, connect, control, fetch, keys, query, run


def udp(*addresses: str, failure: str | None = None, query_type: str = "A") -> object:
    return query(*addresses, failure=failure, engine="udp", classic=False, query_type=query_type)


def test_a_configured_resolver_nxdomain_is_dns_blocking() -> None:
    """Was: blocking null, mechanism ``down``, no ``dns_experiment_failure``."""
    measured = keys(udp(failure="dns_nxdomain_error"), udp(failure="dns_nxdomain_error", query_type="AAAA"))
    verdict = run(measured, control())
    assert (
        verdict.dns_experiment_failure,
        verdict.dns_consistency,
        verdict.blocking,
        verdict.accessible,
        verdict.http_experiment_failure,
        verdict.mechanism,
    ) == ("dns_nxdomain_error", "inconsistent", "dns", False, "dns_nxdomain_error", "dns.nxdomain")


def test_the_stand_in_endpoints_decide_like_the_system_resolvers() -> None:
    c = connect(IP, 80, classic=False)
    measured = keys(udp(IP), udp(failure="dns_no_answer", query_type="AAAA"), c, fetch(HTTP_URL, c))
    verdict = run(measured, control(tcp={f"{IP}:80": None}))
    assert (verdict.dns_consistency, verdict.blocking, verdict.accessible, verdict.mechanism) == (
        "consistent",
        False,
        True,
        "ok",
    )
    assert verdict.dns_experiment_failure is None  # AAAA without an answer: no IPv6 address


def test_doh_never_stands_in_and_the_system_resolver_keeps_its_role() -> None:
    doh = query(failure="dns_nxdomain_error", engine="doh", classic=False)
    assert classic_observations(keys(doh)) == []
    system = query(IP)
    lying = udp(failure="dns_nxdomain_error")
    assert [obs.kind for obs in classic_observations(keys(system, lying))] == [Kind.DNS]
    assert run(keys(system, lying), control()).dns_experiment_failure is None
