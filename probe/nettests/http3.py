"""HTTP/3 reachability: a QUIC handshake and a GET, beside TLS over TCP to the same address.

Censors block QUIC apart from TCP (UDP 443 dropped, or QUIC's ClientHello inspected), and a
browser then falls back to TCP unnoticed: the web test never sees it. This test measures, for
a URL's host:

1. DNS: the system resolver (``queries``);
2. the reference path: a TCP connect to the first address and a TLS handshake with the real
   SNI (``tcp_connect``, ``tls_handshakes``), then a ``HEAD`` over it, whose ``Alt-Svc``
   says whether the site offers HTTP/3 (``requests``, ``x_transport`` ``tcp``);
3. the QUIC handshake to the same address, UDP port 443 (``quic_handshakes``: OONI's name,
   the fields of ``tls_handshakes``, ``network`` ``udp``; certificates verified against the
   configured CA file, see :mod:`probe.nettests.quicstep`), then a GET over HTTP/3
   (``requests``, ``x_transport`` ``udp``, ALPN ``h3``).

The keys follow OONI's ``urlgetter`` (ts-027) with HTTP/3 enabled: ``queries``, ``tcp_connect``,
``tls_handshakes``, ``quic_handshakes``, ``requests`` (newest first), ``failure`` (the
HTTP/3 fetch's). OONI has no ``http3`` test of its own: ``test_name`` is reachprobe's, and the
verdict keys are ours (``x_blocking``, ``x_accessible``, ``x_mechanism``, ``x_h3_advertised``).

The verdict (no control: the TCP path is the reference, as Web Connectivity LTE compares
its QUIC and TCP endpoints):

- the HTTP/3 GET answered: reachable (``blocking`` false, mechanism ``ok``);
- the QUIC handshake failed while TLS over TCP to the same address verified, and the site
  offers HTTP/3 (its ``Alt-Svc``, or the caller knows it: *expect_h3*): blocked, ``tcp_ip``,
  mechanism ``quic.timeout`` / ``quic.refused`` / ``quic.reset`` — QUIC dropped while TCP/TLS
  pass is its own mechanism;
- the same without evidence that the site speaks HTTP/3: the mechanism is kept, the verdict
  is undecided (``null``): a site without HTTP/3 looks the same;
- the TCP path failed too: undecided, the reference path's mechanism (the address is
  blocked or down: the web test's control decides that).

The summary's failures are the HTTP/3 path's: ``dns_failure``, ``tls_failure`` the QUIC
handshake's (TLS 1.3 runs inside it), ``http_failure`` the HTTP/3 GET's; ``tcp_failure`` is
the reference connect's. The whole measurement runs under one deadline
(:attr:`HTTP3Config.deadline`).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from probe import serialize
from probe.analysis.mechanism import dns_label, http_label, tcp_label, tls_label
from probe.mechanism import Mechanism
from probe.model import DNSQuery, HTTPTransaction, OONIMeasurement, Summary, TCPConnect, TLSHandshake
from probe.nettests import quicstep
from probe.nettests.base import Clock, Context, finish
from probe.steps import dns, failures, http, tcp, tls, urls

TEST_NAME: Final = "http3"
TEST_VERSION: Final = "0.1.0"
SERIES_PREFIX: Final = "http3:"
"""A measurement's series is ``http3:<URL>``: apart from the web test's series of the URL."""
HTTP3_PORT: Final = 443


@dataclass(frozen=True, slots=True)
class HTTP3Config:
    """How to measure: trust, time budgets; defaults as the web test's."""

    ca_file: Path | None = None
    dns_timeout: float = 4.0
    tcp_timeout: float = 10.0
    tls_timeout: float = 10.0
    quic_timeout: float = 10.0
    http_timeout: float = 10.0
    deadline: float = 45.0
    """The whole measurement, every step included."""
    allow_loopback: bool = False
    """Measure loopback answers (tests); a censor's answer otherwise, as in the web test."""
    expect_h3: bool = False
    """The caller knows the site serves HTTP/3 (a listed endpoint): no ``Alt-Svc`` needed."""
    body_limit: int = 64 * 1024
    """Bytes of the HTTP/3 page kept: enough for its status, headers and title (the test asks
    whether HTTP/3 works, not for the page); the server is given little more credit than this."""
    lookup: dns.BlockingLookup = dns.system_lookup


def series(url: str) -> str:
    """The target (series) of the HTTP/3 measurements of *url*."""
    return SERIES_PREFIX + url


async def measure(url: str, *, context: Context, config: HTTP3Config | None = None) -> OONIMeasurement:
    """Measure HTTP/3 reachability of *url* (an ``https://`` URL).

    Raises:
        TargetError: *url* is not an https URL with a valid host.
    """
    config = config or HTTP3Config()
    scheme, host, port = urls.split_url(url)
    if scheme != "https":
        from probe.errors import TargetError

        raise TargetError(f"{url}: HTTP/3 needs an https:// URL")
    clock = Clock()
    steps = _Steps()
    try:
        async with asyncio.timeout(config.deadline):
            await _run(steps, url, host, port, config, clock.elapsed)
    except TimeoutError:
        steps.deadline_hit = True
    keys, summary = _verdict(steps, config)
    return finish(
        test_name=TEST_NAME, test_version=TEST_VERSION, input=url, test_keys=keys, summary=summary,
        clock=clock, context=context, target=series(url),
    )  # fmt: skip


@dataclass(slots=True)
class _Steps:
    query: DNSQuery | None = None
    connect: TCPConnect | None = None
    tls: TLSHandshake | None = None
    head: HTTPTransaction | None = None
    quic: TLSHandshake | None = None
    get: HTTPTransaction | None = None
    deadline_hit: bool = False


async def _run(
    steps: _Steps, url: str, host: str, port: int, config: HTTP3Config, clock: Callable[[], float]
) -> None:
    if _is_ip(host):
        ip = host
    else:
        steps.query = await dns.resolve_system(
            host, timeout=config.dns_timeout, clock=clock, transaction_id=1, port=port, lookup=config.lookup
        )
        candidates = [a for a in steps.query.addresses if config.allow_loopback or not _is_loopback(a)]
        if not candidates:
            return
        ip = candidates[0]
    contexts = tls.client_contexts(config.ca_file)
    steps.connect, connection = await tcp.connect(
        ip, port, timeout=config.tcp_timeout, clock=clock, transaction_id=2
    )
    if connection is not None:
        try:
            steps.tls = await tls.handshake(
                connection, address=urls.endpoint(ip, port), server_name=host,
                ssl_context=contexts.httpx, timeout=config.tls_timeout, clock=clock, transaction_id=2,
            )  # fmt: skip
            if steps.tls.failure is None:
                steps.head = await http.fetch(
                    url, address=ip, ssl_context=contexts.httpx,
                    timeout=config.http_timeout, clock=clock, transaction_id=2, method="HEAD",
                    connection=connection,
                )  # fmt: skip
        finally:
            await connection.close()
    steps.quic, session = await quicstep.handshake(
        ip, HTTP3_PORT if port == 443 else port, server_name=host, ca_file=config.ca_file,
        timeout=config.quic_timeout, clock=clock, transaction_id=3,
        receive_window=config.body_limit + 16 * 1024,
    )  # fmt: skip
    if session is not None:
        try:
            steps.get = await quicstep.get(
                session, url=url, timeout=config.http_timeout, clock=clock, transaction_id=3,
                body_limit=config.body_limit,
            )  # fmt: skip
        finally:
            await session.close()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_loopback(ip: str) -> bool:
    return ipaddress.ip_address(ip).is_loopback


def h3_advertised(head: HTTPTransaction | None) -> bool:
    """Does the response's ``Alt-Svc`` offer HTTP/3 (``h3=…``, ``h3-29=…``)?"""
    if head is None or head.response is None:
        return False
    for name, value in head.response.headers_list:
        if name.lower() == "alt-svc" and any(
            part.strip().split("=", 1)[0].startswith("h3") for part in value.split(",")
        ):
            return True
    return False


_QUIC_LABELS: Final = {
    failures.GENERIC_TIMEOUT: Mechanism.QUIC_TIMEOUT,
    failures.TIMED_OUT: Mechanism.QUIC_TIMEOUT,
    failures.CONNECTION_REFUSED: Mechanism.QUIC_REFUSED,
    failures.HOST_UNREACHABLE: Mechanism.QUIC_REFUSED,
    failures.NETWORK_UNREACHABLE: Mechanism.QUIC_REFUSED,
}


def quic_label(failure: str | None) -> Mechanism:
    """The mechanism of a QUIC handshake that failed with *failure* while TLS over TCP passed."""
    return _QUIC_LABELS.get(failure or "", Mechanism.QUIC_RESET)


def _verdict(steps: _Steps, config: HTTP3Config) -> tuple[dict[str, Any], Summary]:
    advertised = h3_advertised(steps.head)
    tcp_ok = steps.tls is not None and steps.tls.failure is None
    quic_failure = steps.quic.failure if steps.quic is not None else None
    get_failure = steps.get.failure if steps.get is not None else None
    dns_failure = steps.query.failure if steps.query is not None else None
    if steps.quic is None and steps.deadline_hit:
        quic_failure = failures.GENERIC_TIMEOUT
    blocking: bool | str | None = None
    accessible: bool | None = None
    mechanism: Mechanism | None
    if steps.get is not None and get_failure is None and steps.get.response is not None:
        blocking, accessible, mechanism = False, True, Mechanism.OK
    elif steps.query is not None and dns_failure is not None:
        mechanism = dns_label(dns_failure)
    elif steps.connect is not None and not tcp_ok:
        failure = steps.connect.status.failure
        mechanism = tcp_label(failure) if failure else tls_label(steps.tls.failure if steps.tls else None)
        accessible = False
    elif steps.quic is not None and quic_failure is not None:
        mechanism = quic_label(quic_failure)
        if tcp_ok and (advertised or config.expect_h3):
            blocking, accessible = "tcp_ip", False
    elif get_failure is not None:
        mechanism = http_label(get_failure)
        if tcp_ok and steps.head is not None and steps.head.response is not None:
            blocking, accessible = "http-failure", False
    else:  # nothing got far enough to say (a loopback answer refused, the deadline)
        mechanism = None
    requests = [r for r in (steps.get, steps.head) if r is not None]
    keys: dict[str, Any] = {
        "queries": [serialize.as_dict(steps.query)] if steps.query else [],
        "tcp_connect": [serialize.as_dict(steps.connect)] if steps.connect else [],
        "tls_handshakes": [serialize.as_dict(steps.tls)] if steps.tls else [],
        "quic_handshakes": [serialize.as_dict(steps.quic)] if steps.quic else [],
        "requests": [serialize.as_dict(r) for r in requests],
        "failure": get_failure if steps.get is not None else quic_failure or dns_failure,
        "x_h3_advertised": advertised,
        "x_blocking": blocking,
        "x_accessible": accessible,
        "x_mechanism": None if mechanism is None else mechanism.value,
    }
    summary = Summary(
        blocking=blocking,
        accessible=accessible,
        mechanism=mechanism,
        dns_failure=dns_failure,
        tcp_failure=steps.connect.status.failure if steps.connect else None,
        tls_failure=quic_failure,
        http_failure=get_failure,
        control_failure=None,
    )
    return keys, summary
