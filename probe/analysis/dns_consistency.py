"""``dns_consistency`` and ``dns_experiment_failure`` (reference §1.3, LTE classic analysis).

Only classic lookups (the system resolver, ``classic``, or the configured resolvers standing
in for it when it is off) at depth 0 count, and only
those of the URL's own host have a control to compare with (``minipipeline/analysis.go``):

- a successful lookup is **valid** when its addresses share an IP with the control's, else
  when they share an ASN (ASN 0, "unknown", never matches); otherwise **invalid**. Without a
  control answer (no control, or the control's lookup failed) it is neither;
- a failed lookup is an **expected failure** when the control failed too (any pair of
  failures: Android reports every DNS error the same way), or when the probe says
  ``dns_no_answer`` and the control resolved nothing; an **unexpected failure** when only the
  probe failed. DoH lookups and ``dns_no_answer`` to an AAAA query are ignored;
- ``"consistent"``: no unexpected failure, no invalid lookup, and a valid lookup or an expected
  failure; ``"inconsistent"``: an invalid lookup, an unexpected failure, or a lookup that
  resolved something while the control resolved nothing ("ghost" DNS); else ``None``.

Bogon answers alone decide nothing: a bogon the control also resolved is valid.
"""

from __future__ import annotations

from collections.abc import Iterable

from probe.analysis.observations import Kind, Observation, classic_lookups, is_aaaa_no_answer
from probe.ipinfo import AsnLookup
from probe.model import ControlResponse, DNSQuery
from probe.steps.failures import DNS_NO_ANSWER

CONSISTENT = "consistent"
INCONSISTENT = "inconsistent"


def same_host(a: str, b: str) -> bool:
    """Host names equal once lower-cased and without a trailing dot."""
    return a.lower().rstrip(".") == b.lower().rstrip(".")


def dns_consistency(
    observations: Iterable[Observation], control: ControlResponse | None, *, host: str, asn_of: AsnLookup
) -> str | None:
    """Classify the depth-0 classic lookups of *observations* against *control*.

    Returns:
        ``"consistent"``, ``"inconsistent"`` or ``None`` (undeterminable).
    """
    valid = invalid = expected = unexpected = successes = 0
    for obs in observations:
        query = obs.query
        if obs.kind is not Kind.DNS or query is None or obs.depth != 0 or is_aaaa_no_answer(query):
            continue
        per_op = control is not None and same_host(query.hostname, host)
        if query.failure is None:
            successes += 1
            if not per_op or control is None or control.dns.failure is not None:
                continue
            if _compatible(query.addresses, control.dns.addrs, asn_of):
                valid += 1
            else:
                invalid += 1
            continue
        if not per_op or control is None:
            continue
        both_failed = control.dns.failure is not None
        # The helper reports NODATA as success with no address (OONI's legacy TH does too).
        both_no_answer = query.failure == DNS_NO_ANSWER and not control.dns.addrs
        if both_failed or both_no_answer:
            expected += 1
        else:
            unexpected += 1
    if not unexpected and not invalid and (valid or expected):
        return CONSISTENT
    ghost = successes > 0 and control is not None and not control.dns.addrs
    if invalid or unexpected or ghost:
        return INCONSISTENT
    return None


def dns_experiment_failure(queries: Iterable[DNSQuery]) -> str | None:
    """The first failure of a depth-0 classic lookup, AAAA ``dns_no_answer`` aside.

    OONI computes this v0.4 key in its classic analysis, over getaddrinfo lookups only; without
    the system resolver, over the configured resolvers' lookups that stand in for it
    (:func:`~probe.analysis.observations.classic_lookups`).
    """
    for query in classic_lookups(queries):
        if is_aaaa_no_answer(query):
            continue
        if query.depth == 0 and query.failure is not None:
            return query.failure
    return None


def _compatible(probe: Iterable[str], control: Iterable[str], asn_of: AsnLookup) -> bool:
    probe_set = {a for a in probe if a}
    control_set = {a for a in control if a}
    if probe_set & control_set:
        return True
    probe_asns = {asn_of(a) for a in probe_set} - {0}
    control_asns = {asn_of(a) for a in control_set} - {0}
    return bool(probe_asns & control_asns)
