"""Web Connectivity 0.5.28's experimental bit sets: ``x_blocking_flags``, ``x_dns_flags``,
``x_null_null_flags`` (reference §1.6).

A port of OONI's "ext" analysis (``ooni/probe-cli`` ``webconnectivitylte/analysisext.go``
over ``minipipeline/observation.go`` and ``minipipeline/analysis.go``). Unlike the classic
verdict it reads **every** observation, not only the system resolver's:

- one DNS observation per failed lookup, and per address of a successful one (sorted);
- one endpoint per TCP connect (keyed by transaction id), joined to the first lookup that
  returned its address, then upgraded by the TLS handshake and the HTTP round trip that share
  its transaction id;
- with a control: lookups of the URL's host get the control's DNS result, endpoints the
  control's TCP connect and TLS handshake for the same ``ip:port`` (and SNI), and every
  observation the control's final fetch.

Then, as OONI: bogon answers at depth 0 set ``DNSBogon`` (informational only); a depth-0
lookup that failed while the control's worked (``dns_no_answer`` against an empty control
answer aside) is an unexpected DNS failure, one whose addresses share neither IP nor ASN
with the control's (and no TLS handshake validated them) has unexpected addresses; TCP, TLS
and HTTP failures at depth 0 where the control succeeded are unexpected (a failed IPv6
connect for unreachable network/host aside); failures past depth 0 are "unexplained", and
count as blocking only when no final response came and the control fetched the page; the
final response sets ``Success`` (over TLS, or matching the control) or ``HTTPDiff``; failures
on both sides set the null-null "expected failure" bits, and addresses the probe got for a
name the control found empty set ``UnexpectedDNSLookupSuccess``.

DoH lookups and AAAA ``dns_no_answer`` are ignored, as OONI ignores them. Our steps carry no
``fetch_body`` tag, which OONI only uses for finer sets that no flag reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from probe.analysis.httpdiff import http_diff, is_diff
from probe.ipinfo import AsnLookup, IPNetwork, first_known, is_bogon, parse_networks
from probe.model import ControlResponse, HTTPResponse, WebConnectivityTestKeys
from probe.steps.failures import DNS_NO_ANSWER, HOST_UNREACHABLE, NETWORK_UNREACHABLE
from probe.steps.urls import endpoint, split_url

# x_blocking_flags
DNS_BLOCKING: Final = 1
TCP_IP_BLOCKING: Final = 2
TLS_BLOCKING: Final = 4
HTTP_BLOCKING: Final = 8
HTTP_DIFF: Final = 16
SUCCESS: Final = 32
# x_dns_flags
DNS_BOGON: Final = 1
DNS_UNEXPECTED_FAILURE: Final = 2
DNS_UNEXPECTED_ADDRS: Final = 4
# x_null_null_flags
EXPECTED_DNS_LOOKUP_FAILURE: Final = 1
EXPECTED_TCP_CONNECT_FAILURE: Final = 2
EXPECTED_TLS_HANDSHAKE_FAILURE: Final = 4
SUCCESSFUL_HTTPS: Final = 8
UNEXPECTED_DNS_LOOKUP_SUCCESS: Final = 16


@dataclass(frozen=True, slots=True)
class Flags:
    """The three bit sets, named as the test keys name them."""

    x_blocking_flags: int
    x_dns_flags: int
    x_null_null_flags: int


def with_flags(
    keys: WebConnectivityTestKeys,
    control: ControlResponse | None,
    *,
    url: str,
    asn_of: AsnLookup,
    public_networks: Iterable[str | IPNetwork] = (),
) -> WebConnectivityTestKeys:
    """*keys* with the three flag sets computed (:func:`compute`, same arguments).

    Raises:
        TargetError: *url* is not an http/https URL.
    """
    flags = compute(keys, control, url=url, asn_of=asn_of, public_networks=public_networks)
    return dataclasses.replace(
        keys,
        x_blocking_flags=flags.x_blocking_flags,
        x_dns_flags=flags.x_dns_flags,
        x_null_null_flags=flags.x_null_null_flags,
    )


@dataclass(slots=True)
class _Lookup:
    """One DNS observation (a failed lookup, or one address of a successful one)."""

    tid: int
    domain: str
    depth: int | None
    engine: str
    query_type: str
    failure: str
    """``""`` on success, as OONI's observations spell it."""
    addrs: frozenset[str] = frozenset()
    ip: str = ""
    asn: int = 0
    bogon: bool = False
    control_failure: str | None = None
    control_addrs: frozenset[str] | None = None


@dataclass(slots=True)
class _Endpoint:
    """One TCP endpoint with what was done on it (``None``: not done)."""

    tid: int
    depth: int | None
    ip: str
    address: str
    tcp_failure: str
    lookup: _Lookup | None
    tls_failure: str | None = None
    server_name: str | None = None
    http_failure: str | None = None
    response: HTTPResponse | None = None
    control_dns_failure: str | None = None
    control_dns_addrs: frozenset[str] | None = None
    control_tcp_failure: str | None = None
    control_tls_failure: str | None = None
    control_http_failure: str | None = None

    @property
    def is_final(self) -> bool:
        return self.response is not None and self.response.code // 100 in (2, 4, 5)


def compute(
    keys: WebConnectivityTestKeys,
    control: ControlResponse | None,
    *,
    url: str,
    asn_of: AsnLookup,
    public_networks: Iterable[str | IPNetwork] = (),
) -> Flags:
    """The three flag sets of *keys* against *control* (``None``: no control).

    IP → ASN as the verdict does it: *asn_of*, then the control's ``ip_info``. Addresses in
    *public_networks* are not bogons (the lab's 10.x world).

    Returns:
        The flags; 0 is a computed "no bit set", never a placeholder.

    Raises:
        TargetError: *url* is not an http/https URL.
    """
    host = split_url(url)[1].lower().rstrip(".")
    public = parse_networks(public_networks)
    if control is not None:
        table = {ip: info.asn for ip, info in control.ip_info.items()}
        asn_of = first_known(asn_of, lambda ip: table.get(ip, 0))
    lookups, endpoints = _observations(keys, asn_of, public)
    if control is not None:
        _xref_control(lookups, endpoints, control, host)
    blocking = dns = null_null = 0

    # DNS successes (minipipeline dnsComputeSuccessMetrics): the first observation per lookup.
    successes: set[int] = set()
    valid: set[int] = set()
    invalid: set[int] = set()
    seen: set[int] = set()
    for obs in (o for o in lookups if o.failure == ""):
        if obs.tid in seen:
            continue
        seen.add(obs.tid)
        if obs.depth != 0:
            continue
        successes.add(obs.tid)
        if obs.bogon:
            dns |= DNS_BOGON
        if obs.control_addrs is None:
            continue
        if obs.addrs & obs.control_addrs or _asns(obs.addrs, asn_of) & _asns(obs.control_addrs, asn_of):
            valid.add(obs.tid)
        else:
            invalid.add(obs.tid)
    for ep in endpoints.values():
        if ep.tls_failure == "" and ep.lookup is not None and ep.lookup.tid > 0:
            invalid.discard(ep.lookup.tid)
    if invalid:
        blocking |= DNS_BLOCKING
        dns |= DNS_UNEXPECTED_ADDRS

    # DNS failures (dnsComputeFailureMetrics).
    unexpected_dns = unexplained_dns = expected_dns = False
    seen.clear()
    for obs in (o for o in lookups if o.failure != ""):
        if obs.tid in seen:
            continue
        seen.add(obs.tid)
        if obs.engine == "doh" or (obs.query_type == "AAAA" and obs.failure == DNS_NO_ANSWER):
            continue
        if obs.depth != 0:
            unexplained_dns = True
            continue
        if obs.control_failure is None:
            continue
        both_failed = obs.control_failure != ""
        # dns_no_answer while the control found no address either: expected.
        no_answer = obs.failure == DNS_NO_ANSWER and obs.control_addrs is not None and not obs.control_addrs
        if both_failed or no_answer:
            expected_dns = True
        else:
            unexpected_dns = True
    if unexpected_dns:
        blocking |= DNS_BLOCKING
        dns |= DNS_UNEXPECTED_FAILURE

    # Endpoints (tcpComputeMetrics, tlsComputeMetrics, httpComputeFailureMetrics).
    unexplained = {"tcp": False, "tls": False, "http": False}
    for ep in endpoints.values():
        misconfigured_v6 = ep.tcp_failure in (NETWORK_UNREACHABLE, HOST_UNREACHABLE) and ":" in ep.ip
        if ep.depth != 0:
            if ep.tcp_failure and not misconfigured_v6:
                unexplained["tcp"] = True
        elif ep.control_tcp_failure is not None:
            if ep.tcp_failure and ep.control_tcp_failure:
                null_null |= EXPECTED_TCP_CONNECT_FAILURE
            elif ep.tcp_failure and not ep.control_tcp_failure and not misconfigured_v6:
                blocking |= TCP_IP_BLOCKING
        if ep.tls_failure is not None:
            if ep.depth != 0:
                if ep.tls_failure:
                    unexplained["tls"] = True
            elif ep.control_tls_failure is not None:
                if ep.tls_failure and ep.control_tls_failure:
                    null_null |= EXPECTED_TLS_HANDSHAKE_FAILURE
                elif ep.tls_failure and not ep.control_tls_failure:
                    blocking |= TLS_BLOCKING
        if ep.http_failure is not None:
            if ep.control_http_failure is None:
                if ep.http_failure:
                    unexplained["http"] = True
            elif ep.http_failure and not ep.control_http_failure:
                blocking |= HTTP_BLOCKING

    # The final response (httpComputeFinalResponseMetrics, analysisExtHTTPFinalResponse).
    final = next((ep for ep in endpoints.values() if ep.is_final), None)
    if final is not None:
        over_tls = final.tls_failure == ""
        if final.control_http_failure is None:
            if over_tls:
                null_null |= SUCCESSFUL_HTTPS
                blocking |= SUCCESS
        elif over_tls:
            blocking |= SUCCESS
        else:
            blocking |= HTTP_DIFF if is_diff(http_diff(final.response, control)) else SUCCESS
    elif control is not None and control.http_request.failure is None:
        # analysisExtRedirectErrors: no final response although the control fetched the page.
        if unexplained_dns:
            blocking |= DNS_BLOCKING
        if unexplained["tcp"]:
            blocking |= TCP_IP_BLOCKING
        if unexplained["tls"]:
            blocking |= TLS_BLOCKING
        if unexplained["http"]:
            blocking |= HTTP_BLOCKING

    # analysisExtExpectedFailures.
    if expected_dns:
        null_null |= EXPECTED_DNS_LOOKUP_FAILURE
    if control is not None and not control.dns.addrs and successes:
        null_null |= UNEXPECTED_DNS_LOOKUP_SUCCESS
    return Flags(x_blocking_flags=blocking, x_dns_flags=dns, x_null_null_flags=null_null)


def _observations(
    keys: WebConnectivityTestKeys, asn_of: AsnLookup, public: tuple[IPNetwork, ...]
) -> tuple[list[_Lookup], dict[int, _Endpoint]]:
    lookups: list[_Lookup] = []
    first_lookup: dict[str, _Lookup] = {}
    for q in keys.queries:
        common = (q.transaction_id, q.hostname.lower().rstrip("."), q.depth, q.engine, q.query_type)
        if q.failure is not None:
            lookups.append(_Lookup(*common, failure=q.failure))
            continue
        addrs = frozenset(q.addresses)
        for ip in sorted(addrs):
            obs = _Lookup(
                *common, failure="", addrs=addrs, ip=ip, asn=asn_of(ip), bogon=is_bogon(ip, public=public)
            )
            lookups.append(obs)
            first_lookup.setdefault(ip, obs)
    endpoints: dict[int, _Endpoint] = {}
    for c in keys.tcp_connect:
        endpoints[c.transaction_id] = _Endpoint(
            c.transaction_id,
            c.depth,
            c.ip,
            endpoint(c.ip, c.port),
            c.status.failure or "",
            first_lookup.get(c.ip),
        )
    for h in keys.tls_handshakes:
        if (ep := endpoints.get(h.transaction_id)) is not None:
            ep.tls_failure, ep.server_name = h.failure or "", h.server_name
    for r in keys.requests:
        if (ep := endpoints.get(r.transaction_id)) is not None:
            ep.http_failure = r.failure or ""
            ep.response = r.response if r.failure is None else None
    return lookups, endpoints


def _xref_control(
    lookups: list[_Lookup], endpoints: dict[int, _Endpoint], control: ControlResponse, host: str
) -> None:
    """minipipeline ``IngestControlMessages``: the control's results beside each observation."""
    dns_failure = control.dns.failure or ""
    dns_addrs = frozenset(control.dns.addrs) if control.dns.failure is None else None
    for obs in lookups:
        if obs.domain == host:
            obs.control_failure, obs.control_addrs = dns_failure, dns_addrs
    for ep in endpoints.values():
        domain = ep.lookup.domain if ep.lookup is not None else ""
        if domain == "" and ep.ip in control.dns.addrs:
            ep.control_dns_failure, ep.control_dns_addrs = dns_failure, frozenset(control.dns.addrs)
        elif domain == host:
            ep.control_dns_failure, ep.control_dns_addrs = dns_failure, dns_addrs
        if (tcp := control.tcp_connect.get(ep.address)) is not None:
            ep.control_tcp_failure = tcp.failure or ""
        tls = control.tls_handshake.get(ep.address)
        if ep.server_name is not None and tls is not None and tls.server_name == ep.server_name:
            ep.control_tls_failure = tls.failure or ""
        ep.control_http_failure = control.http_request.failure or ""


def _asns(addresses: Iterable[str], asn_of: AsnLookup) -> set[int]:
    return {asn for ip in addresses if (asn := asn_of(ip)) > 0}
