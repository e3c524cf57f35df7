"""One URL end to end: DNS → TCP → TLS → HTTP, redirects followed hop by hop.

This follows OONI's Web Connectivity (reference §1.1). Each hop (every step records its
``depth``, and ``classic`` when the system resolver gave its address) resolves the host with
the system resolver and every configured resolver, connects to every address found, runs
a TLS handshake with the real SNI on each https endpoint, and fetches the page through the
first endpoint that worked (system-resolver addresses first) over the connection its TCP and
TLS steps opened, as OONI's Web Connectivity does: one handshake per endpoint, and the page is
what that measured connection delivered, in the protocol its handshake agreed (HTTP/1.1 or
HTTP/2; a new connection only when the server closed the measured one first, see
:func:`_endpoint`). A redirect starts the next hop;
more than ``max_redirects`` hops, or a ``Location`` with no usable host, end the chain with a
failure on the last request.

Nothing the network does raises: every outcome is a failure string on a step, and the
measurement is always returned. Only a URL that cannot be measured at all raises
:class:`~probe.errors.TargetError`.

When a control (test helper) is configured, the control request is sent as soon as the
first hop's DNS is done, concurrently with the connects and the fetches, as OONI's probe does;
its response (or the failure that stands in for it, ``control_failure``) and the probe's
observations then go through :func:`probe.analysis.analyse`, which fills the verdict keys.
The analysis always runs, without a control too: ``mechanism`` is then
``control.unreachable`` where OONI's rules leave the verdict ``null``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import itertools
import platform
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from probe import SOFTWARE_NAME, __version__, analysis, control, serialize
from probe.analysis import flags
from probe.control import CONTROL_NOT_CONFIGURED
from probe.fingerprints import FingerprintDB, default_fingerprints
from probe.ipinfo import AsnLookup, no_asn, parse_networks
from probe.model import (
    DNSQuery,
    HTTPTransaction,
    Measurement,
    TCPConnect,
    TLSHandshake,
    WebConnectivityTestKeys,
)
from probe.privacy import RoundAddresses, scrub
from probe.rounds import activity
from probe.steps import bodies, dns, failures, http, tcp, tls, urls
from probe.steps.clock import Clock, relative_clock

__all__ = ["CONTROL_NOT_CONFIGURED", "MeasureConfig", "measure"]
MAX_ENDPOINTS_PER_HOP = 16
"""Bounds the connects of one hop: a hostile resolver cannot make us dial thousands of IPs."""


@dataclass(frozen=True, slots=True)
class MeasureConfig:
    """How to measure: resolvers, trust, time budgets and limits (all with sane defaults)."""

    resolvers: tuple[dns.ResolverSpec, ...] = ()
    use_system_resolver: bool = True
    ca_file: Path | None = None
    dns_timeout: float = 4.0
    tcp_timeout: float = 10.0
    tls_timeout: float = 10.0
    http_timeout: float = 10.0
    body_limit: int = http.BODY_LIMIT
    max_redirects: int = http.MAX_REDIRECTS
    allow_loopback: bool = False
    """Connect to loopback answers. OONI never does (127.0.0.1 is a censor's answer); tests do."""
    probe_asn: str = "AS0"
    """``AS0``/``ZZ`` (unknown): asked of the control's ``whoami`` when a control is set."""
    probe_cc: str = "ZZ"
    volunteer_addresses: tuple[str, ...] = field(default=(), repr=False)
    """The volunteer's addresses learned before the measurement (the round's ``whoami``), to
    scrub from it (:mod:`probe.privacy`); in memory only, and out of ``repr``."""
    query_types: tuple[str, ...] = field(default=("A", "AAAA"))
    control_url: str | None = None
    """The test helper (OONI-compatible); ``None``: no control (``control_not_configured``)."""
    control_timeout: float | None = None
    """Seconds to wait for the control's answer; ``None`` (best): what the step timeouts need,
    :func:`probe.control.answer_wait` (27 s with the defaults; OONI's probe waits 30 s). A
    shorter wait loses the verdicts of the sites that hang (issue 10)."""
    control_max_in_flight: int | None = control.MAX_IN_FLIGHT
    """Control requests in flight at once to the helper, per round (``None``: unbounded)."""
    public_networks: tuple[str, ...] = ()
    """Ranges that are public here although bogon (the lab's 10.x world)."""
    asn_of: AsnLookup = no_asn
    """IP → ASN (:func:`probe.ipinfo.load_asn_database`); 0 for unknown."""
    fingerprints: FingerprintDB | None = None
    """Blockpage and DNS fingerprints; ``None``: the shipped ones, loaded by :func:`prepare`."""
    contexts: tls.ClientContexts | None = field(default=None, repr=False, compare=False)
    """The TLS client contexts trusting ``ca_file`` (the system store when unset), built by
    :func:`prepare` — once per round, from the CA file as it is then; ``None``: those of the
    CA file as it is at the measurement's start (:func:`probe.steps.tls.client_contexts`). Passed,
    never cached for the process's life: a rotated CA file counts from the next round on."""
    addresses: RoundAddresses | None = field(default=None, repr=False, compare=False)
    """The volunteer's addresses as the round gathers them (:func:`round_addresses`, once a
    round, not once a measurement); ``None``: the measurement gathers them itself."""
    report_id: str | None = None
    """The round's OONI ``report_id`` (:func:`probe.rounds.runner.measure_round` sets one per round);
    ``None``: this measurement makes its own (one ``probe measure`` is one report)."""
    decoy_sni: str | None = None
    """A decoy name that settles a failed TLS handshake (:func:`probe.nettests.sni_blocking.follow_up`:
    one more handshake, naming it, to the same address; SNI filtering only when that one gets
    through); ``None``: off."""

    def with_timeout(self, seconds: float) -> MeasureConfig:
        """The same configuration with one budget for every step; the control's wait follows."""
        return replace(
            self,
            dns_timeout=seconds,
            tcp_timeout=seconds,
            tls_timeout=seconds,
            http_timeout=seconds,
            control_timeout=None,
        )


def prepare(config: MeasureConfig) -> MeasureConfig:
    """*config* with what it reads from files loaded: its TLS contexts and the shipped fingerprints.

    A round prepares its configuration once (:func:`probe.rounds.service.plan_round`, or
    :func:`probe.rounds.runner.measure_round` for a configuration that is not yet), so its
    measurements share one trust store and one fingerprint table; what is given is kept.

    Raises:
        ConfigError: ``ca_file`` cannot be read or holds no PEM certificate, or a shipped
            fingerprint file is invalid.
    """
    return replace(
        config,
        contexts=config.contexts or tls.load_client_contexts(config.ca_file),
        fingerprints=config.fingerprints if config.fingerprints is not None else default_fingerprints(),
    )


@dataclass(slots=True)
class _Recorder:
    """Collects the steps of one measurement as they complete; each tells *progress*."""

    clock: Clock
    progress: activity.Progress = activity.nothing
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    queries: list[DNSQuery] = field(default_factory=list)
    tcp_connect: list[TCPConnect] = field(default_factory=list)
    tls_handshakes: list[TLSHandshake] = field(default_factory=list)
    requests: list[HTTPTransaction] = field(default_factory=list)
    cookies: http.Cookies = field(default_factory=http.Cookies)
    """The measurement's cookie jar: a hop's ``Set-Cookie`` goes with the next hops' requests."""

    def next_id(self) -> int:
        return next(self.ids)

    def add_queries(self, queries: list[DNSQuery]) -> None:
        self.queries.extend(queries)
        if any(query.failure not in _SILENCE for query in queries):
            self.progress()

    def add_connect(self, connect: TCPConnect) -> None:
        self.tcp_connect.append(connect)
        self._ended(connect.status.failure)

    def add_handshake(self, handshake: TLSHandshake) -> None:
        self.tls_handshakes.append(handshake)
        self._ended(handshake.failure)

    def add_request(self, transaction: HTTPTransaction) -> None:
        self.requests.append(transaction)
        self._ended(transaction.failure)

    def _ended(self, failure: str | None) -> None:
        # A step that timed out got nothing from the network: its end is no sign of work
        # (the round learns from these signs how soon its network answers).
        if failure not in _SILENCE:
            self.progress()


_SILENCE = frozenset({failures.GENERIC_TIMEOUT, failures.TIMED_OUT})
"""The failures of a step that got nothing from the network before its deadline."""


async def measure(
    url: str, *, config: MeasureConfig | None = None, on_progress: activity.Progress | None = None
) -> Measurement:
    """Measure *url* from this vantage point.

    *on_progress* is called each time the network gives the measurement something: a step
    completed, a chunk of a body (:mod:`probe.rounds.activity`; the round runner listens).

    Returns:
        The complete measurement, whatever the network did.

    Raises:
        TargetError: *url* is malformed or its scheme is not http/https.
        ConfigError: the configured CA file cannot be read, or a public network is not a CIDR.
    """
    config = config or MeasureConfig()
    _, _, port = urls.split_url(url)  # validate before any traffic
    public = parse_networks(config.public_networks)
    # Not prepared (one `probe measure`): the contexts of the CA file as it is now.
    contexts = config.contexts or tls.client_contexts(config.ca_file)
    started = datetime.now(UTC)
    t_start = time.monotonic()
    recorder = _Recorder(clock=relative_clock(), progress=on_progress or activity.nothing)
    vantage = control.Session(
        config.control_url,
        url,
        port=port,
        timeout=control_wait(config),
        ssl_context=contexts.httpx if config.control_url else None,
        public_networks=public,
        ask_whoami=(config.probe_asn, config.probe_cc) == ("AS0", "ZZ"),
        max_in_flight=config.control_max_in_flight,
    )
    try:
        current: str | None = url
        depth = 0
        hop_failure: str | None = None
        while current is not None:
            on_resolved = vantage.start if depth == 0 else None
            current, hop_failure = await _hop(current, depth, config, contexts, recorder, on_resolved)
            depth += 1
            if current is not None and depth > config.max_redirects:
                hop_failure = _fail_last_request(recorder, failures.TOO_MANY_REDIRECTS)
                break
        response, control_failure = await vantage.result()
        identity = await vantage.identity()
    finally:
        await vantage.cancel()

    observed = WebConnectivityTestKeys(
        queries=tuple(recorder.queries),
        tcp_connect=tuple(recorder.tcp_connect),
        tls_handshakes=tuple(recorder.tls_handshakes),
        requests=tuple(reversed(recorder.requests)),
        http_experiment_failure=hop_failure,
    )
    keys = analysis.analyse(
        observed,
        response,
        control_failure=control_failure,
        url=url,
        asn_of=config.asn_of,
        fingerprints=config.fingerprints if config.fingerprints is not None else default_fingerprints(),
        public_networks=public,
    )
    keys = flags.with_flags(
        keys,
        response if control_failure is None else None,
        url=url,
        asn_of=config.asn_of,
        public_networks=public,
    )
    if config.decoy_sni is not None:
        from probe.nettests import sni_blocking  # only when asked for: the follow-up's traffic is opt-in

        keys = await sni_blocking.follow_up(
            keys, decoy_sni=config.decoy_sni, ssl_context=contexts.handshake, timeout=config.tls_timeout,
            clock=recorder.clock,
        )  # fmt: skip
    probe_asn, probe_cc = (
        (identity.probe_asn, identity.probe_cc) if identity else (config.probe_asn, config.probe_cc)
    )
    stamp = started.replace(microsecond=0)  # OONI's start times have whole seconds
    test_name = "web_connectivity"
    measurement = Measurement(
        input=url,
        measurement_start_time=stamp,
        test_start_time=stamp,
        test_runtime=round(time.monotonic() - t_start, 6),
        software_name=SOFTWARE_NAME,
        software_version=__version__,
        test_keys=keys,
        measurement_uid=serialize.new_measurement_uid(started, test_name=test_name, probe_cc=probe_cc),
        report_id=config.report_id
        or serialize.new_report_id(started, test_name=test_name, probe_cc=probe_cc, probe_asn=probe_asn),
        test_helper=config.control_url,
        probe_asn=probe_asn,
        probe_cc=probe_cc,
        annotations={
            "engine_name": SOFTWARE_NAME,
            "engine_version": __version__,
            "platform": platform.system().lower(),
            "architecture": platform.machine(),  # as Python names it; serialised as Go does
        },
    )
    # The one place the volunteer's addresses are removed: nothing returned from here (printed,
    # stored, exported, uploaded) carries them, whatever the pages echoed.
    whoami_ip = identity.probe_ip if identity is not None and identity.probe_ip else None
    addresses = config.addresses or round_addresses(config)
    return scrub(measurement, addresses.get(extra=[whoami_ip] if whoami_ip else ()))


def round_addresses(config: MeasureConfig) -> RoundAddresses:
    """The volunteer's addresses for the measurements made with *config*: those it knows
    (the round's ``whoami``) and the source addresses toward its resolvers and control."""
    return RoundAddresses(
        known=config.volunteer_addresses,
        toward=(*(resolver.host or resolver.url for resolver in config.resolvers), config.control_url or ""),
    )


def control_wait(config: MeasureConfig) -> float:
    """How long a measurement with *config* waits for its control's answer."""
    if config.control_timeout is not None:
        return config.control_timeout
    return control.answer_wait(
        dns_timeout=config.dns_timeout,
        tcp_timeout=config.tcp_timeout,
        tls_timeout=config.tls_timeout,
        http_timeout=config.http_timeout,
    )


async def _hop(
    url: str,
    depth: int,
    config: MeasureConfig,
    contexts: tls.ClientContexts,
    rec: _Recorder,
    on_resolved: Callable[[list[str]], None] | None = None,
) -> tuple[str | None, str | None]:
    """Measure one hop; *on_resolved* gets the hop's addresses as soon as DNS is done.

    Returns:
        The next URL when the response is a valid redirect (else ``None``), and the failure
        that ended this hop (``None`` when a response arrived), OONI's
        ``http_experiment_failure`` if this is the last hop.
    """
    scheme, host, port = urls.split_url(url)
    queries_before = len(rec.queries)
    classic, other = await _resolve(host, depth, config, contexts.httpx, rec)
    endpoints = _endpoints(classic, other, config)
    if on_resolved is not None:
        on_resolved([ip for ip in [*classic, *other] if not ipaddress.ip_address(ip).is_loopback])
    # One transaction ID per endpoint: its TCP, TLS and HTTP steps share it, as OONI's do.
    tids = {ip: rec.next_id() for ip in endpoints}
    results = await asyncio.gather(
        *(
            _endpoint(ip, port, scheme, host, ip in classic, depth, config, contexts.handshake, rec, tids[ip])
            for ip in endpoints
        )
    )
    kept = [connection for _, _, connection in results if connection is not None]
    try:
        if not endpoints:
            return None, _lookup_failure(rec.queries[queries_before:])
        working, connection = next(
            ((ip, c) for ip, (_, failure, c) in zip(endpoints, results, strict=True) if failure is None),
            (None, None),
        )
        await asyncio.gather(*(other.close() for other in kept if other is not connection))
        if working is None:
            # Report the deepest step reached: a TLS failure says more than a TCP one.
            deepest = sorted(results, key=lambda result: result[0] != "tls")
            return None, deepest[0][1]
        transaction = await http.fetch(
            url,
            address=working,
            ssl_context=contexts.httpx,
            timeout=config.http_timeout,
            clock=rec.clock,
            transaction_id=tids[working],
            body_limit=config.body_limit,
            cookies=rec.cookies,
            on_progress=rec.progress,
            # A new connection when there is none to hand on (see _endpoint) or the server
            # closed it while the other endpoints were being measured: not a failure of the site.
            connection=connection if connection is not None and connection.is_open() else None,
        )
    finally:
        await asyncio.gather(*(kept_connection.close() for kept_connection in kept))
    transaction = replace(transaction, depth=depth, classic=working in classic)
    rec.add_request(transaction)
    location = http.redirect_location(transaction)
    if location is None:
        return None, transaction.failure
    invalid = http.validate_redirect(location)
    if invalid is not None:
        return None, _fail_last_request(rec, invalid)
    return location, None


async def _resolve(
    host: str, depth: int, config: MeasureConfig, ssl_context: ssl.SSLContext, rec: _Recorder
) -> tuple[list[str], list[str]]:
    """Resolve *host* every configured way; return (system addresses, other addresses)."""
    if _is_ip(host):
        return [host], []
    lookups = []
    if config.use_system_resolver:
        lookups.append(
            dns.resolve_system(
                host,
                timeout=config.dns_timeout,
                clock=rec.clock,
                transaction_id=rec.next_id(),
            )
        )
    for resolver in config.resolvers:
        for query_type in config.query_types:
            lookups.append(
                dns.resolve(
                    host,
                    query_type,
                    resolver=resolver,
                    timeout=config.dns_timeout,
                    clock=rec.clock,
                    transaction_id=rec.next_id(),
                    ssl_context=ssl_context if resolver.engine == "doh" else None,
                )
            )
    queries = [
        replace(q, depth=depth, classic=q.engine == "getaddrinfo") for q in await asyncio.gather(*lookups)
    ]
    rec.add_queries(queries)
    classic = _unique(a for q in queries if q.engine == "getaddrinfo" for a in q.addresses)
    other = _unique(a for q in queries if q.engine != "getaddrinfo" for a in q.addresses)
    return classic, [a for a in other if a not in classic]


def _endpoints(classic: list[str], other: list[str], config: MeasureConfig) -> list[str]:
    candidates = [*classic, *other]
    if not config.allow_loopback:
        candidates = [ip for ip in candidates if not ipaddress.ip_address(ip).is_loopback]
    return candidates[:MAX_ENDPOINTS_PER_HOP]


async def _endpoint(
    ip: str,
    port: int,
    scheme: str,
    host: str,
    is_classic: bool,
    depth: int,
    config: MeasureConfig,
    ssl_context: ssl.SSLContext,
    rec: _Recorder,
    tid: int,
) -> tuple[str, str | None, tcp.Connection | None]:
    """TCP connect (and TLS handshake for https) to one endpoint, steps tagged with *tid*.

    Returns:
        The last step run (``"tcp"`` or ``"tls"``), its failure (``None``: the endpoint works),
        and the connection when the page can be fetched over it (the caller closes it); ``None``
        after a failure. A connection whose handshake chose ``h2`` carries the request as
        HTTP/2 (:data:`probe.steps.bodies.SPEAKS_H2`; without the ``h2`` package, ``None``:
        the page is fetched on a new connection offering ``http/1.1`` only, as httpx does).
    """
    connect, connection = await tcp.connect(
        ip, port, timeout=config.tcp_timeout, clock=rec.clock, transaction_id=tid
    )
    connect = replace(connect, depth=depth, classic=is_classic)
    rec.add_connect(connect)
    if connection is None:
        return "tcp", connect.status.failure, None
    keep = False
    try:
        if scheme != "https":
            keep = True
            return "tcp", None, connection
        handshake = await tls.handshake(
            connection,
            address=urls.endpoint(ip, port),
            server_name=host,
            ssl_context=ssl_context,
            timeout=config.tls_timeout,
            clock=rec.clock,
            transaction_id=tid,
        )
        handshake = replace(handshake, depth=depth, classic=is_classic)
        rec.add_handshake(handshake)
        keep = handshake.failure is None and handshake.negotiated_protocol in _FETCHABLE_ALPN
        return "tls", handshake.failure, connection if keep else None
    finally:
        if not keep:
            await connection.close()


_FETCHABLE_ALPN = frozenset({"http/1.1", "", *(["h2"] if bodies.SPEAKS_H2 else [])})
"""What a handshake's server may choose for the page to be fetched over that connection."""


def _fail_last_request(rec: _Recorder, failure: str) -> str:
    """Mark the last HTTP transaction (the hop that ended the chain) as failed."""
    rec.requests[-1] = dataclasses.replace(rec.requests[-1], failure=failure)
    return failure


def _lookup_failure(queries: Iterable[DNSQuery]) -> str | None:
    """Why a hop found no address: the failure of the first non-DoH lookup that failed.

    A lookup is one name asked of one resolver: its A and AAAA queries together (the system
    resolver asks both at once). It failed only when no address came back; then its failure
    is the first of its queries' (A before AAAA). DoH failures say something about the DoH
    server, not the site (ooni/probe#2274). ``None`` when every lookup returned addresses
    (which were then all unusable, e.g. loopback).
    """
    lookups: dict[tuple[str, str, str], list[DNSQuery]] = {}
    for query in queries:
        if query.engine != "doh":
            lookups.setdefault((query.engine, query.resolver_address, query.hostname), []).append(query)
    for group in lookups.values():
        if not any(query.addresses for query in group):
            failure = next((query.failure for query in group if query.failure is not None), None)
            if failure is not None:
                return failure
    return None


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
