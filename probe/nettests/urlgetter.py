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
:mod:`probe.nettests.urlverdict` judges operations and writes them as OONI's records.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypeVar

from probe.ipinfo import AsnLookup, no_asn
from probe.mechanism import Mechanism
from probe.model import DNSQuery, HTTPTransaction, Summary, TCPConnect, TLSHandshake
from probe.nettests import base
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


def summary_keys(found: Summary) -> dict[str, Any]:
    """Our summary in the test keys, as every test beyond websites writes it (``x_`` keys)."""
    mechanism = found.mechanism
    return {
        "x_blocking": found.blocking,
        "x_accessible": found.accessible,
        "x_mechanism": mechanism.value if isinstance(mechanism, Mechanism) else mechanism,
    }


# --- records ------------------------------------------------------------------------------------
