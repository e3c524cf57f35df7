"""One control request measured from the helper's vantage, with the probe's own step code.

Like OONI's ``oohelperd``: resolve the URL's host; then, concurrently, connect to every
endpoint the probe named plus every address the helper resolved (TLS handshake with the URL's
host as SNI for https), and fetch the URL following its redirects to the final page. Every
address is checked against the :class:`~.policy.AddressPolicy` before it is dialled; the
endpoints of the request must already have been checked by the caller.

DNS failures use the legacy helper's names (``oohelperd/dns.go`` ``dnsMapFailure``):
NXDOMAIN is ``dns_name_error``; NOERROR without addresses is no failure and ``addrs: []``;
refused, misbehaving, temporary and non-recoverable failures (and SERVFAIL) are
``dns_server_failure``; anything else ``unknown_error``.

The time a request may take is one number both sides know, :func:`control_budget`: the
helper measures within it (every step's timeout is clipped to what is left of it, so a step
still running when it ends is recorded as ``generic_timeout_error``, like any timeout, and the
answer is still given), and the probe waits that long plus :data:`ANSWER_MARGIN_S` for the
answer. The probe tells our helper its budget in :data:`BUDGET_HEADER` (a helper that does not
know the header, such as OONI's, ignores it; the wire format itself is OONI's, unchanged).
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from probe.helper.policy import AddressPolicy
from probe.ipinfo import AsnLookup, no_asn
from probe.model import (
    ControlDNS,
    ControlHTTPRequest,
    ControlIPInfo,
    ControlRequest,
    ControlResponse,
    ControlTCPConnect,
    ControlTLSHandshake,
    DNSQuery,
    HTTPResponse,
)
from probe.serialize import headers_map
from probe.steps import dns, failures, http, tcp, tls, urls
from probe.steps.clock import Clock, relative_clock

DNS_NAME_ERROR: Final = "dns_name_error"
DNS_SERVER_FAILURE: Final = "dns_server_failure"
UNKNOWN_ERROR: Final = "unknown_error"
DNS_BOGON_ERROR: Final = "dns_bogon_error"
"""Every address of a host is one the helper may not dial (OONI's bogon-filtering resolver)."""
FORWARDED_HEADERS: Final = frozenset({"user-agent", "accept", "accept-language"})
"""The probe's request headers the helper repeats (as oohelperd); nothing else is forwarded."""
MAX_FETCH_ATTEMPTS: Final = 3
BUDGET_HEADER: Final = "X-Reachprobe-Budget"
"""Request header: the seconds within which the probe wants its answer (a decimal number)."""
ANSWER_MARGIN_S: Final = 3.0
"""What the probe adds to the budget for the exchange with the helper itself (connect, TLS,
upload, queueing in the server, the answer's download): generous on any working path."""
FLAG_PROBE, FLAG_HELPER, FLAG_BOGON, FLAG_VALID = 1, 2, 4, 8

_SERVER_FAILURES: Final = frozenset(
    {
        failures.DNS_REFUSED,
        failures.DNS_SERVFAIL,
        failures.DNS_SERVER_MISBEHAVING,
        failures.DNS_TEMPORARY_FAILURE,
        failures.DNS_NON_RECOVERABLE_FAILURE,
    }
)


@dataclass(frozen=True, slots=True)
class HelperConfig:
    """How the helper measures: its resolvers, trust, budgets and bounds."""

    resolvers: tuple[dns.ResolverSpec, ...] = ()
    """Resolvers to ask (A and AAAA each); empty: the system resolver (getaddrinfo)."""
    ca_file: Path | None = None
    dns_timeout: float = 4.0
    tcp_timeout: float = 10.0
    tls_timeout: float = 10.0
    http_timeout: float = 10.0
    body_limit: int = http.BODY_LIMIT
    max_redirects: int = http.MAX_REDIRECTS
    max_endpoints: int = 16
    asn_of: AsnLookup = no_asn

    @property
    def budget_s(self) -> float:
        """The time one request takes at most with these step timeouts (:func:`control_budget`)."""
        return control_budget(
            dns_timeout=self.dns_timeout,
            tcp_timeout=self.tcp_timeout,
            tls_timeout=self.tls_timeout,
            http_timeout=self.http_timeout,
        )


def control_budget(
    *, dns_timeout: float, tcp_timeout: float, tls_timeout: float, http_timeout: float
) -> float:
    """The seconds a helper needs for one control request measured with these step timeouts.

    One hop with every step at its limit: DNS, then the connects (TCP, then TLS) beside the
    fetch (whose own connect, handshake and response share ``http_timeout``). A site that
    accepts and never answers costs the helper ``http_timeout`` (after DNS); one that drops
    the connect ``tcp_timeout``. What goes beyond one hop (redirects, a second address to
    fetch from) is cut there and recorded as ``generic_timeout_error``. 24 s with the default
    timeouts (4, 10, 10, 10), within OONI's probe's 30 s wait.

    This is the one place the budget is defined: the helper measures within it, the probe
    waits for it (plus :data:`ANSWER_MARGIN_S`, :func:`probe.control.answer_wait`).
    """
    return dns_timeout + max(tcp_timeout + tls_timeout, http_timeout)


@dataclass(frozen=True, slots=True)
class _Deadline:
    """When the helper's budget for one request ends (event-loop time)."""

    at: float

    def clip(self, timeout: float) -> float:
        """*timeout*, or what is left of the budget if that is less (0 once it has ended)."""
        return max(0.0, min(timeout, self.at - asyncio.get_running_loop().time()))


@dataclass(frozen=True, slots=True)
class _Lookup:
    addresses: tuple[str, ...]
    failure: str | None
    """The step's own failure string (``dns_nxdomain_error``…), not yet the legacy name."""


async def measure_control(
    request: ControlRequest, *, config: HelperConfig, policy: AddressPolicy, budget_s: float | None = None
) -> ControlResponse:
    """Measure *request* (already validated, its endpoints allowed by *policy*) within *budget_s*.

    Every step's timeout is clipped to what is left of *budget_s* (default: the configured
    steps' own budget, :attr:`HelperConfig.budget_s`), so the answer comes within it.

    Returns:
        The control response; what the network did is in its failure fields (a step the
        budget cut short: ``generic_timeout_error``).

    Raises:
        ConfigError: the configured CA file cannot be read.
    """
    clock = relative_clock()
    deadline = _Deadline(
        asyncio.get_running_loop().time() + (config.budget_s if budget_s is None else budget_s)
    )
    scheme, host, port = urls.split_url(request.http_request)
    lookup = await _resolve(host, config, clock, deadline)
    own = [ip for ip in lookup.addresses if policy.is_allowed(ip)]
    endpoints = list(dict.fromkeys([*request.tcp_connect, *(urls.endpoint(ip, port) for ip in own)]))
    endpoints = endpoints[: config.max_endpoints]
    context = tls.client_contexts(config.ca_file).handshake
    headers = _forwarded(request.http_request_headers)
    connects, fetched = await asyncio.gather(
        asyncio.gather(*(_connect(ep, scheme, host, config, context, clock, deadline) for ep in endpoints)),
        _fetch(request.http_request, lookup, config, policy, headers, clock, deadline),
    )
    tcp_results = {ep: result[0] for ep, result in zip(endpoints, connects, strict=True)}
    tls_results = {ep: result[1] for ep, result in zip(endpoints, connects, strict=True) if result[1]}
    valid = {_ip_of(ep) for ep, result in tls_results.items() if result.status}
    probe_ips = [_ip_of(ep) for ep in request.tcp_connect]
    return ControlResponse(
        tcp_connect=tcp_results,
        tls_handshake=tls_results,
        http_request=fetched,
        dns=ControlDNS(failure=legacy_dns_failure(lookup), addrs=lookup.addresses),
        ip_info=_ip_info(probe_ips, lookup.addresses, valid, config.asn_of, policy),
    )


def legacy_dns_failure(lookup: _Lookup) -> str | None:
    """The failure as the legacy helper names it (see the module docstring)."""
    if lookup.addresses or lookup.failure in (None, failures.DNS_NO_ANSWER):
        return None
    if lookup.failure == failures.DNS_NXDOMAIN:
        return DNS_NAME_ERROR
    if lookup.failure in _SERVER_FAILURES:
        return DNS_SERVER_FAILURE
    return UNKNOWN_ERROR


async def _resolve(host: str, config: HelperConfig, clock: Clock, deadline: _Deadline) -> _Lookup:
    """All addresses of *host*; a failure only when none came back (A's failure first)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return _Lookup((host,), None)
    queries: list[DNSQuery]
    if config.resolvers:
        queries = list(
            await asyncio.gather(
                *(
                    dns.resolve(
                        host,
                        query_type,
                        resolver=resolver,
                        timeout=deadline.clip(config.dns_timeout),
                        clock=clock,
                    )
                    for resolver in config.resolvers
                    for query_type in ("A", "AAAA")
                )
            )
        )
    else:
        queries = [await dns.resolve_system(host, timeout=deadline.clip(config.dns_timeout), clock=clock)]
    addresses = tuple(dict.fromkeys(a for query in queries for a in query.addresses))
    if addresses:
        return _Lookup(addresses, None)
    found = [query.failure for query in queries if query.failure is not None]
    nxdomain = failures.DNS_NXDOMAIN in found
    return _Lookup((), failures.DNS_NXDOMAIN if nxdomain else (found[0] if found else None))


async def _connect(
    ep: str,
    scheme: str,
    host: str,
    config: HelperConfig,
    context: ssl.SSLContext,
    clock: Clock,
    deadline: _Deadline,
) -> tuple[ControlTCPConnect, ControlTLSHandshake | None]:
    ip, port = urls.parse_endpoint(ep)  # validated with the request
    connect, connection = await tcp.connect(ip, port, timeout=deadline.clip(config.tcp_timeout), clock=clock)
    result = ControlTCPConnect(status=connect.status.success, failure=connect.status.failure)
    if connection is None or scheme != "https":
        if connection is not None:
            await connection.close()
        return result, None
    try:
        handshake = await tls.handshake(
            connection,
            address=ep,
            server_name=host,
            ssl_context=context,
            timeout=deadline.clip(config.tls_timeout),
            clock=clock,
        )
    finally:
        await connection.close()
    return result, ControlTLSHandshake(
        server_name=host, status=handshake.failure is None, failure=handshake.failure
    )


async def _fetch(
    url: str,
    first: _Lookup,
    config: HelperConfig,
    policy: AddressPolicy,
    headers: tuple[tuple[str, str], ...],
    clock: Clock,
    deadline: _Deadline,
) -> ControlHTTPRequest:
    """Fetch *url*, following redirects hop by hop (each hop resolved and checked again).

    A hop or an attempt that would start with nothing left of the budget is not started: the
    fetch ends with the failure of the attempt before it, or ``generic_timeout_error``.
    """
    current, lookup = url, first
    context = tls.client_contexts(config.ca_file).httpx  # shared, built once per trust store
    cookies = http.Cookies()  # one jar per control request, as OONI's oohelperd keeps
    for hop in range(config.max_redirects + 1):
        if hop > 0:
            if deadline.clip(config.dns_timeout) <= 0:
                return _http_failure(failures.GENERIC_TIMEOUT)
            lookup = await _resolve(urls.split_url(current)[1], config, clock, deadline)
        if not lookup.addresses:
            return _http_failure(lookup.failure or failures.DNS_NO_ANSWER)
        allowed = [ip for ip in lookup.addresses if policy.is_allowed(ip)]
        if not allowed:
            return _http_failure(DNS_BOGON_ERROR)
        transaction = None
        for ip in allowed[:MAX_FETCH_ATTEMPTS]:
            if (timeout := deadline.clip(config.http_timeout)) <= 0:
                break
            transaction = await http.fetch(
                current,
                address=ip,
                ssl_context=context,
                timeout=timeout,
                clock=clock,
                body_limit=config.body_limit,
                headers=headers,
                cookies=cookies,
            )
            if transaction.failure is None:
                break
        if transaction is None:  # the budget ended before the first attempt
            return _http_failure(failures.GENERIC_TIMEOUT)
        if transaction.failure is not None or transaction.response is None:
            return _http_failure(transaction.failure or failures.HTTP_REQUEST_FAILED)
        location = http.redirect_location(transaction)
        if location is None:
            return _http_success(transaction.response)
        invalid = http.validate_redirect(location)
        if invalid is not None:
            return _http_failure(invalid)
        current = location
    return _http_failure(failures.TOO_MANY_REDIRECTS)


def _http_success(response: HTTPResponse) -> ControlHTTPRequest:
    return ControlHTTPRequest(
        body_length=response.body_length,
        failure=None,
        title=response.title,
        headers=headers_map(response.headers_list),
        status_code=response.code,
    )


def _http_failure(failure: str) -> ControlHTTPRequest:
    return ControlHTTPRequest(body_length=-1, failure=failure, title="", headers={}, status_code=-1)


def _forwarded(headers: dict[str, tuple[str, ...]]) -> tuple[tuple[str, str], ...]:
    chosen = {name.lower(): values[0] for name, values in headers.items() if values}
    out = []
    for name, value in http.DEFAULT_HEADERS:
        out.append((name, chosen.get(name.lower(), value) if name.lower() in FORWARDED_HEADERS else value))
    return tuple(out)


def _ip_of(ep: str) -> str:
    return urls.parse_endpoint(ep)[0]


def _ip_info(
    probe_ips: Iterable[str],
    helper_ips: Iterable[str],
    valid: set[str],
    asn_of: AsnLookup,
    policy: AddressPolicy,
) -> dict[str, ControlIPInfo]:
    flags: dict[str, int] = {}
    for ip in probe_ips:
        flags[ip] = flags.get(ip, 0) | FLAG_PROBE
    for ip in helper_ips:
        flags[ip] = flags.get(ip, 0) | FLAG_HELPER
    info = {}
    for ip, bits in flags.items():
        bits |= FLAG_BOGON if not policy.is_public(ip) else 0
        bits |= FLAG_VALID if ip in valid else 0
        info[ip] = ControlIPInfo(asn=asn_of(ip), flags=bits)
    return info
