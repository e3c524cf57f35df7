"""HTTP/3 reachability: a QUIC handshake and a GET, beside TLS over TCP to the same address.

Censors block QUIC apart from TCP (UDP 443 dropped, or QUIC's ClientHello inspected), and a
browser then falls back to TCP unnoticed: the web test never sees it. This test measures, for
a URL's host:

1. DNS: the system resolver (``queries``);
2. for each address (the first :data:`MAX_ADDRESSES`, all at once, as the web test connects
   to every address): the reference path, a TCP connect and a TLS handshake with the real
   SNI (``tcp_connect``, ``tls_handshakes``), then a ``HEAD`` over it, whose ``Alt-Svc``
   says whether the site offers HTTP/3 (``requests``, ``x_transport`` ``tcp``);
3. the QUIC handshake to the same address, UDP port 443 (``quic_handshakes``: OONI's name,
   the fields of ``tls_handshakes``, ``network`` ``udp``; certificates verified against the
   configured CA file, see :mod:`probe.nettests.quicstep`), then a GET over HTTP/3
   (``requests``, ``x_transport`` ``udp``, ALPN ``h3``).

Each address's steps share transaction ids: ``2 + 2k`` for the TCP path of the k-th address,
``3 + 2k`` for its QUIC path.

The keys follow OONI's ``urlgetter`` (ts-027) with HTTP/3 enabled: ``queries``, ``tcp_connect``,
``tls_handshakes``, ``quic_handshakes``, ``requests`` (newest first), ``failure`` (the
HTTP/3 fetch's). OONI has no ``http3`` test of its own: ``test_name`` is reachprobe's, and the
verdict keys are ours (``x_blocking``, ``x_accessible``, ``x_mechanism``, ``x_h3_advertised``).

The verdict (no control: the TCP path is the reference, as Web Connectivity LTE compares
its QUIC and TCP endpoints):

- an HTTP/3 GET answered, at any address: reachable (``blocking`` false, mechanism ``ok``);
- the QUIC handshake failed at every address where TLS over TCP verified, and the site
  offers HTTP/3 (its ``Alt-Svc``, or the caller knows it: *expect_h3*): blocked, ``tcp_ip``,
  mechanism ``quic.timeout`` / ``quic.refused`` / ``quic.reset`` (the first such address's)
  — QUIC dropped while TCP/TLS pass is its own mechanism;
- the same without evidence that the site speaks HTTP/3: the mechanism is kept, the verdict
  is undecided (``null``): a site without HTTP/3 looks the same;
- QUIC passed somewhere but no GET answered: ``http-failure`` where the HEAD over TCP did;
- the TCP path failed at every address: undecided, the reference path's mechanism (the
  addresses are blocked or down: the web test's control decides that).

The summary's failures are those of the address that decided (the first where QUIC or the
GET failed while TLS passed, else the first): ``dns_failure``, ``tls_failure`` the QUIC
handshake's (TLS 1.3 runs inside it), ``http_failure`` the HTTP/3 GET's; ``tcp_failure`` is
the reference connect's. The whole measurement runs under one deadline
(:attr:`HTTP3Config.deadline`): an address still in progress when it passes has its QUIC
handshake recorded as timed out if it never began one.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
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
MAX_ADDRESSES: Final = 4
"""Addresses of a name measured at once (a name with more is measured at its first four)."""


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
class _Path:
    """One address's steps: the TCP reference path, then QUIC."""

    connect: TCPConnect | None = None
    tls: TLSHandshake | None = None
    head: HTTPTransaction | None = None
    quic: TLSHandshake | None = None
    get: HTTPTransaction | None = None

    @property
    def tcp_ok(self) -> bool:
        return self.tls is not None and self.tls.failure is None

    @property
    def answered(self) -> bool:
        return self.get is not None and self.get.failure is None and self.get.response is not None


@dataclass(slots=True)
class _Steps:
    query: DNSQuery | None = None
    paths: list[_Path] = field(default_factory=list)
    deadline_hit: bool = False


async def _run(
    steps: _Steps, url: str, host: str, port: int, config: HTTP3Config, clock: Callable[[], float]
) -> None:
    if _is_ip(host):
        addresses = [host]
    else:
        steps.query = await dns.resolve_system(
            host, timeout=config.dns_timeout, clock=clock, transaction_id=1, port=port, lookup=config.lookup
        )
        addresses = [a for a in steps.query.addresses if config.allow_loopback or not _is_loopback(a)]
        addresses = addresses[:MAX_ADDRESSES]
    contexts = tls.client_contexts(config.ca_file)
    steps.paths = [_Path() for _ in addresses]
    await asyncio.gather(
        *(
            _run_address(path, ip, 2 + 2 * k, url, host, port, config, contexts, clock)
            for k, (path, ip) in enumerate(zip(steps.paths, addresses, strict=True))
        )
    )


async def _run_address(
    path: _Path,
    ip: str,
    tcp_id: int,
    url: str,
    host: str,
    port: int,
    config: HTTP3Config,
    contexts: tls.ClientContexts,
    clock: Callable[[], float],
) -> None:
    path.connect, connection = await tcp.connect(
        ip, port, timeout=config.tcp_timeout, clock=clock, transaction_id=tcp_id
    )
    if connection is not None:
        try:
            path.tls = await tls.handshake(
                connection, address=urls.endpoint(ip, port), server_name=host,
                ssl_context=contexts.httpx, timeout=config.tls_timeout, clock=clock, transaction_id=tcp_id,
            )  # fmt: skip
            if path.tls.failure is None:
                path.head = await http.fetch(
                    url, address=ip, ssl_context=contexts.httpx,
                    timeout=config.http_timeout, clock=clock, transaction_id=tcp_id, method="HEAD",
                    connection=connection,
                )  # fmt: skip
        finally:
            await connection.close()
    path.quic, session = await quicstep.handshake(
        ip, HTTP3_PORT if port == 443 else port, server_name=host, ca_file=config.ca_file,
        timeout=config.quic_timeout, clock=clock, transaction_id=tcp_id + 1,
        receive_window=config.body_limit + 16 * 1024,
    )  # fmt: skip
    if session is not None:
        try:
            path.get = await quicstep.get(
                session, url=url, timeout=config.http_timeout, clock=clock, transaction_id=tcp_id + 1,
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
    paths = steps.paths
    advertised = any(h3_advertised(p.head) for p in paths)
    dns_failure = steps.query.failure if steps.query is not None else None
    tcp_passed = [p for p in paths if p.tcp_ok]
    # The path that decides: one that answered; else the first whose QUIC or GET failed while
    # TLS over TCP passed; else the first.
    decisive = next((p for p in paths if p.answered), None) or next(
        (p for p in tcp_passed if p.quic is not None), paths[0] if paths else None
    )
    quic_failure = decisive.quic.failure if decisive is not None and decisive.quic is not None else None
    get_failure = decisive.get.failure if decisive is not None and decisive.get is not None else None
    if steps.deadline_hit and decisive is not None and decisive.quic is None:
        quic_failure = failures.GENERIC_TIMEOUT  # the deadline came first (no handshake to record)
    blocking: bool | str | None = None
    accessible: bool | None = None
    mechanism: Mechanism | None
    if decisive is not None and decisive.answered:
        blocking, accessible, mechanism = False, True, Mechanism.OK
    elif steps.query is not None and dns_failure is not None:
        mechanism = dns_label(dns_failure)
    elif decisive is not None and not tcp_passed and decisive.connect is not None:
        failure = decisive.connect.status.failure
        tls_failure = decisive.tls.failure if decisive.tls else None
        mechanism = tcp_label(failure) if failure else tls_label(tls_failure)
        accessible = False
    elif decisive is not None and decisive.quic is not None and quic_failure is not None:
        mechanism = quic_label(quic_failure)
        if all(p.quic is not None and p.quic.failure is not None for p in tcp_passed) and (
            advertised or config.expect_h3
        ):
            blocking, accessible = "tcp_ip", False
    elif decisive is not None and get_failure is not None:
        mechanism = http_label(get_failure)
        if decisive.head is not None and decisive.head.response is not None:
            blocking, accessible = "http-failure", False
    else:  # nothing got far enough to say (a loopback answer refused, the deadline)
        mechanism = None
    keys: dict[str, Any] = {
        "queries": [serialize.as_dict(steps.query)] if steps.query else [],
        "tcp_connect": [serialize.as_dict(p.connect) for p in paths if p.connect],
        "tls_handshakes": [serialize.as_dict(p.tls) for p in paths if p.tls],
        "quic_handshakes": [serialize.as_dict(p.quic) for p in paths if p.quic],
        "requests": [serialize.as_dict(r) for p in paths for r in (p.get, p.head) if r is not None],
        "failure": get_failure if decisive and decisive.get else quic_failure or dns_failure,
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
        tcp_failure=decisive.connect.status.failure if decisive and decisive.connect else None,
        tls_failure=quic_failure,
        http_failure=get_failure,
        control_failure=None,
    )
    return keys, summary
