"""The "classic" observations of one measurement, flattened and sorted for the decision walk.

This is OONI's minipipeline reduced to what the classic analysis reads
(``minipipeline/observation.go``, ``classic.go``, ``analysis.go`` ``NewLinearWebAnalysis``):

- one DNS observation per ``classic`` lookup (the system resolver), DoH excluded; a
  successful lookup without addresses yields none, as in OONI;
- one endpoint observation per ``classic`` TCP connect (an address the system resolver
  returned), upgraded by the TLS handshake and then the HTTP round trip made on it.

Without the system resolver (``use_system_resolver = false``: no ``getaddrinfo`` lookup at all),
the configured DNS-over-UDP/TCP resolvers stand in for it (:func:`classic_lookups`): their
lookups, and the endpoints at the addresses they returned, are the classic observations.
OONI's classic analysis reads getaddrinfo only because getaddrinfo is what every ooniprobe
asks (``minipipeline/classic.go``); its "ext" analysis reads every non-DoH lookup, the
DNS-over-UDP one included, for ``x_dns_flags``. A probe configured without getaddrinfo has no
other lookup to base the verdict on, and leaving them out hid an ISP resolver's NXDOMAIN
(``blocking`` null, no ``dns_experiment_failure``). DoH stays out (ooni/probe#2274), and so
does an AAAA query's ``dns_no_answer`` (the name has no IPv6 address; getaddrinfo asks both
families in one lookup and never reports it).
  Its ``kind`` is the last operation reached (DNS < TCP < TLS < HTTP) and its ``failure`` that
  operation's failure. Steps join on ``transaction_id`` when it is positive, else on
  (``ip:port``, depth); a ``classic`` HTTP transaction that joins no connect stands alone.

Each step's hop and classic flag are its typed ``depth`` and ``classic`` fields (OONI's
``depth=N`` and ``classic`` tags exist only in the JSON, :mod:`probe.serialize`). A step
without a depth (``None``: measured outside a hop, never in a Web Connectivity measurement)
belongs to no hop: it is never "depth 0".

:func:`linear` sorts them like OONI: depth descending (no depth last), then kind descending
(HTTP > TLS > TCP > DNS), then successes before failures (failures in string order), then
transaction id descending.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from probe.model import DNSQuery, HTTPTransaction, TCPConnect, TLSHandshake, WebConnectivityTestKeys
from probe.steps.failures import DNS_NO_ANSWER
from probe.steps.urls import endpoint

FINAL_STATUS_CLASSES: Final = frozenset({2, 4, 5})


class Kind(IntEnum):
    """The last operation an observation reached; larger sorts first."""

    DNS = 0
    TCP = 1
    TLS = 2
    HTTP = 3


@dataclass(frozen=True, slots=True)
class Observation:
    """One DNS lookup, or one endpoint with everything done on it."""

    kind: Kind
    depth: int | None
    failure: str | None
    """The failure of the last operation reached; ``None`` when it succeeded."""
    transaction_id: int = 0
    query: DNSQuery | None = None
    tcp: TCPConnect | None = None
    tls: TLSHandshake | None = None
    http: HTTPTransaction | None = None

    @property
    def address(self) -> str:
        """``ip:port`` of an endpoint observation; ``""`` for a DNS one."""
        if self.tcp is not None:
            return endpoint(self.tcp.ip, self.tcp.port)
        if self.http is not None:
            return self.http.address
        return ""

    @property
    def is_final_response(self) -> bool:
        """A successful HTTP round trip with a 2xx, 4xx or 5xx status (OONI's "final")."""
        response = self.http.response if self.http is not None else None
        return (
            self.kind is Kind.HTTP
            and self.failure is None
            and response is not None
            and response.code // 100 in FINAL_STATUS_CLASSES
        )

    @property
    def over_tls(self) -> bool:
        """The response came over a TLS handshake that succeeded.

        Without a recorded handshake (an HTTP transaction that joined no endpoint) the URL
        scheme decides: our HTTP step verifies the certificate of every https fetch.
        """
        if self.tls is not None:
            return self.tls.failure is None
        return self.http is not None and self.http.request.url.lower().startswith("https:")


def is_classic_lookup(query: DNSQuery) -> bool:
    """A system-resolver lookup the classic analysis reads (``classic``, never DoH)."""
    return query.classic and query.engine != "doh"


def system_resolver_off(queries: Iterable[DNSQuery]) -> bool:
    """Lookups were made, none of them by the system resolver (``use_system_resolver = false``)."""
    engines = {query.engine for query in queries}
    return bool(engines) and "getaddrinfo" not in engines


def classic_lookups(queries: Iterable[DNSQuery]) -> list[DNSQuery]:
    """The lookups the classic analysis reads: the system resolver's, or its stand-ins.

    The system resolver's ``classic`` lookups when it was asked; otherwise every DNS-over-UDP
    or TCP lookup (the configured resolvers stand in for it), AAAA ``dns_no_answer`` aside.
    """
    queries = list(queries)
    if not system_resolver_off(queries):
        return [q for q in queries if is_classic_lookup(q)]
    return [q for q in queries if q.engine != "doh" and not is_aaaa_no_answer(q)]


def classic_observations(keys: WebConnectivityTestKeys) -> list[Observation]:
    """The classic DNS and endpoint observations of *keys*, in input order."""
    lookups = classic_lookups(keys.queries)
    out = [
        Observation(Kind.DNS, q.depth, q.failure, q.transaction_id, query=q)
        for q in lookups
        if q.failure is not None or q.addresses
    ]
    # Without the system resolver its stand-ins' addresses make an endpoint classic.
    stand_in = {a for q in lookups for a in q.addresses} if system_resolver_off(keys.queries) else set()
    endpoints: list[Observation] = [
        Observation(Kind.TCP, c.depth, c.status.failure, c.transaction_id, tcp=c)
        for c in keys.tcp_connect
        if c.classic or c.ip in stand_in
    ]
    for handshake in keys.tls_handshakes:
        index = _find(endpoints, handshake.transaction_id, handshake.address, handshake.depth)
        if index is not None and endpoints[index].kind is Kind.TCP and endpoints[index].failure is None:
            endpoints[index] = dataclasses.replace(
                endpoints[index], kind=Kind.TLS, failure=handshake.failure, tls=handshake
            )
    for transaction in reversed(keys.requests):  # time order: a later hop wins a tie
        depth = transaction.depth
        index = _find(endpoints, transaction.transaction_id, transaction.address, depth)
        if index is not None:
            endpoints[index] = dataclasses.replace(
                endpoints[index], kind=Kind.HTTP, failure=transaction.failure, http=transaction
            )
        elif transaction.classic or _ip_of(transaction.address) in stand_in:
            endpoints.append(
                Observation(
                    Kind.HTTP, depth, transaction.failure, transaction.transaction_id, http=transaction
                )
            )
    return out + endpoints


def linear(observations: list[Observation]) -> list[Observation]:
    """*observations* in OONI's decision order (see the module docstring)."""

    def key(obs: Observation) -> tuple[int, int, str, int]:
        depth = obs.depth if obs.depth is not None else -1
        return (-depth, -obs.kind, obs.failure or "", -obs.transaction_id)

    return sorted(observations, key=key)


def is_aaaa_no_answer(query: DNSQuery) -> bool:
    """``dns_no_answer`` to an AAAA query: the name simply has no IPv6 address."""
    return query.query_type == "AAAA" and query.failure == DNS_NO_ANSWER


def _ip_of(address: str) -> str:
    """The IP of ``ip:port`` (``[v6]:port`` too)."""
    return address.rpartition(":")[0].strip("[]") if ":" in address else address


def _find(endpoints: list[Observation], transaction_id: int, address: str, depth: int | None) -> int | None:
    if transaction_id > 0:
        for index, obs in enumerate(endpoints):
            if obs.transaction_id == transaction_id:
                return index
    for index in range(len(endpoints) - 1, -1, -1):
        obs = endpoints[index]
        if obs.tcp is not None and obs.address == address and obs.depth == depth:
            return index
    return None
