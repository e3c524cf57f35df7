"""Per-measurement verdicts: OONI Web Connectivity's keys, exactly, plus our mechanism label.

:func:`analyse` fills, from the observations of one measurement and the control's response,
the keys OONI's Web Connectivity (LTE, classic analysis; reference §1.3 to §1.5) computes —
``dns_consistency``, ``dns_experiment_failure``, ``body_proportion``, ``body_length_match``,
``status_code_match``, ``headers_match``, ``title_match``, ``blocking``, ``accessible`` and
``http_experiment_failure`` — with the same meaning, then reachprobe's own ``mechanism`` and
``confirmed``. The steps, one module each:

- :mod:`.observations`: the classic observations (system resolver and the endpoints it gave)
  and their decision order;
- :mod:`.dns_consistency`: §1.3; :mod:`.httpdiff`: §1.4; :mod:`.decision`: the §1.5 table;
- :mod:`.mechanism`: the finer label and fingerprint confirmation.

IP → ASN: *asn_of* first; for an address it does not know (0), the ASN the control reported in
its ``ip_info``. OONI's probe asks its own ASN database for both sides; ours may run without
one, and the helper's database then stands in for it, rather than every CDN answer looking
"inconsistent".
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from probe.analysis.decision import Decision, decide
from probe.analysis.dns_consistency import dns_consistency, dns_experiment_failure
from probe.analysis.httpdiff import HTTPDiff, http_diff, is_diff
from probe.analysis.mechanism import label
from probe.analysis.observations import Observation, classic_observations, linear
from probe.fingerprints import FingerprintDB
from probe.ipinfo import AsnLookup, IPNetwork, first_known, parse_networks
from probe.model import ControlResponse, WebConnectivityTestKeys
from probe.steps.urls import split_url

__all__ = ["Decision", "Evaluation", "HTTPDiff", "Observation", "analyse", "control_asn_lookup", "evaluate"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """Everything the verdict is computed from: handy to see *why* a measurement says what it says."""

    observations: list[Observation]
    """The classic observations, in decision order."""
    dns_consistency: str | None
    http_diff: HTTPDiff
    decision: Decision


def evaluate(
    keys: WebConnectivityTestKeys, control: ControlResponse | None, *, url: str, asn_of: AsnLookup
) -> Evaluation:
    """Run §1.3 to §1.5 on *keys* against *control* (``None``: no control).

    Raises:
        TargetError: *url* is not an http/https URL.
    """
    host = split_url(url)[1]
    lookup = first_known(asn_of, control_asn_lookup(control)) if control is not None else asn_of
    ordered = linear(classic_observations(keys))
    consistency = dns_consistency(ordered, control, host=host, asn_of=lookup)
    final = next((obs for obs in ordered if obs.is_final_response), None)
    diff = http_diff(final.http.response if final is not None and final.http is not None else None, control)
    decision = decide(ordered, control, host=host, dns_consistency=consistency, http_diff=is_diff(diff))
    return Evaluation(ordered, consistency, diff, decision)


def analyse(
    keys: WebConnectivityTestKeys,
    control: ControlResponse | None,
    *,
    control_failure: str | None,
    url: str,
    asn_of: AsnLookup,
    fingerprints: FingerprintDB,
    public_networks: Iterable[str | IPNetwork] = (),
) -> WebConnectivityTestKeys:
    """Compute the verdict keys of one measurement.

    Args:
        keys: the probe's observations (queries, connects, handshakes, requests).
        control: the helper's response, ``None`` when there is none.
        control_failure: why there is no control; when set, *control* is not used (OONI
            never has both).
        url: the measured URL (its host is what the control resolved).
        asn_of: IP → ASN, 0 when unknown.
        fingerprints: the known blockpages and DNS answers.
        public_networks: ranges that are public here although bogon ranges (the lab's
            10.x world, ``network.public_networks``): their answers are not ``dns.bogon``.

    Returns:
        *keys* with ``control``, ``control_failure`` and every verdict key set.

    Raises:
        TargetError: *url* is not an http/https URL.
        ConfigError: a public network is not a CIDR.
    """
    effective = control if control_failure is None else None
    result = evaluate(keys, effective, url=url, asn_of=asn_of)
    diff, decision = result.http_diff, result.decision
    public = parse_networks(public_networks)
    mechanism, confirmed = label(
        keys,
        decision,
        effective,
        fingerprints,
        result.observations,
        public_networks=public,
        control_failure=control_failure,
    )
    return dataclasses.replace(
        keys,
        control=control,
        control_failure=control_failure,
        dns_experiment_failure=dns_experiment_failure(keys.queries),
        dns_consistency=result.dns_consistency,
        body_proportion=diff.body_proportion,
        body_length_match=diff.body_length_match,
        status_code_match=diff.status_code_match,
        headers_match=diff.headers_match,
        title_match=diff.title_match,
        blocking=decision.blocking,
        accessible=decision.accessible,
        http_experiment_failure=decision.http_experiment_failure,
        mechanism=mechanism,
        confirmed=confirmed,
    )


def control_asn_lookup(control: ControlResponse | None) -> AsnLookup:
    """IP → ASN from the control's ``ip_info`` (0 for addresses it does not list)."""
    table = {ip: info.asn for ip, info in control.ip_info.items()} if control is not None else {}
    return lambda ip: table.get(ip, 0)
