"""The DNS step: one lookup of one name, with the system resolver or a resolver we name.

Two functions, one per kind of lookup, both return a :class:`~probe.model.DNSQuery` and never
raise for what the network did:

- :func:`resolve_system` asks ``getaddrinfo`` (A and AAAA together, ``query_type="ANY"``): the
  answer an application on this machine gets, whatever ``/etc/resolv.conf`` or the OS says.
- :func:`resolve` sends one A or AAAA query to an explicit resolver over UDP, TCP or
  DNS-over-HTTPS and interprets the reply itself (rcode, answers, reply ID), so NXDOMAIN,
  SERVFAIL, REFUSED, an empty answer, a garbage or mismatched reply and silence each get their
  own failure string. A truncated UDP reply is asked again over TCP, as resolvers do; a DoH
  reply is read within the size of a DNS message (:mod:`probe.steps.bodies`). It never reads the
  system configuration.

Resolvers are configured as text (``--resolver``, settings) and parsed by
:func:`parse_resolver`; host names are IDNA-encoded by :func:`probe.steps.urls.encode_hostname`
before anything is sent, so the name recorded is the name on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Final
from urllib.parse import urlsplit

import dns.asyncbackend
import dns.asyncquery
import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.rcode
import dns.rdatatype
import httpx

from probe.errors import ConfigError
from probe.model import DNSAnswer, DNSEngine, DNSQuery
from probe.steps import bodies, failures, urls
from probe.steps.clock import Clock

EDNS_PAYLOAD = 1232
"""The UDP payload size we advertise (DNS Flag Day 2020): big enough for any A/AAAA answer."""
DOH_CONTENT_TYPE = "application/dns-message"
UDP_TRUNCATED_TAG = "udp_truncated"
"""Tags a query asked over UDP whose reply had the TC bit set, so that it was asked again,
and answered, over TCP (the record's ``engine``); its time spans both exchanges."""
_MAX_MESSAGE = 65535
_ENGINES: dict[str, DNSEngine] = {"udp": "udp", "tcp": "tcp"}
_QUERY_TYPES = {"A": dns.rdatatype.A, "AAAA": dns.rdatatype.AAAA}


@dataclass(frozen=True, slots=True)
class ResolverSpec:
    """A resolver to query directly: ``udp``/``tcp`` to an IP address, or a DoH URL."""

    engine: DNSEngine
    host: str
    """The IP address for udp/tcp (``""`` for doh)."""
    port: int
    """53 by default for udp/tcp, 0 for doh."""
    url: str = ""
    """The DoH URL (doh only)."""

    @property
    def address(self) -> str:
        """``ip:port`` (IPv6 in brackets) for udp/tcp, the URL for doh, as OONI records it."""
        if self.engine == "doh":
            return self.url
        return urls.endpoint(self.host, self.port)


class _BadDoHReply(dns.exception.DNSException):
    """A DoH server answered something other than a DNS message (classified as misbehaving)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)  # type: ignore[no-untyped-call]  # dnspython's exceptions are untyped


def parse_resolver(text: str) -> ResolverSpec:
    """Parse ``IP``, ``IP:port``, ``[IPv6]:port``, ``udp://…``, ``tcp://…`` or ``https://…``.

    Raises:
        ConfigError: empty, unknown scheme, a host name where an IP address is needed (naming
            a udp/tcp resolver by name would need the system resolver), or a bad port.
    """
    value = text.strip()
    if not value:
        raise _bad(text, "empty")
    scheme, sep, rest = value.partition("://")
    scheme, rest = (scheme.lower(), rest) if sep else ("udp", value)
    if scheme == "https":
        try:
            parts = urlsplit(value)
        except ValueError as exc:  # e.g. an unclosed "[" in the authority
            raise _bad(text, str(exc)) from None
        try:
            parts.port  # noqa: B018 -- the property validates the port
        except ValueError:
            raise _bad(text, "port must be 1-65535") from None
        if not parts.hostname:
            raise _bad(text, "a DoH URL needs a host")
        try:
            httpx.URL(value)  # refuse now what httpx would refuse in the middle of a measurement
        except httpx.InvalidURL as exc:
            raise _bad(text, str(exc)) from None
        return ResolverSpec("doh", "", 0, url=value)
    engine = _ENGINES.get(scheme)
    if engine is None:
        raise _bad(text, f"unsupported scheme {scheme}:// (use udp://, tcp:// or https://)")
    try:
        ip, port = urls.parse_endpoint(rest, default_port=53)
    except urls.EndpointError as exc:
        if exc.reason == urls.NOT_AN_ENDPOINT:
            raise _bad(text, "udp and tcp resolvers need an IP address, not a host name") from None
        raise _bad(text, exc.reason) from None
    return ResolverSpec(engine, ip, port)


def _bad(text: str, why: str) -> ConfigError:
    return ConfigError(f"invalid resolver {text!r}: {why}")


_AddrInfo = list[tuple[int, str]]
"""``(family, address)`` pairs, in ``getaddrinfo``'s order."""
BlockingLookup = Callable[[str, int], _AddrInfo]
"""A blocking ``(host, port) -> [(family, address), …]`` lookup, run in a lookup thread."""
MAX_LOOKUP_THREADS: Final = 16
"""System-resolver lookups running at once in this process: a round's default in flight. A
resolver that hangs holds a thread until the C library gives up (seconds to minutes); later
lookups wait for a free thread within their own deadline instead of starting more."""


def system_lookup(host: str, port: int) -> _AddrInfo:
    """The C library's ``getaddrinfo`` (looked up at call time), one stream socket per address."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, str(sockaddr[0])) for family, *_, sockaddr in infos]


@dataclass(slots=True)
class _Job:
    lookup: BlockingLookup
    host: str
    port: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[_AddrInfo]
    abandoned: bool = False
    """Set (from the loop) when nobody waits any more: a thread that takes it skips it."""


class LookupThreads:
    """A fixed set of daemon threads that run blocking lookups for every event loop.

    Not ``loop.getaddrinfo`` nor a ``ThreadPoolExecutor``: a blocking ``getaddrinfo`` cannot
    be cancelled, and both join their threads (at the end of ``asyncio.run``, at exit), so one
    resolver that hangs would hold the program past every deadline. Not a thread per lookup
    either: hanging lookups would pile threads up. Here at most *size* threads exist; a lookup
    waits in line (FIFO) until one is free, within its caller's deadline; a caller that stops
    waiting leaves its job to be skipped, and a thread that finishes a lookup nobody waits for
    any more just takes the next one.
    """

    def __init__(self, size: int = MAX_LOOKUP_THREADS, *, name: str = "getaddrinfo") -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1: {size}")
        self.size, self._name = size, name
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def run(self, lookup: BlockingLookup, host: str, port: int) -> _AddrInfo:
        """``lookup(host, port)`` in one of the threads; cancel (e.g. a deadline) to stop waiting."""
        loop = asyncio.get_running_loop()
        job = _Job(lookup, host, port, loop, loop.create_future())
        self._start_threads()
        self._jobs.put(job)
        try:
            return await job.future
        finally:
            job.abandoned = True

    def _start_threads(self) -> None:
        with self._lock:
            while len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job.abandoned:
                continue
            try:
                outcome: tuple[_AddrInfo | None, Exception | None] = (job.lookup(job.host, job.port), None)
            except Exception as exc:  # handed over to the waiting coroutine, which decides
                outcome = (None, exc)
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
                job.loop.call_soon_threadsafe(_settle, job.future, *outcome)


def _settle(future: asyncio.Future[_AddrInfo], result: _AddrInfo | None, error: Exception | None) -> None:
    if future.done():  # cancelled at the deadline
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result or [])


SYSTEM_LOOKUPS: Final = LookupThreads()
"""The process's lookup threads: the bound holds across rounds, loops and the helper."""


async def resolve_system(
    hostname: str,
    *,
    timeout: float,
    clock: Clock,
    transaction_id: int = 0,
    tags: tuple[str, ...] = (),
    port: int = 443,
    lookup: BlockingLookup = system_lookup,
    threads: LookupThreads = SYSTEM_LOOKUPS,
) -> DNSQuery:
    """Look *hostname* up with ``getaddrinfo``, within *timeout* seconds.

    The blocking *lookup* runs in one of *threads*; waiting for a free one counts against
    *timeout*, so a lookup that gets no thread in time is a ``generic_timeout_error``.

    Returns:
        The query (engine ``getaddrinfo``): A and AAAA answers without TTLs, or the failure with
        the raw ``EAI_*`` code in ``getaddrinfo_error``.

    Raises:
        TargetError: *hostname* is not a valid host name.
    """
    name = urls.encode_hostname(hostname)
    t0 = clock()
    try:
        async with asyncio.timeout(timeout):
            infos = await threads.run(lookup, name, port)
    except failures.NETWORK_EXCEPTIONS as exc:
        code = (exc.errno or 0) if isinstance(exc, socket.gaierror) else 0
        failure = failures.classify_resolve(exc)
        return DNSQuery(
            "getaddrinfo", "", name, "ANY", (), None, failure, t0, clock(), transaction_id, tags, code
        )
    answers: dict[str, DNSAnswer] = {}
    for family, ip in infos:
        if family == socket.AF_INET:
            answers.setdefault(ip, DNSAnswer("A", ipv4=ip))
        elif family == socket.AF_INET6:
            answers.setdefault(ip, DNSAnswer("AAAA", ipv6=ip))
    no_answer = None if answers else failures.DNS_NO_ANSWER
    return DNSQuery(
        "getaddrinfo",
        "",
        name,
        "ANY",
        tuple(answers.values()),
        None,
        no_answer,
        t0,
        clock(),
        transaction_id,
        tags,
    )


async def resolve(
    hostname: str,
    query_type: str,
    *,
    resolver: ResolverSpec,
    timeout: float,
    clock: Clock,
    transaction_id: int = 0,
    tags: tuple[str, ...] = (),
    ssl_context: ssl.SSLContext | None = None,
) -> DNSQuery:
    """Send one *query_type* (``A`` or ``AAAA``) query for *hostname* to *resolver*.

    DoH verifies the server with *ssl_context* (default: the system store). Note that httpx
    sets the context's ALPN list to ``http/1.1``: pass a context nothing else relies on.

    A UDP reply with the TC bit set is not the answer: the query is sent again over TCP to
    the same address and port, and the record says so (engine ``tcp``, tag
    :data:`UDP_TRUNCATED_TAG`).

    Returns:
        The query with the reply's rcode and its A, AAAA and CNAME answers. ``failure`` is
        set for a non-NOERROR rcode, for NOERROR without a record of the asked type
        (``dns_no_answer``; CNAMEs may still be there), and when no acceptable reply came.

    Raises:
        TargetError: *hostname* is not a valid host name.
        ValueError: *query_type* is neither ``A`` nor ``AAAA``.
    """
    name = urls.encode_hostname(hostname)
    if query_type not in _QUERY_TYPES:
        raise ValueError(f"query type {query_type!r}: expected A or AAAA")
    query = dns.message.make_query(name, _QUERY_TYPES[query_type], use_edns=0, payload=EDNS_PAYLOAD)
    if resolver.engine == "doh":
        query.id = 0  # RFC 8484 §4.1: cache friendly, and HTTPS already ties reply to query
    t0 = clock()

    # The exchange the record describes: the last one, which a truncated UDP reply makes TCP.
    transport, record_tags = resolver, tags

    def record(answers: tuple[DNSAnswer, ...], rcode: str | None, failure: str | None) -> DNSQuery:
        return DNSQuery(
            transport.engine, transport.address, name, query_type, answers, rcode, failure,
            t0, clock(), transaction_id, record_tags,
        )  # fmt: skip

    try:
        async with asyncio.timeout(timeout):
            reply = await _exchange(query, resolver, ssl_context, timeout)
            if _is_truncated(query, reply) and resolver.engine == "udp":
                # Too big for a datagram: ask the same server again over TCP, as stub resolvers
                # do (RFC 7766 §5), within the same deadline.
                transport, record_tags = replace(resolver, engine="tcp"), (*tags, UDP_TRUNCATED_TAG)
                reply = await _exchange(query, transport, None, timeout)
    except failures.NETWORK_EXCEPTIONS as exc:
        return record((), None, failures.classify_resolve(exc))
    if reply.id != query.id:
        return record((), None, failures.DNS_WRONG_QUERY_ID)
    if not query.is_response(reply):  # another question, or not a reply at all
        return record((), None, failures.DNS_SERVER_MISBEHAVING)
    answers = tuple(_answers(reply))
    rcode = dns.rcode.to_text(reply.rcode())
    return record(answers, rcode, _failure(rcode, query_type, answers))


def _is_truncated(query: dns.message.Message, reply: dns.message.Message) -> bool:
    """Whether *reply* answers *query* but with the TC bit set (its answers do not fit)."""
    return bool(reply.flags & dns.flags.TC) and reply.id == query.id and query.is_response(reply)


async def _exchange(
    query: dns.message.Message, resolver: ResolverSpec, ssl_context: ssl.SSLContext | None, timeout: float
) -> dns.message.Message:
    """One query, one reply, parsed but not yet judged (the caller checks ID and rcode)."""
    if resolver.engine == "doh":
        return await _doh(query, resolver.url, ssl_context, timeout)
    # dnspython's backends are untyped: declare what make_socket is documented to return.
    make_socket: Callable[..., Awaitable[Any]] = dns.asyncbackend.get_backend("asyncio").make_socket
    family = dns.inet.af_for_address(resolver.host)
    destination = (resolver.host, resolver.port)
    if resolver.engine == "udp":
        # A connected socket, as OONI's: the kernel drops datagrams from other addresses,
        # and an ICMP port unreachable comes back as connection_refused instead of silence.
        async with await make_socket(family, socket.SOCK_DGRAM, 0, None, destination) as udp:
            await dns.asyncquery.send_udp(udp, query, None)
            try:
                received = await dns.asyncquery.receive_udp(udp, raise_on_truncation=True)
            except dns.message.Truncated as exc:
                # TC set: what parsed of it (the header at least), for the caller to judge.
                truncated: dns.message.Message = exc.message()  # type: ignore[no-untyped-call]  # dnspython leaves it untyped
                return truncated
            reply: dns.message.Message = received[0]
            return reply
    if resolver.engine != "tcp":
        raise ValueError(f"resolver engine {resolver.engine!r}: expected udp, tcp or doh")
    async with await make_socket(family, socket.SOCK_STREAM, 0, None, destination) as tcp:
        await dns.asyncquery.send_tcp(tcp, query)
        return (await dns.asyncquery.receive_tcp(tcp))[0]


async def _doh(
    query: dns.message.Message, url: str, ssl_context: ssl.SSLContext | None, timeout: float
) -> dns.message.Message:
    """RFC 8484 POST; anything but ``200`` with a DNS message of sane size is misbehaving."""
    headers = {
        "content-type": DOH_CONTENT_TYPE,
        "accept": DOH_CONTENT_TYPE,
        "accept-encoding": bodies.ACCEPT_ENCODING,
    }
    verify = ssl_context or ssl.create_default_context()
    request = httpx.Request("POST", url, content=query.to_wire(), headers=headers)
    # No proxy variables or .netrc, no redirect followed: the probe talks to the resolver it was given.
    async with bodies.open_response(request, ssl_context=verify, timeout=timeout) as response:
        if response.status_code != 200:
            raise _BadDoHReply(f"HTTP status {response.status_code}")
        content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if content_type != DOH_CONTENT_TYPE:
            raise _BadDoHReply(f"content-type {content_type!r}")
        body, truncated = await bodies.read_body(response, _MAX_MESSAGE)
        if truncated:  # decoded size: a compression bomb is inflated only this far
            raise _BadDoHReply("reply larger than any DNS message")
    return dns.message.from_wire(body)


def _answers(reply: dns.message.Message) -> list[DNSAnswer]:
    """A, AAAA and CNAME records of the answer section, in order (others are not recorded)."""
    answers: list[DNSAnswer] = []
    for rrset in reply.answer:
        for rdata in rrset:
            if rrset.rdtype == dns.rdatatype.A:
                answers.append(DNSAnswer("A", ipv4=str(rdata.address), ttl=rrset.ttl))
            elif rrset.rdtype == dns.rdatatype.AAAA:
                answers.append(DNSAnswer("AAAA", ipv6=str(rdata.address), ttl=rrset.ttl))
            elif rrset.rdtype == dns.rdatatype.CNAME:
                # Fully qualified, final dot kept, as OONI records a CNAME target.
                answers.append(DNSAnswer("CNAME", hostname=rdata.target.to_text(), ttl=rrset.ttl))
    return answers


_RCODE_FAILURES = {
    "NXDOMAIN": failures.DNS_NXDOMAIN,
    "SERVFAIL": failures.DNS_SERVFAIL,
    "REFUSED": failures.DNS_REFUSED,
}


def _failure(rcode: str, query_type: str, answers: tuple[DNSAnswer, ...]) -> str | None:
    if rcode != "NOERROR":
        return _RCODE_FAILURES.get(rcode, failures.DNS_SERVER_MISBEHAVING)
    if not any(answer.answer_type == query_type for answer in answers):
        return failures.DNS_NO_ANSWER
    return None
