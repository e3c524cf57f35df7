"""Every DNS-consistency rule of the reference (§1.3), and dns_experiment_failure."""

from __future__ import annotations

import pytest

from probe.analysis.dns_consistency import dns_experiment_failure
from probe.model import DNSQuery
from tests.analysis.builders import (
    HTTP_URL,
    IP,
    IP_OTHER,
    IP_SAME_AS,
    connect,
    control,
    explain,
    fetch,
    keys,
    query,
    run,
)

UNKNOWN_A, UNKNOWN_B = "203.0.114.7", "203.0.114.8"
"""Two addresses no ASN table knows."""


def consistency(*queries: DNSQuery, ctrl: object = "default") -> str | None:
    chosen = control() if ctrl == "default" else ctrl
    return explain(keys(*queries), chosen).dns_consistency  # type: ignore[arg-type]


def test_same_ips_are_consistent() -> None:
    assert consistency(query(IP)) == "consistent"


def test_one_common_ip_is_enough() -> None:
    assert consistency(query(IP, IP_OTHER), ctrl=control(addrs=(IP, IP_SAME_AS))) == "consistent"


def test_same_asn_is_consistent() -> None:
    assert consistency(query(IP_SAME_AS)) == "consistent"


def test_different_ips_and_asns_are_inconsistent() -> None:
    assert consistency(query(IP_OTHER)) == "inconsistent"


def test_unknown_asn_zero_never_matches() -> None:
    """ASN 0 means the lookup failed: two unknown addresses do not share "AS0"."""
    assert consistency(query(UNKNOWN_A), ctrl=control(addrs=(UNKNOWN_B,))) == "inconsistent"


def test_control_ip_info_supplies_unknown_asns() -> None:
    ctrl = control(addrs=(UNKNOWN_B,), ip_info={UNKNOWN_A: 64999, UNKNOWN_B: 64999})
    assert consistency(query(UNKNOWN_A), ctrl=ctrl) == "consistent"


@pytest.mark.parametrize(
    ("probe", "helper"),
    [
        ("dns_nxdomain_error", "dns_name_error"),
        ("android_dns_cache_no_data", "dns_name_error"),
        ("generic_timeout_error", "dns_server_failure"),
        ("dns_nxdomain_error", "dns_server_failure"),
        ("dns_servfail_error", "dns_name_error"),
    ],
)
def test_both_failed_with_any_pair_of_errors_is_consistent(probe: str, helper: str) -> None:
    assert consistency(query(failure=probe), ctrl=control(dns_failure=helper)) == "consistent"


@pytest.mark.parametrize("failure", ["dns_nxdomain_error", "generic_timeout_error", "dns_refused_error"])
def test_probe_only_failure_is_inconsistent(failure: str) -> None:
    assert consistency(query(failure=failure)) == "inconsistent"


def test_no_answer_when_the_control_resolved_nothing_is_expected() -> None:
    assert consistency(query(failure="dns_no_answer"), ctrl=control(addrs=())) == "consistent"


def test_no_answer_when_the_control_resolved_addresses_is_inconsistent() -> None:
    assert consistency(query(failure="dns_no_answer")) == "inconsistent"


@pytest.mark.parametrize("helper_failure", [None, "dns_name_error"])
def test_ghost_dns_probe_resolves_what_the_control_cannot(helper_failure: str | None) -> None:
    ctrl = control(addrs=(), dns_failure=helper_failure)
    assert consistency(query(IP), ctrl=ctrl) == "inconsistent"


def test_aaaa_no_answer_is_ignored() -> None:
    no_v6 = query(failure="dns_no_answer", query_type="AAAA")
    assert consistency(query(IP, query_type="A"), no_v6) == "consistent"
    assert consistency(no_v6) is None


def test_doh_failures_are_ignored() -> None:
    doh = query(failure="generic_timeout_error", engine="doh")
    assert consistency(query(IP), doh) == "consistent"
    assert consistency(doh) is None


def test_only_system_resolver_lookups_count_when_it_was_asked() -> None:
    lying_udp = query(IP_OTHER, engine="udp", classic=False)
    assert consistency(query(IP), lying_udp) == "consistent"


def test_without_the_system_resolver_the_configured_resolvers_stand_in() -> None:
    """``use_system_resolver = false``: the configured resolver's lie is the classic lookup."""
    lying_udp = query(IP_OTHER, engine="udp", classic=False)
    assert consistency(lying_udp) == "inconsistent"
    assert consistency(query(IP, engine="udp", classic=False)) == "consistent"
    doh = query(IP_OTHER, engine="doh", classic=False)
    assert consistency(doh) is None


def test_lookups_after_a_redirect_do_not_count() -> None:
    later = query(failure="dns_nxdomain_error", hostname="www.example.org", depth=1)
    assert consistency(query(IP), later) == "consistent"


def test_no_control_is_null() -> None:
    assert consistency(query(IP_OTHER), ctrl=None) is None
    assert consistency(query(failure="dns_nxdomain_error"), ctrl=None) is None


def test_no_lookup_is_null() -> None:
    assert consistency(ctrl=control()) is None


def test_bogons_alone_are_not_blocking() -> None:
    """A misconfigured site whose name resolves to a private address, for the control too."""
    private = "10.11.12.13"
    c = connect(private, 80)
    measured = keys(query(private), c, fetch(HTTP_URL, c))
    ctrl = control(addrs=(private,), tcp={f"{private}:80": None})
    verdict = run(measured, ctrl)
    assert (verdict.dns_consistency, verdict.blocking, verdict.accessible) == ("consistent", False, True)
    assert verdict.mechanism == "ok"


def test_dns_experiment_failure_is_the_first_depth0_system_failure() -> None:
    queries = [
        query(failure="generic_timeout_error", engine="udp", classic=False),
        query(failure="dns_no_answer", query_type="AAAA"),
        query(failure="dns_nxdomain_error", hostname="www.example.org", depth=1),
        query(failure="dns_nxdomain_error"),
        query(failure="dns_servfail_error"),
    ]
    assert dns_experiment_failure(queries) == "dns_nxdomain_error"
    assert dns_experiment_failure(queries[:3]) is None
    verdict = run(keys(*queries), control())
    assert verdict.dns_experiment_failure == "dns_nxdomain_error"
