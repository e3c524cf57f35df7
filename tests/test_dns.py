"""The DNS step against a scripted loopback resolver (UDP, TCP, DoH) and the system resolver."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import dns.exception
import dns.flags
import dns.message
import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.errors import ConfigError, TargetError
from probe.model import DNSAnswer, DNSQuery
from probe.steps import dns as probe_dns
from probe.steps.clock import relative_clock
from probe.steps.dns import (
    LookupThreads,
    ResolverSpec,
    parse_resolver,
    resolve,
    resolve_system,
)
from tests.servers.dns_server import Reply, ScriptedDNSServer
from tests.servers.tcp_server import closed_port

SCRIPT = {
    "ok.example": Reply(a=("93.184.216.34",), aaaa=("2606:2800:220:1:248:1893:25c8:1946",)),
    "v4only.example": Reply(a=("192.0.2.7", "192.0.2.8"), ttl=60),
    "bogon.example": Reply(a=("10.0.0.1",)),
    "loopback.example": Reply(a=("127.0.0.1",)),
    "nx.example": Reply(rcode="NXDOMAIN"),
    "servfail.example": Reply(rcode="SERVFAIL"),
    "refused.example": Reply(rcode="REFUSED"),
    "notimp.example": Reply(rcode="NOTIMP"),
    "nodata.example": Reply(),
    "cname.example": Reply(cname=("alias1.example", "alias2.example"), a=("198.51.100.7",)),
    "silent.example": Reply(action="silent"),
    "garbage.example": Reply(action="garbage"),
    "wrongid.example": Reply(action="wrong_id", a=("192.0.2.66",)),
    "xn--d1acpjx3f.xn--p1ai": Reply(a=("203.0.113.5",)),
    "big.example": Reply(a=("192.0.2.21", "192.0.2.22"), action="truncated"),
    "cut.example": Reply(a=("192.0.2.31", "192.0.2.32"), action="truncated_cut"),
}
SHORT = 0.5
"""The timeout where silence is expected: every other case answers within milliseconds."""


@pytest.fixture(scope="module")
def server(ca: trustme.CA) -> Iterator[ScriptedDNSServer]:
    with ScriptedDNSServer(SCRIPT, cert=ca.issue_cert("127.0.0.1")) as running:
        yield running


def run_resolve(
    name: str, query_type: str, resolver: ResolverSpec, timeout: float = 2.0, **kwargs: Any
) -> DNSQuery:
    return asyncio.run(
        resolve(name, query_type, resolver=resolver, timeout=timeout, clock=relative_clock(), **kwargs)
    )


def spec(server: ScriptedDNSServer, engine: str, path: str = "/dns-query") -> ResolverSpec:
    if engine == "doh":
        return ResolverSpec("doh", "", 0, url=server.doh_url(path))
    return ResolverSpec("udp" if engine == "udp" else "tcp", server.host, server.port)


def a(ip: str, ttl: int = 300) -> DNSAnswer:
    return DNSAnswer("A", ipv4=ip, ttl=ttl)


def aaaa(ip: str, ttl: int = 300) -> DNSAnswer:
    return DNSAnswer("AAAA", ipv6=ip, ttl=ttl)


def cname(target: str) -> DNSAnswer:
    return DNSAnswer("CNAME", hostname=target, ttl=300)


CHAIN = (cname("alias1.example."), cname("alias2.example."))

# (name, query type) -> (failure, rcode, answers): the same on every engine.
CASES: list[tuple[str, str, str | None, str | None, tuple[DNSAnswer, ...]]] = [
    ("ok.example", "A", None, "NOERROR", (a("93.184.216.34"),)),
    ("ok.example", "AAAA", None, "NOERROR", (aaaa("2606:2800:220:1:248:1893:25c8:1946"),)),
    ("v4only.example", "A", None, "NOERROR", (a("192.0.2.7", 60), a("192.0.2.8", 60))),
    ("v4only.example", "AAAA", "dns_no_answer", "NOERROR", ()),
    ("bogon.example", "A", None, "NOERROR", (a("10.0.0.1"),)),
    ("loopback.example", "A", None, "NOERROR", (a("127.0.0.1"),)),
    ("nx.example", "A", "dns_nxdomain_error", "NXDOMAIN", ()),
    ("not-in-the-script.example", "AAAA", "dns_nxdomain_error", "NXDOMAIN", ()),
    ("servfail.example", "A", "dns_servfail_error", "SERVFAIL", ()),
    ("refused.example", "A", "dns_refused_error", "REFUSED", ()),
    ("notimp.example", "A", "dns_server_misbehaving", "NOTIMP", ()),
    ("nodata.example", "A", "dns_no_answer", "NOERROR", ()),
    ("cname.example", "A", None, "NOERROR", (*CHAIN, a("198.51.100.7"))),
    ("cname.example", "AAAA", "dns_no_answer", "NOERROR", CHAIN),
    ("garbage.example", "A", "dns_server_misbehaving", None, ()),
    # OONI's string: the first reply is judged, not skipped (a stub resolver would keep waiting).
    ("wrongid.example", "A", "dns_reply_with_wrong_query_id", None, ()),
    ("silent.example", "A", "generic_timeout_error", None, ()),
]


@pytest.mark.parametrize("engine", ["udp", "tcp", "doh"])
@pytest.mark.parametrize(("name", "query_type", "failure", "rcode", "answers"), CASES)
def test_scripted_replies(
    server: ScriptedDNSServer,
    client_context: ssl.SSLContext,
    engine: str,
    name: str,
    query_type: str,
    failure: str | None,
    rcode: str | None,
    answers: tuple[DNSAnswer, ...],
) -> None:
    resolver = spec(server, engine)
    timeout = SHORT if name == "silent.example" else 2.0
    started = time.monotonic()
    query = run_resolve(
        name, query_type, resolver, timeout, transaction_id=3, tags=("depth=0",), ssl_context=client_context
    )
    assert (query.failure, query.rcode, query.answers) == (failure, rcode, answers)
    assert query.engine == engine
    assert query.resolver_address == resolver.address
    assert (query.hostname, query.query_type) == (name, query_type)
    assert (query.transaction_id, query.tags, query.getaddrinfo_error) == (3, ("depth=0",), 0)
    assert 0 <= query.t0 <= query.t <= timeout + 0.2
    assert time.monotonic() - started < timeout + 1.0


def test_query_as_sent(server: ScriptedDNSServer, client_context: ssl.SSLContext) -> None:
    """The name on the wire is IDNA-encoded and lower case; DoH queries carry ID 0 (RFC 8484)."""
    before = len(server.queries)
    udp = run_resolve("ЯНДЕКС.рф.", "A", spec(server, "udp"))
    doh = run_resolve("OK.Example.", "AAAA", spec(server, "doh"), ssl_context=client_context)
    assert (udp.hostname, udp.failure, udp.answers) == ("xn--d1acpjx3f.xn--p1ai", None, (a("203.0.113.5"),))
    assert (doh.hostname, doh.failure) == ("ok.example", None)
    sent = server.queries[before:]
    assert [(transport, str(q.question[0].name)) for transport, q in sent] == [
        ("udp", "xn--d1acpjx3f.xn--p1ai."),
        ("doh", "ok.example."),
    ]
    assert sent[1][1].id == 0
    assert all(q.edns == 0 and q.payload == probe_dns.EDNS_PAYLOAD for _, q in sent)


@pytest.mark.parametrize(
    ("path", "failure"),
    [
        ("/status-500", "dns_server_misbehaving"),
        ("/wrong-type", "dns_server_misbehaving"),
        ("/nowhere", "dns_server_misbehaving"),
    ],
)
def test_doh_http_failures(
    server: ScriptedDNSServer, client_context: ssl.SSLContext, path: str, failure: str
) -> None:
    query = run_resolve("ok.example", "A", spec(server, "doh", path), ssl_context=client_context)
    assert (query.failure, query.rcode, query.answers) == (failure, None, ())


def test_doh_untrusted_certificate(server: ScriptedDNSServer) -> None:
    """Without the test CA, the default context (system store) rejects the server."""
    query = run_resolve("ok.example", "A", spec(server, "doh"))
    assert (query.failure, query.rcode, query.answers) == ("ssl_unknown_authority", None, ())


@pytest.mark.parametrize("engine", ["udp", "tcp"])
def test_nothing_listens(engine: str) -> None:
    """A connected UDP socket hears the ICMP port unreachable: refused, as on TCP, not a timeout."""
    resolver = ResolverSpec("udp" if engine == "udp" else "tcp", "127.0.0.1", closed_port())
    query = run_resolve("ok.example", "A", resolver)
    assert (query.failure, query.rcode, query.answers) == ("connection_refused", None, ())


@pytest.mark.parametrize(
    ("name", "answers"),
    [
        ("big.example", (a("192.0.2.21"), a("192.0.2.22"))),  # TC set, answer section left out
        ("cut.example", (a("192.0.2.31"), a("192.0.2.32"))),  # TC set, cut mid-record
    ],
)
def test_truncated_udp_reply_is_retried_over_tcp(
    server: ScriptedDNSServer, name: str, answers: tuple[DNSAnswer, ...]
) -> None:
    """As a stub resolver does (RFC 7766): same server, same port, same query, over TCP.

    The record says what happened: the answer came over TCP (``engine``), after a truncated
    UDP reply (the ``udp_truncated`` tag), and its time spans both exchanges.
    """
    before = len(server.queries)
    query = run_resolve(name, "A", spec(server, "udp"), transaction_id=3, tags=("depth=0",))
    sent = server.queries[before:]
    assert [transport for transport, _ in sent] == ["udp", "tcp"]
    assert sent[0][1].id == sent[1][1].id
    assert (query.failure, query.rcode, query.answers) == (None, "NOERROR", answers)
    assert (query.engine, query.resolver_address) == ("tcp", server.address)
    assert (query.transaction_id, query.tags) == (3, ("depth=0", "udp_truncated"))


@contextlib.contextmanager
def truncating_udp_only_resolver() -> Iterator[int]:
    """A resolver that answers every UDP query with TC set and has no TCP listener."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            reply = dns.message.make_response(dns.message.from_wire(wire))
            reply.flags |= dns.flags.TC
            sock.sendto(reply.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def test_truncated_udp_reply_then_no_tcp() -> None:
    """The retry's failure is the lookup's, recorded on the transport it happened on."""
    with truncating_udp_only_resolver() as port:
        query = run_resolve("ok.example", "A", ResolverSpec("udp", "127.0.0.1", port), tags=("depth=0",))
    assert (query.failure, query.rcode, query.answers) == ("connection_refused", None, ())
    assert (query.engine, query.resolver_address) == ("tcp", f"127.0.0.1:{port}")
    assert query.tags == ("depth=0", "udp_truncated")


@pytest.mark.parametrize("engine", ["udp", "tcp"])
def test_ipv6_resolver(engine: str) -> None:
    with ScriptedDNSServer(SCRIPT, host="::1") as v6:
        resolver = parse_resolver(f"{engine}://{v6.address}")
        query = run_resolve("ok.example", "AAAA", resolver)
    assert resolver.address == f"[::1]:{v6.port}"
    assert (query.failure, query.resolver_address) == (None, f"[::1]:{v6.port}")
    assert query.addresses == ("2606:2800:220:1:248:1893:25c8:1946",)


def test_resolve_rejects_bad_input(server: ScriptedDNSServer) -> None:
    with pytest.raises(TargetError, match=r"^invalid host name 'a\.\.b': empty label$"):
        run_resolve("a..b", "A", spec(server, "udp"))
    with pytest.raises(ValueError, match=r"^query type 'MX': expected A or AAAA$"):
        run_resolve("ok.example", "MX", spec(server, "udp"))


# --- the system resolver ------------------------------------------------------------------------


def run_system(name: str, timeout: float = 5.0) -> DNSQuery:
    return asyncio.run(
        resolve_system(name, timeout=timeout, clock=relative_clock(), transaction_id=1, tags=("classic",))
    )


def test_system_localhost() -> None:
    query = run_system("LocalHost")
    assert (query.engine, query.resolver_address, query.hostname, query.query_type) == (
        "getaddrinfo",
        "",
        "localhost",
        "ANY",
    )
    assert (query.failure, query.rcode, query.getaddrinfo_error) == (None, None, 0)
    assert {"127.0.0.1", "::1"} & set(query.addresses)
    assert all(answer.ttl is None for answer in query.answers)
    assert len(set(query.addresses)) == len(query.addresses)  # one per address, not per socket type
    assert (query.transaction_id, query.tags) == (1, ("classic",))


@pytest.mark.parametrize(
    ("literal", "answers"),
    [("127.0.0.1", (DNSAnswer("A", ipv4="127.0.0.1"),)), ("::1", (DNSAnswer("AAAA", ipv6="::1"),))],
)
def test_system_ip_literal(literal: str, answers: tuple[DNSAnswer, ...]) -> None:
    query = run_system(literal)
    assert (query.failure, query.answers, query.hostname) == (None, answers, literal)


def test_system_name_that_cannot_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name getaddrinfo cannot resolve: a recorded failure with the raw ``EAI_*`` code.

    No test may ask the nameserver of /etc/resolv.conf (it is off loopback), so the real
    getaddrinfo runs with ``AI_NUMERICHOST``: the C library refuses the name itself, with the
    EAI_NONAME it gives for NXDOMAIN, and no packet leaves the machine.
    """
    real = socket.getaddrinfo

    def numeric_only(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real(host, port, *args, **{**kwargs, "flags": socket.AI_NUMERICHOST})

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
    query = run_system("nonexistent.invalid")
    assert (query.failure, query.getaddrinfo_error) == ("dns_nxdomain_error", socket.EAI_NONAME)
    assert (query.answers, query.rcode, query.hostname) == ((), None, "nonexistent.invalid")


@pytest.mark.parametrize(
    ("code", "failure"),
    [
        (socket.EAI_NODATA, "dns_no_answer"),
        (socket.EAI_AGAIN, "dns_temporary_failure"),
        (socket.EAI_FAIL, "dns_non_recoverable_failure"),
    ],
)
def test_system_lookup_failures(monkeypatch: pytest.MonkeyPatch, code: int, failure: str) -> None:
    """What glibc raises for an empty answer, SERVFAIL/no nameserver, and a hard failure.

    Provoking them for real needs the system's nameserver (off loopback): getaddrinfo raises
    the exception object the C library would, and what is tested is how the step records it.
    """

    def failing(host: str, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(code, f"getaddrinfo failed for {host}")

    monkeypatch.setattr(socket, "getaddrinfo", failing)
    query = run_system("example.com")
    assert (query.failure, query.getaddrinfo_error, query.answers) == (failure, code, ())


def test_system_deadline_beats_a_hung_getaddrinfo() -> None:
    """getaddrinfo cannot be cancelled: the lookup must still end, and asyncio.run return, on time.

    No loopback server can make the C library hang without a namespace of our own, so the
    blocking lookup is injected (the step's edge): one that blocks. What is tested is our
    thread handling, not what a resolver does.
    """
    release = threading.Event()

    def hung(host: str, port: int) -> list[tuple[int, str]]:
        release.wait(10)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    threads = LookupThreads(1, name="test-hung")
    started = time.monotonic()
    query = asyncio.run(  # asyncio.run included: it must not wait for the thread
        resolve_system("hung.example", timeout=0.3, clock=relative_clock(), lookup=hung, threads=threads)
    )
    elapsed = time.monotonic() - started
    release.set()
    assert elapsed < 1.5
    assert (query.failure, query.getaddrinfo_error, query.answers) == ("generic_timeout_error", 0, ())


def test_hanging_lookups_never_take_more_threads_than_the_bound() -> None:
    """Many lookups at once while the resolver hangs: the threads stay at the bound, every
    lookup (running or waiting for a thread) is a timeout within its own deadline, the loop
    keeps turning, and once the resolver answers again the same threads serve new lookups."""
    release = threading.Event()
    bound, lookups, timeout = 4, 40, 0.4

    def lookup(host: str, port: int) -> list[tuple[int, str]]:
        if host.startswith("hung"):
            release.wait(10)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return [(socket.AF_INET, "192.0.2.1")]

    threads = LookupThreads(bound, name="test-bound")

    def ours() -> int:
        return sum(thread.name.startswith("test-bound-") for thread in threading.enumerate())

    async def one(name: str) -> tuple[DNSQuery, float]:
        started = time.monotonic()
        query = await resolve_system(
            name, timeout=timeout, clock=relative_clock(), lookup=lookup, threads=threads
        )
        return query, time.monotonic() - started

    async def scenario() -> tuple[list[tuple[DNSQuery, float]], int, int, DNSQuery]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        beat = asyncio.create_task(ticker())
        results = await asyncio.gather(*(one(f"hung{i}.example") for i in range(lookups)))
        during = ours()
        release.set()
        await asyncio.sleep(0.2)  # the hung threads come back, find nobody waiting
        after = await resolve_system(
            "ok.example", timeout=timeout, clock=relative_clock(), lookup=lookup, threads=threads
        )
        beat.cancel()
        return results, during, ticks, after

    try:
        results, during, ticks, after = asyncio.run(scenario())
    finally:
        release.set()
    assert during == bound
    assert [query.failure for query, _ in results] == ["generic_timeout_error"] * lookups
    assert max(elapsed for _, elapsed in results) < timeout + 0.3
    assert ticks >= 20  # the loop was never blocked (0.4 s of 10 ms ticks)
    assert (after.failure, after.addresses) == (None, ("192.0.2.1",))
    assert ours() == bound


def test_lookup_threads_need_a_bound() -> None:
    with pytest.raises(ValueError, match=r"^size must be at least 1: 0$"):
        LookupThreads(0)


def test_system_rejects_bad_names() -> None:
    with pytest.raises(
        TargetError, match=r"^invalid host name 'exa mple\.com': bad character in 'exa mple'$"
    ):
        run_system("exa mple.com")


# --- parsing and encoding -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "address"),
    [
        ("1.1.1.1", ResolverSpec("udp", "1.1.1.1", 53), "1.1.1.1:53"),
        (" 8.8.8.8 ", ResolverSpec("udp", "8.8.8.8", 53), "8.8.8.8:53"),
        ("1.1.1.1:5353", ResolverSpec("udp", "1.1.1.1", 5353), "1.1.1.1:5353"),
        ("[2606:4700::1111]:53", ResolverSpec("udp", "2606:4700::1111", 53), "[2606:4700::1111]:53"),
        ("::1", ResolverSpec("udp", "::1", 53), "[::1]:53"),
        ("[::1]", ResolverSpec("udp", "::1", 53), "[::1]:53"),
        ("2001:DB8:0:0::1", ResolverSpec("udp", "2001:db8::1", 53), "[2001:db8::1]:53"),
        ("udp://1.1.1.1:53", ResolverSpec("udp", "1.1.1.1", 53), "1.1.1.1:53"),
        ("tcp://9.9.9.9", ResolverSpec("tcp", "9.9.9.9", 53), "9.9.9.9:53"),
        ("TCP://[2001:db8::1]:853", ResolverSpec("tcp", "2001:db8::1", 853), "[2001:db8::1]:853"),
        (
            "https://dns.example/dns-query",
            ResolverSpec("doh", "", 0, url="https://dns.example/dns-query"),
            "https://dns.example/dns-query",
        ),
        (
            "https://[2001:db8::1]:8443/q",
            ResolverSpec("doh", "", 0, url="https://[2001:db8::1]:8443/q"),
            "https://[2001:db8::1]:8443/q",
        ),
    ],
)
def test_parse_resolver(text: str, expected: ResolverSpec, address: str) -> None:
    assert parse_resolver(text) == expected
    assert expected.address == address


HOST_NAME = "udp and tcp resolvers need an IP address, not a host name"
PORT = "port must be 1-65535"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("dns.google", HOST_NAME),
        ("udp://dns.google:53", HOST_NAME),
        ("tcp://", HOST_NAME),
        ("1.1.1", HOST_NAME),
        ("1.1.1.1:0", PORT),
        ("1.1.1.1:65536", PORT),
        ("1.1.1.1:", PORT),
        ("1.1.1.1:dns", PORT),
        ("1.1.1.1:\uff15\uff13", PORT),  # full-width digits: str.isdigit() says yes
        ("[::1]:99999", PORT),
        ("[::1", "expected [IPv6]:port"),
        ("[::1]53", "expected [IPv6]:port"),
        ("ftp://1.1.1.1", "unsupported scheme ftp:// (use udp://, tcp:// or https://)"),
        ("http://dns.example/dns-query", "unsupported scheme http:// (use udp://, tcp:// or https://)"),
        ("https://", "a DoH URL needs a host"),
        ("https:///dns-query", "a DoH URL needs a host"),
        ("https://dns.example:99999/dns-query", PORT),
        ("https://[::1/dns-query", "Invalid IPv6 URL"),
        ("https://dns.example/\x01", "Invalid non-printable ASCII character in URL, '\\x01' at position 20."),
    ],
)
def test_parse_resolver_rejects(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_resolver(text)
    assert str(caught.value) == f"invalid resolver {text!r}: {reason}"


@settings(max_examples=300, database=None, deadline=None)
@given(st.binary(max_size=64).map(lambda tail: b"\x12\x34\x81\x80" + tail))
def test_any_reply_parses_or_raises_a_dns_exception(wire: bytes) -> None:
    """Why catching NETWORK_EXCEPTIONS suffices: dnspython turns every parse error into a DNSException."""
    with contextlib.suppress(dns.exception.DNSException):
        dns.message.from_wire(wire)
