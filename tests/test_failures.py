"""The failure vocabulary: no foreign exception leaks to ``unknown_failure``, and real errors map right.

Three layers, as httpx tests its exception mapping:

1. an exhaustive walk over every exception class of dnspython, httpx, httpcore and ssl, every
   errno and every ``EAI_*`` code the tables name (``test_httpcore_all_exceptions_mapped``);
2. exact mappings for the cases the methodology depends on, as a table;
3. the same failures provoked for real on loopback (refused ports, RSTs, trustme certificates,
   a scripted DNS server, httpx against misbehaving servers), so the classifier is checked
   against what the stack raises, not against what we believe it raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import importlib
import inspect
import ipaddress
import os
import pkgutil
import re
import socket
import ssl
import warnings
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any, get_args

import dns
import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.resolver
import dns.xfr
import httpcore
import httpx
import pytest
import trustme

from probe.steps import failures
from probe.steps.failures import classify, is_unknown, scrub
from tests.servers.dns_server import Reply, ScriptedDNSServer
from tests.servers.tcp_server import closed_port, connection_server, rst_close

OPERATIONS: tuple[failures.Operation, ...] = get_args(failures.Operation)
LIBRARIES = ("dns", "httpx", "httpcore", "ssl")

# --- 1. the exhaustive walk ------------------------------------------------------------------------

# dnspython modules that need an optional dependency we do not install (DoQ, trio).
OPTIONAL_DEPENDENCIES = frozenset({"aioquic", "trio"})
# dnspython's DNSSEC modules (dns.dnssec imports dns.dnssecalgs.dsa) touch cryptography's
# deprecated DSA on import, a warning since cryptography 51. The probe never imports them;
# the walk still does, to see every exception class they define, with that one warning
# silenced for the import alone.
DEPRECATED_ON_IMPORT = "DSA is deprecated"


def _library_modules() -> tuple[list[ModuleType], dict[str, str]]:
    """Every dns.* module (skipping those that need an absent optional dependency), httpx, httpcore, ssl."""
    modules: list[ModuleType] = [dns, httpx, httpcore, ssl]
    skipped: dict[str, str] = {}
    for info in pkgutil.walk_packages(dns.__path__, "dns."):
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", DEPRECATED_ON_IMPORT, category=UserWarning)
                modules.append(importlib.import_module(info.name))
        except ModuleNotFoundError as exc:
            skipped[info.name] = str(exc.name)
    return modules, skipped


def _library_exception_classes() -> set[type[BaseException]]:
    """Exception classes the libraries define (re-exports of foreign ones, like ``ssl.socket_error``
    which is ``OSError``, are covered by the errno walk instead)."""
    modules, _ = _library_modules()
    return {
        obj
        for module in modules
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__.split(".")[0] in LIBRARIES
    }


def _dns_name(text: str = "example.com") -> dns.name.Name:
    return dns.name.from_text(text)


_QUERY = dns.message.make_query("example.com", "A")

# Constructors for classes whose bare ``cls()`` is impossible or says too little.
_CONSTRUCTORS: dict[type[BaseException], Callable[[], BaseException]] = {
    dns.xfr.TransferError: lambda: dns.xfr.TransferError(dns.rcode.REFUSED),
    dns.resolver.NXDOMAIN: lambda: dns.resolver.NXDOMAIN(qnames=[_dns_name()], responses={}),
    dns.resolver.NoAnswer: lambda: dns.resolver.NoAnswer(response=dns.message.make_response(_QUERY)),
    dns.exception.Timeout: lambda: dns.exception.Timeout(timeout=1.5),
    dns.resolver.LifetimeTimeout: lambda: dns.resolver.LifetimeTimeout(timeout=1.5, errors=[]),
}


def _cert_error(verify_code: int, message: str) -> ssl.SSLCertVerificationError:
    """What OpenSSL raises: the C code sets ``verify_code``/``verify_message`` after construction."""
    exc = ssl.SSLCertVerificationError(
        1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}"
    )
    exc.verify_code = verify_code
    exc.verify_message = message
    return exc


def _instantiate(cls: type[BaseException]) -> BaseException:
    if cls in _CONSTRUCTORS:
        return _CONSTRUCTORS[cls]()
    if issubclass(cls, ssl.SSLCertVerificationError):
        return _cert_error(10, "certificate has expired")
    if issubclass(cls, ssl.SSLError):
        return cls(1, f"[SSL] {cls.__name__}")
    if issubclass(cls, dns.exception.DNSException):
        return cls()
    return cls(f"{cls.__name__} raised")  # httpx and httpcore exceptions take a message


def _walk() -> tuple[list[BaseException], list[str]]:
    """Instances of every network exception, and the classes that could not be built."""
    instances: list[BaseException] = []
    unbuildable: list[str] = []
    for cls in sorted(_library_exception_classes(), key=lambda c: (c.__module__, c.__qualname__)):
        if not issubclass(cls, failures.NETWORK_EXCEPTIONS):
            continue  # a programmer error: no step catches it (see test_programmer_errors_propagate)
        try:
            instances.append(_instantiate(cls))
        except Exception as exc:
            unbuildable.append(f"{cls.__module__}.{cls.__qualname__}: {exc!r}")
    # OSError(errno, strerror) builds the matching subclass (ConnectionRefusedError, …), as the OS does.
    instances += [OSError(code, os.strerror(code)) for code in failures.ERRNO_FAILURES]
    instances += [_gai_error(code) for code in failures.GAI_FAILURES]
    # What asyncio and our own deadlines raise with no errno at all.
    instances += [
        TimeoutError(),
        ConnectionResetError(),
        ConnectionRefusedError(),
        ConnectionAbortedError(),
        BrokenPipeError(),
        EOFError(),
        asyncio.IncompleteReadError(b"", 100),
    ]
    return instances, unbuildable


def _name(exc: BaseException) -> str:
    cls = type(exc)
    suffix = f"(errno={exc.errno})" if isinstance(exc, OSError) and exc.errno is not None else ""
    return f"{cls.__module__}.{cls.__qualname__}{suffix}"


def test_walk_skips_only_optional_dependencies() -> None:
    _, skipped = _library_modules()
    assert {dep.split(".")[0] for dep in skipped.values()} <= OPTIONAL_DEPENDENCIES, skipped


def test_walk_is_not_vacuous() -> None:
    caught = {c for c in _library_exception_classes() if issubclass(c, failures.NETWORK_EXCEPTIONS)}
    assert len(caught) >= 40
    for expected in (
        dns.resolver.NXDOMAIN,
        dns.resolver.NoNameservers,
        dns.message.ShortHeader,
        httpx.ReadError,
        httpx.TooManyRedirects,
        httpcore.ReadError,
        ssl.SSLCertVerificationError,
        ssl.SSLEOFError,
    ):
        assert expected in caught


@pytest.mark.parametrize(
    "cls", [httpx.InvalidURL, httpx.StreamConsumed, httpx.HTTPStatusError, httpx.CookieConflict]
)
def test_programmer_errors_propagate(cls: type[BaseException]) -> None:
    # A step must not record a bug in our own code as if the network had done it.
    assert cls in _library_exception_classes()
    assert not issubclass(cls, failures.NETWORK_EXCEPTIONS)


def test_every_network_exception_is_classified() -> None:
    # Under every operation, not only the likely one: a wrapper (httpx around an ssl error, the
    # resolver around an OSError) carries exceptions into steps that did not raise them.
    instances, unbuildable = _walk()
    assert not unbuildable, "add a constructor to _CONSTRUCTORS for:\n" + "\n".join(unbuildable)
    leaks: list[str] = []
    for exc in instances:
        for operation in OPERATIONS:
            try:
                failure = classify(exc, operation)
            except Exception as crash:
                leaks.append(f"{_name(exc)} under {operation}: classify raised {crash!r}")
                continue
            if is_unknown(failure):
                leaks.append(f"{_name(exc)} under {operation}: {failure}")
    assert not leaks, f"{len(leaks)} exceptions fall through to unknown_failure:\n" + "\n".join(leaks)


# --- 2. exact mappings ------------------------------------------------------------------------------


def _os_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _gai_error(code: int) -> socket.gaierror:
    # Python has no gai_strerror(); the message only has to be distinct.
    names = [name for name in dir(socket) if name.startswith("EAI_") and getattr(socket, name) == code]
    return socket.gaierror(code, f"getaddrinfo failed: {'/'.join(names)}")


def _httpx_read_error_from_reset() -> httpx.ReadError:
    """The chain httpx really builds (httpcore's and httpx's ``map_exceptions`` raise ... from ...)."""
    try:
        try:
            try:
                raise _os_error(errno.ECONNRESET)
            except ConnectionResetError as exc:
                raise httpcore.ReadError(str(exc)) from exc
        except httpcore.ReadError as exc:
            raise httpx.ReadError(str(exc)) from exc
    except httpx.ReadError as exc:
        return exc


def _no_nameservers(*outcomes: str | BaseException) -> dns.resolver.NoNameservers:
    errors = [("Do53:192.0.2.53@53", False, 53, outcome, None) for outcome in outcomes]
    return dns.resolver.NoNameservers(request=_QUERY, errors=errors)


def _bare_cert_error() -> ssl.SSLCertVerificationError:
    # ssl.match_hostname (3.11) raises CertificateError, an alias of this class, with no verify_code.
    return ssl.SSLCertVerificationError("hostname 'a.test' doesn't match 'b.test'")


EXACT = [
    pytest.param(_os_error(errno.ECONNREFUSED), "connect", "connection_refused", id="ECONNREFUSED"),
    pytest.param(_os_error(errno.ECONNRESET), "read", "connection_reset", id="ECONNRESET"),
    pytest.param(_os_error(errno.ETIMEDOUT), "connect", "timed_out", id="ETIMEDOUT"),
    pytest.param(_os_error(errno.EHOSTUNREACH), "connect", "host_unreachable", id="EHOSTUNREACH"),
    pytest.param(_os_error(errno.ENETUNREACH), "connect", "network_unreachable", id="ENETUNREACH"),
    # asyncio.TimeoutError is the builtin since 3.11; asyncio.timeout raises it with no errno.
    pytest.param(TimeoutError(), "connect", "generic_timeout_error", id="asyncio-timeout"),
    pytest.param(_CONSTRUCTORS[dns.resolver.NXDOMAIN](), "resolve", "dns_nxdomain_error", id="NXDOMAIN"),
    pytest.param(_CONSTRUCTORS[dns.resolver.NoAnswer](), "resolve", "dns_no_answer", id="NoAnswer"),
    pytest.param(dns.exception.Timeout(timeout=2.0), "resolve", "generic_timeout_error", id="dns-timeout"),
    pytest.param(_no_nameservers("REFUSED"), "resolve", "dns_refused_error", id="all-REFUSED"),
    pytest.param(_no_nameservers("SERVFAIL"), "resolve", "dns_servfail_error", id="all-SERVFAIL"),
    pytest.param(_no_nameservers("NOTIMP"), "resolve", "dns_server_misbehaving", id="all-NOTIMP"),
    pytest.param(
        _no_nameservers(_os_error(errno.ECONNREFUSED)), "resolve", "connection_refused", id="all-down"
    ),
    pytest.param(
        _no_nameservers(dns.exception.Timeout(timeout=1.0), "SERVFAIL"),
        "resolve",
        "dns_servfail_error",
        id="an-answer-outranks-a-timeout",
    ),
    pytest.param(_gai_error(socket.EAI_NONAME), "resolve", "dns_nxdomain_error", id="EAI_NONAME"),
    pytest.param(_gai_error(socket.EAI_NODATA), "resolve", "dns_no_answer", id="EAI_NODATA"),
    pytest.param(_gai_error(socket.EAI_AGAIN), "resolve", "dns_temporary_failure", id="EAI_AGAIN"),
    pytest.param(
        _cert_error(10, "certificate has expired"), "tls_handshake", "ssl_invalid_certificate", id="x509-10"
    ),
    pytest.param(_cert_error(62, "Hostname mismatch"), "tls_handshake", "ssl_invalid_hostname", id="x509-62"),
    pytest.param(_cert_error(18, "self-signed"), "tls_handshake", "ssl_unknown_authority", id="x509-18"),
    pytest.param(
        _cert_error(19, "self-signed in chain"), "tls_handshake", "ssl_unknown_authority", id="x509-19"
    ),
    pytest.param(_cert_error(20, "no local issuer"), "tls_handshake", "ssl_unknown_authority", id="x509-20"),
    pytest.param(_bare_cert_error(), "tls_handshake", "ssl_invalid_certificate", id="cert-error-no-code"),
    pytest.param(
        ssl.SSLError(1, "[SSL] raised in Python"), "tls_handshake", "ssl_failed_handshake", id="no-reason"
    ),
    pytest.param(ssl.SSLEOFError(8, "EOF occurred"), "tls_handshake", "eof_error", id="SSLEOFError"),
    pytest.param(asyncio.IncompleteReadError(b"ab", 10), "read", "eof_error", id="IncompleteReadError"),
    pytest.param(
        _httpx_read_error_from_reset(), "http_round_trip", "connection_reset", id="httpx-chain-reset"
    ),
    pytest.param(httpx.ReadTimeout("timed out"), "read", "generic_timeout_error", id="httpx-ReadTimeout"),
    pytest.param(
        httpx.TooManyRedirects("Exceeded maximum allowed redirects."),
        "http_round_trip",
        "unknown_failure: stopped after too many redirects",
        id="TooManyRedirects",
    ),
]


# OONI's errno table (probe-cli netxlite errno.go), written out again so that a changed string shows.
OONI_ERRNO = {
    errno.ECONNREFUSED: "connection_refused",
    errno.ECONNRESET: "connection_reset",
    errno.ECONNABORTED: "connection_aborted",
    errno.EHOSTUNREACH: "host_unreachable",
    errno.ENETUNREACH: "network_unreachable",
    errno.ENETDOWN: "network_down",
    errno.ENETRESET: "network_reset",
    errno.ETIMEDOUT: "timed_out",
    errno.EAFNOSUPPORT: "address_family_not_supported",
    errno.EADDRINUSE: "address_in_use",
    errno.EADDRNOTAVAIL: "address_not_available",
    errno.EISCONN: "already_connected",
    errno.EFAULT: "bad_address",
    errno.EBADF: "bad_file_descriptor",
    errno.EALREADY: "connection_already_in_progress",
    errno.EDESTADDRREQ: "destination_address_required",
    errno.EINTR: "interrupted",
    errno.EINVAL: "invalid_argument",
    errno.EMSGSIZE: "message_size",
    errno.ENOBUFS: "no_buffer_space",
    errno.ENOPROTOOPT: "no_protocol_option",
    errno.ENOTSOCK: "not_a_socket",
    errno.ENOTCONN: "not_connected",
    errno.EWOULDBLOCK: "operation_would_block",
    errno.EACCES: "permission_denied",
    errno.EPERM: "permission_denied",
    errno.EPROTONOSUPPORT: "protocol_not_supported",
    errno.EPROTOTYPE: "wrong_protocol_type",
    errno.EPIPE: "broken_pipe",  # reachprobe's own (failures.BROKEN_PIPE)
}


@pytest.mark.parametrize("code", sorted(OONI_ERRNO), ids=lambda code: errno.errorcode[code])
def test_errno_table(code: int) -> None:
    assert failures.ERRNO_FAILURES[code] == OONI_ERRNO[code]
    assert failures.classify_read(_os_error(code)) == OONI_ERRNO[code]


def test_errno_table_has_nothing_else() -> None:
    assert set(failures.ERRNO_FAILURES) == set(OONI_ERRNO)


@pytest.mark.parametrize("name", sorted(n for n in dir(socket) if n.startswith("EAI_")))
def test_every_getaddrinfo_code_is_a_dns_failure(name: str) -> None:
    # Beyond the table: a lookup that fails with any EAI_* code is still a DNS failure.
    assert failures.classify_resolve(_gai_error(getattr(socket, name))).startswith("dns_")


@pytest.mark.parametrize(("exc", "operation", "expected"), EXACT)
def test_exact_mapping(exc: BaseException, operation: failures.Operation, expected: str) -> None:
    assert classify(exc, operation) == expected


def test_httpx_chain_is_real() -> None:
    exc = _httpx_read_error_from_reset()
    assert isinstance(exc.__cause__, httpcore.ReadError)
    assert isinstance(exc.__cause__.__cause__, ConnectionResetError)
    assert exc.__cause__.__cause__.errno == errno.ECONNRESET


def test_too_many_redirects_is_not_unknown() -> None:
    assert not is_unknown(failures.TOO_MANY_REDIRECTS)
    assert is_unknown("unknown_failure: anything")
    assert not is_unknown(None)
    assert not is_unknown("connection_reset")


# --- 3. real errors on loopback -------------------------------------------------------------------


def _raised(make: Callable[[], Awaitable[Any]]) -> BaseException:
    """Run *make()* in a fresh event loop and return the network error it raised."""

    async def run() -> BaseException:
        try:
            await make()
        except failures.NETWORK_EXCEPTIONS as exc:
            return exc
        raise AssertionError("expected a network error, the operation succeeded")

    return asyncio.run(run())


def _read_then_rst(conn: socket.socket) -> None:
    conn.recv(4096)
    rst_close(conn)


async def _connect_and_close(port: int, **kwargs: Any) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port, **kwargs)
    writer.close()
    await writer.wait_closed()


def test_real_deadline() -> None:
    async def too_slow() -> None:
        async with asyncio.timeout(0.01):
            await asyncio.sleep(5)

    exc = _raised(too_slow)
    assert type(exc) is TimeoutError
    assert exc.errno is None
    assert isinstance(exc.__cause__, asyncio.CancelledError)
    assert failures.classify_connect(exc) == "generic_timeout_error"


def test_real_connection_refused() -> None:
    port = closed_port()
    exc = _raised(lambda: _connect_and_close(port))
    assert isinstance(exc, ConnectionRefusedError)
    assert exc.errno == errno.ECONNREFUSED
    assert failures.classify_connect(exc) == "connection_refused"


def test_real_connection_reset() -> None:
    async def exchange(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            await writer.drain()
            await reader.read(100)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionResetError):  # the same RST, reported again on close
                await writer.wait_closed()

    with connection_server(_read_then_rst) as port:
        exc = _raised(lambda: exchange(port))
    assert isinstance(exc, ConnectionResetError)
    assert failures.classify_read(exc) == "connection_reset"


def _tls_server_handler(context: ssl.SSLContext) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        with context.wrap_socket(conn, server_side=True):
            pass

    return handle


def _server_context(leaf: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    return context


def _expired(ca: trustme.CA) -> ssl.SSLContext:
    return _server_context(
        ca.issue_cert(
            "example.com",
            not_before=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
            not_after=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
        )
    )


def _not_yet_valid(ca: trustme.CA) -> ssl.SSLContext:
    now = dt.datetime.now(dt.UTC)
    return _server_context(
        ca.issue_cert(
            "example.com", not_before=now + dt.timedelta(days=365), not_after=now + dt.timedelta(days=730)
        )
    )


def _unrecognized_name(ca: trustme.CA) -> ssl.SSLContext:
    # A server that does not serve the SNI it was sent answers with alert 112.
    context = _server_context(ca.issue_cert("example.com"))
    context.sni_callback = lambda *_: ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
    return context


def _tls13_only(ca: trustme.CA) -> ssl.SSLContext:
    context = _server_context(ca.issue_cert("example.com"))
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


@pytest.mark.parametrize(
    ("server", "client_max", "failure"),
    [
        pytest.param(
            lambda ca: _server_context(ca.issue_cert("other.test")),
            None,
            "ssl_invalid_hostname",
            id="wrong-host",
        ),
        pytest.param(
            lambda ca: _server_context(trustme.CA().issue_cert("example.com")),
            None,
            "ssl_unknown_authority",
            id="untrusted-ca",
        ),
        pytest.param(_expired, None, "ssl_invalid_certificate", id="expired"),
        pytest.param(_not_yet_valid, None, "ssl_invalid_certificate", id="not-yet-valid"),
        pytest.param(_unrecognized_name, None, "ssl_invalid_hostname", id="alert-unrecognized-name"),
        pytest.param(_tls13_only, ssl.TLSVersion.TLSv1_2, "ssl_failed_handshake", id="protocol-version"),
    ],
)
def test_real_tls_failures(
    ca: trustme.CA,
    server: Callable[[trustme.CA], ssl.SSLContext],
    client_max: ssl.TLSVersion | None,
    failure: str,
) -> None:
    client = ssl.create_default_context()
    ca.configure_trust(client)
    if client_max is not None:
        client.maximum_version = client_max
    with connection_server(_tls_server_handler(server(ca))) as port:
        exc = _raised(lambda: _connect_and_close(port, ssl=client, server_hostname="example.com"))
    assert isinstance(exc, ssl.SSLError)
    assert failures.classify_tls_handshake(exc) == failure


def test_real_tls_eof_during_handshake() -> None:
    def read_hello_then_fin(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.shutdown(socket.SHUT_WR)

    client = ssl.create_default_context()
    with connection_server(read_hello_then_fin) as port:
        exc = _raised(lambda: _connect_and_close(port, ssl=client, server_hostname="x.com"))
    assert failures.classify_tls_handshake(exc) == "eof_error"


# httpx against misbehaving servers: what each reply makes httpx raise, and what we record.


def _reply(data: bytes) -> Callable[[socket.socket], None]:
    def handle(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(data)
        conn.close()

    return handle


def _silent(conn: socket.socket) -> None:
    pass  # hold the connection (the server closes it on exit) and say nothing


HTTP_SCENARIOS = [
    pytest.param(_read_then_rst, "connection_reset", id="rst-after-request"),
    pytest.param(_reply(b"HELLO WORLD\r\n\r\n"), "http_protocol_error", id="garbage-status-line"),
    pytest.param(_reply(b""), "eof_error", id="fin-without-response"),
    pytest.param(
        # Connection: close, so each hop opens a new connection: a kept-alive one may be
        # reused just as the server's close lands, and read as a reset instead.
        _reply(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        "unknown_failure: stopped after too many redirects",
        id="redirect-loop",
    ),
    pytest.param(
        _reply(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!"),
        "http_decoding_error",
        id="bad-gzip",
    ),
    pytest.param(_silent, "generic_timeout_error", id="silent"),
]


@pytest.mark.parametrize(("handle", "failure"), HTTP_SCENARIOS)
def test_real_httpx_failures(handle: Callable[[socket.socket], None], failure: str) -> None:
    async def get(port: int) -> None:
        async with httpx.AsyncClient(timeout=0.3, follow_redirects=True, max_redirects=2) as client:
            await client.get(f"http://127.0.0.1:{port}/")

    with connection_server(handle) as port:
        exc = _raised(lambda: get(port))
    assert isinstance(exc, httpx.TransportError | httpx.DecodingError | httpx.TooManyRedirects)
    assert failures.classify_http_round_trip(exc) == failure


def test_real_httpx_connect_and_certificate_failures(ca: trustme.CA) -> None:
    async def get(url: str, verify: ssl.SSLContext | bool = True) -> None:
        async with httpx.AsyncClient(timeout=2, verify=verify) as client:
            await client.get(url)

    refused = _raised(lambda: get(f"http://127.0.0.1:{closed_port()}/"))
    assert isinstance(refused, httpx.ConnectError)
    assert failures.classify_http_round_trip(refused) == "connection_refused"

    client = ssl.create_default_context()
    ca.configure_trust(client)
    with connection_server(_tls_server_handler(_server_context(ca.issue_cert("other.test")))) as port:
        wrong_name = _raised(lambda: get(f"https://127.0.0.1:{port}/", client))
    assert isinstance(wrong_name, httpx.ConnectError)
    assert failures.classify_http_round_trip(wrong_name) == "ssl_invalid_hostname"


# DNS: a scripted nameserver on 127.0.0.1, and dnspython's resolver pointed at it.

# What the nameserver answers to every name, per scenario.
_NAMESERVER = {
    "nxdomain": Reply(rcode="NXDOMAIN"),
    "noanswer": Reply(),
    "servfail": Reply(rcode="SERVFAIL"),
    "refused": Reply(rcode="REFUSED"),
    "notimp": Reply(rcode="NOTIMP"),
    "silent": Reply(action="silent"),
}


def _resolve(port: int, *, tcp: bool = False) -> BaseException:
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    resolver.lifetime = 0.3
    return _raised(lambda: resolver.resolve("example.com", "A", tcp=tcp))


@pytest.mark.parametrize(
    ("behaviour", "exception", "failure"),
    [
        ("nxdomain", dns.resolver.NXDOMAIN, "dns_nxdomain_error"),
        ("noanswer", dns.resolver.NoAnswer, "dns_no_answer"),
        ("servfail", dns.resolver.NoNameservers, "dns_servfail_error"),
        ("refused", dns.resolver.NoNameservers, "dns_refused_error"),
        ("notimp", dns.resolver.NoNameservers, "dns_server_misbehaving"),
        ("silent", dns.resolver.LifetimeTimeout, "generic_timeout_error"),
    ],
)
def test_real_dns_failures(behaviour: str, exception: type[BaseException], failure: str) -> None:
    with ScriptedDNSServer({}, default=_NAMESERVER[behaviour]) as server:
        exc = _resolve(server.port)
    assert type(exc) is exception
    assert failures.classify_resolve(exc) == failure


def test_real_dns_over_tcp_to_a_closed_port_is_refused_not_servfail() -> None:
    exc = _resolve(closed_port(), tcp=True)
    assert isinstance(exc, dns.resolver.NoNameservers)
    assert failures.classify_resolve(exc) == "connection_refused"


def test_real_dns_garbage_reply_is_misbehaving() -> None:
    with connection_server(_reply(b"\x00\x02\x00\x01")) as port:  # a 2-byte "message": no DNS header
        exc = _resolve(port, tcp=True)
    assert isinstance(exc, dns.resolver.NoNameservers)
    assert failures.classify_resolve(exc) == "dns_server_misbehaving"


def test_real_getaddrinfo_failure() -> None:
    # A real gaierror from the C library, without asking any nameserver (no test leaves
    # loopback): AI_NUMERICHOST makes getaddrinfo refuse a name instead of looking it up.
    with pytest.raises(socket.gaierror) as caught:
        socket.getaddrinfo("nonexistent.invalid", 443, flags=socket.AI_NUMERICHOST)
    assert caught.value.errno == socket.EAI_NONAME
    assert failures.classify_resolve(caught.value) == "dns_nxdomain_error"


# --- 4. the unknown fallback, and scrubbing -------------------------------------------------------

_IP_CANDIDATE = re.compile(r"[0-9A-Fa-f:.%\w]+")


def _ip_addresses_in(text: str) -> list[str]:
    """Every substring that parses as an IP address, found independently of ``scrub``."""
    found = []
    for candidate in _IP_CANDIDATE.findall(text):
        for token in {candidate, candidate.strip(".:"), candidate.split("%")[0].strip(".:")}:
            try:
                ipaddress.ip_address(token)
            except ValueError:
                continue
            found.append(token)
    return found


def test_unknown_failure_is_scrubbed() -> None:
    exc = OSError(errno.ENOENT, "no route via 10.1.2.3 to 2001:db8::1, tried [::1]:443 and fe80::1%eth0.")
    failure = failures.classify_connect(exc)
    assert failure.startswith("unknown_failure: ")
    assert is_unknown(failure)
    assert _ip_addresses_in(failure) == []
    assert failure == (
        "unknown_failure: [Errno 2] no route via [scrubbed] to [scrubbed], "
        "tried [[scrubbed]]:443 and [scrubbed]."
    )


def test_unknown_failure_of_an_empty_message_names_the_class() -> None:
    class Strange(OSError):
        pass

    assert classify(Strange(), "read") == "unknown_failure: Strange"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connect to 10.1.2.3 failed", "connect to [scrubbed] failed"),
        ("connect to 10.1.2.3.", "connect to [scrubbed]."),
        ("('10.1.2.3', 443)", "('[scrubbed]', 443)"),
        ("10.1.2.3:443", "[scrubbed]:443"),
        ("via 2001:db8::1 now", "via [scrubbed] now"),
        ("host 2001:db8::1: refused", "host [scrubbed]: refused"),
        ("to 2001:db8::1.", "to [scrubbed]."),
        ("[2001:db8::1]:443", "[[scrubbed]]:443"),
        ("[::1]:443", "[[scrubbed]]:443"),
        ("fe80::1%eth0 down", "[scrubbed] down"),
        ("::ffff:192.0.2.1", "[scrubbed]"),
        ("v4 and v6: 192.0.2.1, 2001:db8::2", "v4 and v6: [scrubbed], [scrubbed]"),
        # Not addresses: must survive untouched.
        ("OpenSSL 3.0.2 15 Mar 2022", "OpenSSL 3.0.2 15 Mar 2022"),
        ("httpx 1.2.3 and h11 0.16.0", "httpx 1.2.3 and h11 0.16.0"),
        ("version 1.2.3.4.5", "version 1.2.3.4.5"),
        ("999.1.2.3", "999.1.2.3"),
        ("at 12:30:45", "at 12:30:45"),
        ("error: bad record mac", "error: bad record mac"),
        ("[SSL: CERTIFICATE_VERIFY_FAILED] (_ssl.c:1006)", "[SSL: CERTIFICATE_VERIFY_FAILED] (_ssl.c:1006)"),
    ],
)
def test_scrub(text: str, expected: str) -> None:
    assert scrub(text) == expected
