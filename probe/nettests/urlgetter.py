"""OONI's urlgetter for the messaging tests: look a name up, connect, or fetch a URL, recorded.

WhatsApp, Telegram, Signal and Facebook Messenger (ts-018, ts-020, ts-029, ts-019) are, in
OONI's probe, lists of urlgetter *targets* whose results the test judges. The same three kinds
of target here, each one :class:`Operation` made of the steps of :mod:`probe.steps`:

- :func:`lookup` (``dnslookup://host``): one lookup with the system resolver (getaddrinfo, as
  OONI's), or with the configured resolver (A and AAAA);
- :func:`connect` (``tcpconnect://host:port``): the lookup (none for an IP address), then a
  TCP connect to each address in turn (IPv4 first) until one succeeds, closed at once;
- :func:`fetch` (an http(s) URL): the same connect, a TLS handshake with the host as SNI for
  https (certificate verified), then one request over that connection (OONI's urlgetter
  ``GET``, or ``POST`` with no body for Telegram's data centres). Any response counts: the
  specs judge whether an HTTP(S) conversation happened, not its status; redirects are not
  followed.

An operation's ``failure`` is the first step failure that ended it (OONI's ``failure``, with
``failed_operation``: ``resolve``, ``connect``, ``tls_handshake``, ``http_round_trip``), and
:func:`verdict` maps it to the summary's ``blocking`` and mechanism as Web Connectivity does
without a control (a TLS reset is ``tls.reset``: nothing here says the server did not reset).
:func:`records` writes the steps of many operations as OONI's ``queries``, ``tcp_connect``,
``tls_handshakes``, ``requests`` and ``network_events``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import ssl
from collections import Counter
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from probe import privacy, serialize
from probe.analysis.mechanism import CERTIFICATE_ERRORS, dns_label, http_label, tcp_label, tls_label
from probe.ipinfo import AsnLookup, is_bogon, is_loopback, no_asn, parse_networks
from probe.mechanism import Mechanism
from probe.model import (
    Blocking,
    DNSQuery,
    HTTPTransaction,
    OONIMeasurement,
    Summary,
    TCPConnect,
    TLSHandshake,
)
from probe.nettests import base, tlsendpoint
from probe.nettests.endpoints import EndpointList
from probe.steps import dns, failures, http, tcp, tls, urls
from probe.steps.clock import Clock

if TYPE_CHECKING:
    from probe.webconnectivity import MeasureConfig

RESOLVE: Final = "resolve"
CONNECT: Final = "connect"
TLS_HANDSHAKE: Final = "tls_handshake"
HTTP_ROUND_TRIP: Final = "http_round_trip"
"""OONI's ``failed_operation`` names."""
BLOCKED: Final = "blocked"
OK: Final = "ok"
"""The messaging specs' status values."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class GetterConfig:
    """How the messaging tests measure: time budgets, resolver, trust, address facts."""

    dns_timeout: float = 4.0
    tcp_timeout: float = 10.0
    tls_timeout: float = 10.0
    http_timeout: float = 10.0
    resolver: dns.ResolverSpec | None = None
    """``None``: the system resolver (getaddrinfo), OONI's; else this one (A and AAAA)."""
    ca_file: Path | None = None
    """Trust only this PEM file (the lab's CA, tests'); ``None``: the system store."""
    public_networks: tuple[str, ...] = ()
    """Ranges that are public here although bogon (the lab's 10.x world)."""
    allow_loopback: bool = False
    """Loopback answers are the sites' own (tests on 127.0.0.1), not a censor's ``dns.localhost``."""
    asn_of: AsnLookup = no_asn
    """IP → ASN for Facebook Messenger's consistency check; 0: unknown."""
    volunteer_addresses: tuple[str, ...] = field(default=(), repr=False)
    """Addresses known to be the volunteer's (the round's ``whoami``), scrubbed besides this
    machine's own (:func:`probe.privacy.volunteer_addresses`)."""
    parallelism: int = 8
    body_limit: int = http.BODY_LIMIT

    def with_timeout(self, seconds: float) -> GetterConfig:
        """The same configuration with one budget for every step."""
        return replace(
            self, dns_timeout=seconds, tcp_timeout=seconds, tls_timeout=seconds, http_timeout=seconds
        )

    @classmethod
    def from_measure_config(cls, config: MeasureConfig) -> GetterConfig:
        """The messaging tests' view of a round's (or ``--config``'s) measurement configuration:
        its timeouts, CA file, public networks and ASN lookup; the system resolver unless the
        settings turn it off (then the first configured resolver)."""
        use_system = config.use_system_resolver or not config.resolvers
        return cls(
            dns_timeout=config.dns_timeout,
            tcp_timeout=config.tcp_timeout,
            tls_timeout=config.tls_timeout,
            http_timeout=config.http_timeout,
            resolver=None if use_system else config.resolvers[0],
            ca_file=config.ca_file,
            public_networks=config.public_networks,
            allow_loopback=config.allow_loopback,
            asn_of=config.asn_of,
            volunteer_addresses=config.volunteer_addresses,
            body_limit=config.body_limit,
        )


@dataclass(frozen=True, slots=True)
class Operation:
    """One urlgetter target, measured: its steps and how it ended."""

    target: str
    """``dnslookup://host``, ``tcpconnect://host:port`` or the URL."""
    queries: tuple[DNSQuery, ...] = ()
    connects: tuple[TCPConnect, ...] = ()
    handshakes: tuple[TLSHandshake, ...] = ()
    requests: tuple[HTTPTransaction, ...] = ()
    failure: str | None = None
    failed_operation: str | None = None
    addresses: tuple[str, ...] = ()
    """What the lookup answered (or the IP address of the target)."""

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass(slots=True)
class Session:
    """What the operations of one measurement share: clocks, configuration, TLS context, ids."""

    config: GetterConfig
    started: base.Clock
    """The measurement's start (the envelope's times); :attr:`clock` counts from it."""
    ssl_context: ssl.SSLContext | None = None
    """Built by :func:`begin` when a test fetches https URLs."""
    last_id: int = 0

    @property
    def clock(self) -> Clock:
        """The steps' clock: seconds since the measurement began."""
        return self.started.elapsed

    def next_id(self) -> int:
        self.last_id += 1
        return self.last_id


def begin(
    endpoints: EndpointList,
    roles: Sequence[str],
    config: GetterConfig | None,
    *,
    extra_roots: str = "",
    tls_needed: bool = True,
) -> Session:
    """Start one messaging measurement: check the list, start the clock, build the TLS context.

    Args:
        endpoints: the family's list (:func:`probe.nettests.endpoints.load`).
        roles: the roles the test needs at least one endpoint of.
        config: how to measure; ``None``: the system resolver and store, OONI's budgets.
        extra_roots: PEM roots trusted besides the CA file or the store (Signal's).
        tls_needed: whether the test fetches https URLs.

    Raises:
        ConfigError: a role is missing, or the CA file cannot be read or holds no certificate.
    """
    endpoints.require(*roles)
    config = config or GetterConfig()
    context = None
    if tls_needed:
        # HTTP/1.1 only: the request goes over the very connection the handshake measured.
        context = tls.make_ssl_context(config.ca_file, alpn=("http/1.1",))
        if extra_roots:
            context.load_verify_locations(cadata=extra_roots)
    return Session(config=config, started=base.Clock(), ssl_context=context)


def conclude(
    session: Session,
    *,
    test_name: str,
    test_version: str,
    operations: Sequence[Operation],
    keys: Mapping[str, Any],
    found: Summary,
    context: base.Context,
) -> OONIMeasurement:
    """The measurement: OONI's urlgetter records of *operations*, the test's *keys* and our
    summary (``x_`` keys), the volunteer's addresses scrubbed, in the df-000 envelope; its
    target (the series) is the test's name."""
    test_keys = {**records(operations), **keys, **summary_keys(found)}
    return base.finish(
        test_name=test_name,
        test_version=test_version,
        input=None,
        test_keys=scrubbed(test_keys, session.config, operations),
        summary=found,
        clock=session.started,
        context=context,
        target=test_name,
    )


async def gather(session: Session, jobs: Iterable[Awaitable[T]]) -> list[T]:
    """Await *jobs* with at most ``parallelism`` in flight; results in order."""
    gate = asyncio.Semaphore(max(1, session.config.parallelism))

    async def one(job: Awaitable[T]) -> T:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def _resolve(
    host: str, session: Session, transaction_id: int
) -> tuple[tuple[DNSQuery, ...], tuple[str, ...]]:
    """The lookups of *host* and the addresses they answered (IPv4 first, duplicates dropped)."""
    config, clock = session.config, session.clock
    if config.resolver is None:
        queries: tuple[DNSQuery, ...] = (
            await dns.resolve_system(
                host, timeout=config.dns_timeout, clock=clock, transaction_id=transaction_id
            ),
        )
    else:
        queries = tuple(
            await asyncio.gather(*(
                dns.resolve(host, kind, resolver=config.resolver, timeout=config.dns_timeout, clock=clock,
                            transaction_id=transaction_id)
                for kind in ("A", "AAAA")
            ))
        )  # fmt: skip
    found = [address for query in queries for address in query.addresses]
    ordered = sorted(dict.fromkeys(found), key=lambda a: ipaddress.ip_address(a).version)
    return queries, tuple(ordered)


def _lookup_failure(queries: Sequence[DNSQuery]) -> str:
    """The failure of lookups that gave no address: the first query's (NODATA for AAAA aside)."""
    for query in queries:
        if query.failure is not None and query.failure != failures.DNS_NO_ANSWER:
            return query.failure
    return next((q.failure for q in queries if q.failure is not None), failures.DNS_NO_ANSWER)


async def lookup(host: str, session: Session) -> Operation:
    """``dnslookup://host``: the lookup alone."""
    queries, addresses = await _resolve(host, session, session.next_id())
    failure = None if addresses else _lookup_failure(queries)
    return Operation(
        f"dnslookup://{host}",
        queries=queries,
        failure=failure,
        failed_operation=RESOLVE if failure else None,
        addresses=addresses,
    )


async def connect(host: str, port: int, session: Session) -> Operation:
    """``tcpconnect://host:port``: the lookup, then a connect to each address until one works."""
    target = f"tcpconnect://{urls.authority(host, port)}"
    operation, connection = await _dial(target, host, port, session, session.next_id())
    if connection is not None:
        await connection.close()
    return operation


async def _dial(
    target: str, host: str, port: int, session: Session, transaction_id: int
) -> tuple[Operation, tcp.Connection | None]:
    queries: tuple[DNSQuery, ...] = ()
    try:
        addresses: tuple[str, ...] = (str(ipaddress.ip_address(host)),)
    except ValueError:
        queries, addresses = await _resolve(host, session, transaction_id)
        if not addresses:
            failure = _lookup_failure(queries)
            return Operation(target, queries=queries, failure=failure, failed_operation=RESOLVE), None
    connects: list[TCPConnect] = []
    for address in addresses:
        record, connection = await tcp.connect(
            address,
            port,
            timeout=session.config.tcp_timeout,
            clock=session.clock,
            transaction_id=transaction_id,
        )
        connects.append(record)
        if connection is not None:
            return Operation(
                target, queries=queries, connects=tuple(connects), addresses=addresses
            ), connection
    return Operation(
        target, queries=queries, connects=tuple(connects), failure=connects[0].status.failure,
        failed_operation=CONNECT,
        addresses=addresses,
    ), None  # fmt: skip


async def fetch(url: str, session: Session, *, method: str = "GET") -> Operation:
    """One request for *url* (http or https) over the connection this operation measured.

    Raises:
        TargetError: *url* is not an http(s) URL.
    """
    scheme, host, port = urls.split_url(url)
    transaction_id = session.next_id()
    dialled, connection = await _dial(url, host.rstrip("."), port, session, transaction_id)
    if connection is None:
        return dialled
    address = dialled.connects[-1].ip
    handshakes: tuple[TLSHandshake, ...] = ()
    try:
        if scheme == "https":
            assert session.ssl_context is not None, "new_session(tls_needed=True) for https"
            handshake = await tls.handshake(
                connection, address=urls.endpoint(address, port), server_name=host.rstrip("."),
                ssl_context=session.ssl_context, timeout=session.config.tls_timeout, clock=session.clock,
                transaction_id=transaction_id,
            )  # fmt: skip
            handshakes = (handshake,)
            if handshake.failure is not None:
                return _with(dialled, handshakes=handshakes, failure=handshake.failure, failed=TLS_HANDSHAKE)
        exchange = await http.fetch(
            url, address=address, ssl_context=session.ssl_context or _plain_context(), method=method,
            timeout=session.config.http_timeout, clock=session.clock, transaction_id=transaction_id,
            body_limit=session.config.body_limit, connection=connection,
        )  # fmt: skip
    finally:
        await connection.close()
    failed = HTTP_ROUND_TRIP if exchange.failure is not None else None
    return _with(
        dialled, handshakes=handshakes, requests=(exchange,), failure=exchange.failure, failed=failed
    )


def _plain_context() -> ssl.SSLContext:
    # http.fetch wants a context even for plain HTTP over a handed connection; it is unused.
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _with(
    operation: Operation,
    *,
    handshakes: tuple[TLSHandshake, ...] = (),
    requests: tuple[HTTPTransaction, ...] = (),
    failure: str | None,
    failed: str | None,
) -> Operation:
    return Operation(
        operation.target, operation.queries, operation.connects, handshakes, requests, failure, failed,
        operation.addresses,
    )  # fmt: skip


# --- judging ------------------------------------------------------------------------------------


def verdict(operation: Operation, config: GetterConfig | None = None) -> tuple[Blocking, Mechanism]:
    """The summary's ``blocking`` and mechanism for *operation* (no control to compare).

    ``False``/``ok`` when it succeeded; ``dns`` for a failed lookup, or for one that answered
    only loopback or bogon addresses where a connect then failed (``dns.localhost``,
    ``dns.bogon``: :func:`lying_answer`); ``tcp_ip`` for failed connects; ``http-failure`` for
    the TLS handshake and the request. The mechanism names what was seen, as Web
    Connectivity's rule 3 does (:mod:`probe.analysis.mechanism`).
    """
    failure = operation.failure
    if failure is None:
        return False, Mechanism.OK
    if operation.failed_operation == RESOLVE:
        return "dns", dns_label(failure)
    if operation.failed_operation == CONNECT:
        lying = lying_answer(operation.addresses, config or GetterConfig()) if operation.queries else None
        return ("dns", lying) if lying is not None else ("tcp_ip", tcp_label(failure))
    if failure in CERTIFICATE_ERRORS:
        return "http-failure", Mechanism.TLS_CERTIFICATE
    if operation.failed_operation == TLS_HANDSHAKE:
        return "http-failure", Mechanism.TLS_RESET if failure == failures.CONNECTION_RESET else tls_label(
            failure
        )
    return "http-failure", http_label(failure)


def lying_answer(addresses: Sequence[str], config: GetterConfig) -> Mechanism | None:
    """``dns.localhost`` when *addresses* are all loopback, ``dns.bogon`` when all bogons
    (``public_networks`` aside), else ``None``; loopback is no lie with ``allow_loopback``."""
    if not addresses:
        return None
    if all(is_loopback(a) for a in addresses):
        return None if config.allow_loopback else Mechanism.DNS_LOCALHOST
    public = parse_networks(config.public_networks)
    if all(is_bogon(a, public=public) or (config.allow_loopback and is_loopback(a)) for a in addresses):
        return Mechanism.DNS_BOGON
    return None


def deciding(failed: Sequence[Operation]) -> Operation:
    """The failed operation that names the mechanism: the most common way they failed (the
    failed step and its failure), the first seen among equals.

    Raises:
        ValueError: *failed* is empty.
    """
    if not failed:
        raise ValueError("no failed operation")
    ways = Counter((o.failed_operation, o.failure) for o in failed)
    way = ways.most_common(1)[0][0]
    return next(o for o in failed if (o.failed_operation, o.failure) == way)


def summary(blocking: Blocking, mechanism: Mechanism, operations: Sequence[Operation]) -> Summary:
    """A :class:`~probe.model.Summary` with the first failure of each layer among *operations*."""

    def first(*kinds: str) -> str | None:
        return next((o.failure for o in operations if o.failed_operation in kinds), None)

    return Summary(
        blocking=blocking,
        accessible=blocking is False,
        mechanism=mechanism,
        dns_failure=first(RESOLVE),
        tcp_failure=first(CONNECT),
        tls_failure=first(TLS_HANDSHAKE),
        http_failure=first(HTTP_ROUND_TRIP),
    )


def summary_keys(found: Summary) -> dict[str, Any]:
    """Our summary in the test keys, as every test beyond websites writes it (``x_`` keys)."""
    mechanism = found.mechanism
    return {
        "x_blocking": found.blocking,
        "x_accessible": found.accessible,
        "x_mechanism": mechanism.value if isinstance(mechanism, Mechanism) else mechanism,
    }


# --- records ------------------------------------------------------------------------------------


def records(operations: Sequence[Operation]) -> dict[str, Any]:
    """OONI's urlgetter keys of *operations*: ``agent`` … ``tls_handshakes`` (df-001/2/5/6/8)."""
    steps = tlsendpoint.records(
        [c for o in operations for c in o.connects],
        [h for o in operations for h in o.handshakes],
        [r for o in operations for r in o.requests],
    )
    queries = [q for o in operations for q in o.queries]
    return {
        "agent": "redirect",
        "failed_operation": None,
        "failure": None,
        **steps,
        "queries": serialize.as_dict(queries) if queries else None,
        "socksproxy": None,
    }


def scrubbed(
    test_keys: Mapping[str, Any], config: GetterConfig, operations: Sequence[Operation]
) -> dict[str, Any]:
    """*test_keys* with the volunteer's addresses made ``[scrubbed]`` wherever a server echoed them."""
    toward = [a for o in operations for a in o.addresses]
    addresses = privacy.volunteer_addresses(known=config.volunteer_addresses, toward=toward)
    text = json.dumps(test_keys, ensure_ascii=False)
    clean = privacy.scrub_text(text, addresses)
    return dict(test_keys) if clean == text else dict(json.loads(clean))
