"""The closed failure vocabulary, and the classifiers that map exceptions into it.

Each measurement step catches :data:`NETWORK_EXCEPTIONS` at exactly one boundary and records
``classify(exc, operation)``. The strings are OONI's (df-007-errors, probe-cli ``netxlite``)
so our data reads like theirs. Classification goes by exception type, errno value,
``EAI_*`` code and OpenSSL ``verify_code`` — never by parsing stored text. The exception chain
(``__cause__``/``__context__``) is walked, because httpx wraps httpcore which wraps the
``OSError`` that carries the errno. A failure nothing explains becomes
``unknown_failure: <message>`` with every IP address in the message scrubbed.

Beyond OONI's strings, reachprobe adds a few of its own where OONI's Go stack has no
equivalent in Python: :data:`HTTP_PROTOCOL_ERROR`, :data:`HTTP_DECODING_ERROR`,
:data:`CONNECTION_FAILED`, :data:`BROKEN_PIPE` and :data:`UNEXPECTED_RESPONSE`.
"""

from __future__ import annotations

import errno
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterator
from typing import Final, Literal

import dns.exception
import dns.resolver
import httpcore
import httpx

Operation = Literal["resolve", "connect", "tls_handshake", "http_round_trip", "read"]

# --- the vocabulary --------------------------------------------------------------------------
DNS_NXDOMAIN: Final = "dns_nxdomain_error"
DNS_NO_ANSWER: Final = "dns_no_answer"
DNS_REFUSED: Final = "dns_refused_error"
DNS_SERVFAIL: Final = "dns_servfail_error"
DNS_SERVER_MISBEHAVING: Final = "dns_server_misbehaving"
DNS_TEMPORARY_FAILURE: Final = "dns_temporary_failure"
DNS_NON_RECOVERABLE_FAILURE: Final = "dns_non_recoverable_failure"
DNS_WRONG_QUERY_ID: Final = "dns_reply_with_wrong_query_id"
CONNECTION_REFUSED: Final = "connection_refused"
CONNECTION_RESET: Final = "connection_reset"
CONNECTION_ABORTED: Final = "connection_aborted"
CONNECTION_FAILED: Final = "connection_failed"
BROKEN_PIPE: Final = "broken_pipe"
HOST_UNREACHABLE: Final = "host_unreachable"
NETWORK_UNREACHABLE: Final = "network_unreachable"
TIMED_OUT: Final = "timed_out"
GENERIC_TIMEOUT: Final = "generic_timeout_error"
EOF_ERROR: Final = "eof_error"
SSL_INVALID_HOSTNAME: Final = "ssl_invalid_hostname"
SSL_UNKNOWN_AUTHORITY: Final = "ssl_unknown_authority"
SSL_INVALID_CERTIFICATE: Final = "ssl_invalid_certificate"
SSL_FAILED_HANDSHAKE: Final = "ssl_failed_handshake"
HTTP_INVALID_REDIRECT_LOCATION_HOST: Final = "http_invalid_redirect_location_host"
HTTP_PROTOCOL_ERROR: Final = "http_protocol_error"
HTTP_DECODING_ERROR: Final = "http_decoding_error"
HTTP_REQUEST_FAILED: Final = "http_request_failed"
TOO_MANY_REDIRECTS: Final = "unknown_failure: stopped after too many redirects"
UNKNOWN_PREFIX: Final = "unknown_failure: "
UNEXPECTED_RESPONSE: Final = "unexpected_response"
"""A handshake's answer came but was not a valid one (a VPN server's reply that fails its
checks, garbage a censor injected): reachprobe's, OONI has no such string."""

# OONI's errno table (probe-cli netxlite errno.go), by errno value, so it works on any OS.
ERRNO_FAILURES: Final[dict[int, str]] = {
    errno.ECONNREFUSED: CONNECTION_REFUSED,
    errno.ECONNRESET: CONNECTION_RESET,
    errno.ECONNABORTED: CONNECTION_ABORTED,
    errno.EHOSTUNREACH: HOST_UNREACHABLE,
    errno.ENETUNREACH: NETWORK_UNREACHABLE,
    errno.ENETDOWN: "network_down",
    errno.ENETRESET: "network_reset",
    errno.ETIMEDOUT: TIMED_OUT,
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
    errno.EPIPE: BROKEN_PIPE,
}

# getaddrinfo's EAI_* codes (glibc values; the names exist on every POSIX Python).
GAI_FAILURES: Final[dict[int, str]] = {
    socket.EAI_NONAME: DNS_NXDOMAIN,
    socket.EAI_AGAIN: DNS_TEMPORARY_FAILURE,
    socket.EAI_FAIL: DNS_NON_RECOVERABLE_FAILURE,
    **{
        code: DNS_NO_ANSWER
        for name in ("EAI_NODATA", "EAI_ADDRFAMILY")
        if (code := getattr(socket, name, None)) is not None
    },
}

# OpenSSL X509_V_ERR_* codes that mean "I do not know who signed this".
_UNKNOWN_AUTHORITY_CODES: Final = frozenset({2, 18, 19, 20, 21})
_HOSTNAME_MISMATCH_CODES: Final = frozenset({62, 64})

NETWORK_EXCEPTIONS: Final[tuple[type[BaseException], ...]] = (
    OSError,  # includes ssl.SSLError, socket.gaierror, TimeoutError, ConnectionError
    EOFError,  # includes asyncio.IncompleteReadError
    dns.exception.DNSException,
    httpx.TransportError,
    httpx.DecodingError,
    httpx.TooManyRedirects,
    httpcore.NetworkError,
    httpcore.TimeoutException,
    httpcore.ProtocolError,
)
"""What a step catches and records. Anything else is a programmer error and propagates."""


def classify(exc: BaseException, operation: Operation) -> str:
    """Map *exc*, raised during *operation*, to one string of the vocabulary.

    Returns:
        The failure string; ``unknown_failure: …`` (IP addresses scrubbed) only when
        nothing in the exception chain is recognised.
    """
    chain = list(_chain(exc))
    for candidate in chain:
        failure = _specific(candidate, operation)
        if failure is not None:
            return failure
    for candidate in chain:
        failure = _by_library_class(candidate)
        if failure is not None:
            return failure
    return UNKNOWN_PREFIX + scrub(_describe(exc))


def classify_resolve(exc: BaseException) -> str:
    """Classify a failure of a DNS lookup (any engine)."""
    return classify(exc, "resolve")


def classify_connect(exc: BaseException) -> str:
    """Classify a failure of a TCP connect."""
    return classify(exc, "connect")


def classify_tls_handshake(exc: BaseException) -> str:
    """Classify a failure of a TLS handshake."""
    return classify(exc, "tls_handshake")


def classify_http_round_trip(exc: BaseException) -> str:
    """Classify a failure of an HTTP request/response exchange."""
    return classify(exc, "http_round_trip")


def classify_read(exc: BaseException) -> str:
    """Classify a failure while reading a response body."""
    return classify(exc, "read")


def is_unknown(failure: str | None) -> bool:
    """True when *failure* is the catch-all ``unknown_failure: …`` (not a vocabulary entry)."""
    return failure is not None and failure.startswith(UNKNOWN_PREFIX) and failure != TOO_MANY_REDIRECTS


# --- helpers -----------------------------------------------------------------------------------


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _specific(exc: BaseException, operation: Operation) -> str | None:
    """Classify by the most informative facts: DNS reply, certificate, errno, EAI code."""
    if isinstance(exc, dns.exception.DNSException):
        return _dns(exc, operation)
    if isinstance(exc, ssl.SSLError):
        return _ssl(exc)
    if isinstance(exc, socket.gaierror):
        return GAI_FAILURES.get(
            exc.errno or 0, DNS_NON_RECOVERABLE_FAILURE if operation == "resolve" else None
        )
    if isinstance(exc, TimeoutError):
        return TIMED_OUT if exc.errno == errno.ETIMEDOUT else GENERIC_TIMEOUT
    if isinstance(exc, OSError) and exc.errno in ERRNO_FAILURES:
        return ERRNO_FAILURES[exc.errno]
    if isinstance(exc, ConnectionResetError):
        # asyncio's SSL protocol reports a FIN during the handshake as a ConnectionResetError
        # with no errno; a real RST always carries ECONNRESET (handled above).
        return EOF_ERROR if operation == "tls_handshake" else CONNECTION_RESET
    if isinstance(exc, ConnectionRefusedError):
        return CONNECTION_REFUSED
    if isinstance(exc, ConnectionAbortedError):
        return CONNECTION_ABORTED
    if isinstance(exc, BrokenPipeError):
        return BROKEN_PIPE
    if isinstance(exc, EOFError):
        return EOF_ERROR
    if isinstance(exc, httpx.TimeoutException | httpcore.TimeoutException):
        return GENERIC_TIMEOUT
    return None


def _dns(exc: dns.exception.DNSException, operation: Operation) -> str:
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return DNS_NXDOMAIN
    if isinstance(exc, dns.resolver.NoAnswer):
        return DNS_NO_ANSWER
    if isinstance(exc, dns.exception.Timeout):
        return GENERIC_TIMEOUT
    if isinstance(exc, dns.resolver.NoNameservers):
        return _no_nameservers(exc, operation)
    # Garbage, truncated or mismatched replies, YXDOMAIN, a missing root SOA: the server
    # misbehaved (OONI's Go resolver has the same catch-all).
    return DNS_SERVER_MISBEHAVING


def _no_nameservers(exc: dns.resolver.NoNameservers, operation: Operation) -> str:
    """Every server failed: say what they did, as OONI's resolver does per rcode.

    dnspython records one ``(server, tcp, port, error, response)`` tuple per attempt, where
    *error* is the rcode as text when the server answered, else the exception it raised. A
    server that answered outranks one that could not be reached; with no answer at all, the
    first transport error says why (a TCP resolver on a closed port is ``connection_refused``,
    not a SERVFAIL nobody sent).
    """
    outcomes = [
        err[3] if isinstance(err, tuple) and len(err) >= 4 else err for err in exc.kwargs.get("errors") or ()
    ]
    rcodes = {outcome for outcome in outcomes if isinstance(outcome, str)}
    if "REFUSED" in rcodes:
        return DNS_REFUSED
    if "SERVFAIL" in rcodes or not outcomes:
        return DNS_SERVFAIL
    if rcodes:
        return DNS_SERVER_MISBEHAVING  # NOTIMP, FORMERR, …: OONI's catch-all for odd rcodes
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            return classify(outcome, operation)
    return DNS_SERVFAIL


def _ssl(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        # Set by OpenSSL; absent when Python code raises the class (ssl.match_hostname).
        code = getattr(exc, "verify_code", None)
        if code in _HOSTNAME_MISMATCH_CODES:
            return SSL_INVALID_HOSTNAME
        if code in _UNKNOWN_AUTHORITY_CODES:
            return SSL_UNKNOWN_AUTHORITY
        return SSL_INVALID_CERTIFICATE
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError):
        return EOF_ERROR
    # ``reason`` is set only on errors that come from OpenSSL, not on SSLError("…") raised in Python.
    if getattr(exc, "reason", None) == "TLSV1_UNRECOGNIZED_NAME":
        return SSL_INVALID_HOSTNAME
    return SSL_FAILED_HANDSHAKE


def _by_library_class(exc: BaseException) -> str | None:
    """Fallbacks by httpx/httpcore class when no OS-level reason sits below them."""
    if isinstance(exc, httpx.TooManyRedirects):
        return TOO_MANY_REDIRECTS
    if isinstance(exc, httpx.DecodingError):
        return HTTP_DECODING_ERROR
    if isinstance(exc, httpx.RemoteProtocolError | httpcore.RemoteProtocolError):
        # h11 reports a peer that closed before answering as a protocol error.
        return EOF_ERROR if "disconnected" in str(exc).lower() else HTTP_PROTOCOL_ERROR
    if isinstance(exc, httpx.ProtocolError | httpcore.ProtocolError):
        return HTTP_PROTOCOL_ERROR
    if isinstance(exc, httpx.NetworkError | httpcore.NetworkError):
        return CONNECTION_FAILED
    if isinstance(exc, httpx.TransportError):
        return HTTP_REQUEST_FAILED
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


# A dot may end the sentence after an address, but "1.2.3.4.5" is a version, not an address.
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\w)")
_IPV6_CANDIDATE = re.compile(r"[0-9A-Fa-f]*:[0-9A-Fa-f:.]*(?:%\w+)?")


def scrub(text: str) -> str:
    """Replace every IPv4 and IPv6 address in *text* with ``[scrubbed]`` (OONI's marker)."""
    # IPv6 first, so that an IPv4-mapped address (::ffff:10.1.2.3) goes as a whole.
    text = _IPV6_CANDIDATE.sub(_scrub_ipv6, text)
    return _IPV4.sub(lambda m: "[scrubbed]" if _is_ip(m.group(0)) else m.group(0), text)


def _scrub_ipv6(match: re.Match[str]) -> str:
    # The candidate pattern also swallows punctuation that follows an address
    # ("2001:db8::1: refused", "… to 2001:db8::1."): shed it until an address remains.
    token = core = match.group(0)
    while core:
        if _is_ip(core):
            return "[scrubbed]" + token[len(core) :]
        if core[-1] not in ".:":
            break
        core = core[:-1]
    return token


def _is_ip(token: str) -> bool:
    try:
        ipaddress.ip_address(token.split("%", 1)[0])
    except ValueError:
        return False
    return True
