"""The HTTP step: one request/response exchange pinned to a measured address, body capped.

:func:`fetch` sends one request to an IP address chosen by the TCP step while the ``Host``
header, the TLS SNI and the certificate check all use the URL's host name, like a browser
that resolved the name to that address. Redirects are *not* followed here: the caller
measures every hop again (DNS, TCP, TLS) and uses :func:`redirect_location` and
:func:`validate_redirect` to find the next one.

The body is read as a stream and kept up to ``body_limit`` decoded bytes (OONI's 512 KiB
snapshot) by :func:`probe.steps.bodies.read_body`, which inflates gzip and deflate with an output
bound (a 64 KiB gzip bomb would otherwise become 64 MiB in memory) and keeps other codings
(``br``, ``zstd``, chains) as received. The response is opened by
:func:`probe.steps.bodies.open_response`, so no ``Location`` is parsed before
:func:`redirect_location` and :func:`validate_redirect` judge it.
"""

from __future__ import annotations

import asyncio
import codecs
import html
import http.cookiejar
import ipaddress
import re
import ssl
import urllib.request
from typing import Final
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from probe.errors import TargetError
from probe.model import HTTPRequest, HTTPResponse, HTTPTransaction
from probe.rounds import activity
from probe.steps import bodies, failures, urls
from probe.steps.clock import Clock
from probe.steps.tcp import Connection

BODY_LIMIT: Final = 512 * 1024
"""OONI's response body snapshot size (``1 << 19``)."""
MAX_REDIRECTS: Final = 10
REDIRECT_CODES: Final = frozenset({301, 302, 303, 307, 308})
DEFAULT_HEADERS: Final[tuple[tuple[str, str], ...]] = (
    # OONI's measuring headers (probe-cli internal/model/http.go), in Chrome's order.
    (
        "User-Agent",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/116.0.0.0 Safari/537.36",
    ),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Encoding", bodies.ACCEPT_ENCODING),  # only what probe.steps.bodies can inflate
    ("Accept-Language", "en-US,en;q=0.9"),
)
UNSUPPORTED_REDIRECT_SCHEME: Final = "unknown_failure: unsupported redirect scheme"
"""A redirect to a scheme other than http/https (``ftp:``, ``mailto:``…). OONI defines no
string for it; this one is fixed text, so it groups in analysis."""

_TITLE_OPEN = re.compile(r"<title(?:\s[^<>]{0,1024})?>", re.IGNORECASE)
_TITLE_CLOSE = re.compile(r"</title\s*>", re.IGNORECASE)


class Cookies:
    """The cookies of one measurement, carried from a hop's response to the next hops' requests.

    As OONI's probe and test helper do (one Go ``net/http/cookiejar`` per measurement): every
    response's ``Set-Cookie`` is stored, and every request gets a ``Cookie`` header with the
    cookies that match it, so a site that sets a cookie on its redirect and requires it on the
    next hop is measured as a browser sees it, not as a loop to ``too_many_redirects``.

    The rules are the standard library's (:class:`http.cookiejar.DefaultCookiePolicy`, Netscape
    cookies as RFC 6265 describes them): a cookie without ``Domain`` goes back to its host only,
    one with ``Domain`` to that domain and its subdomains (only a domain the host is in),
    ``Path`` (by default the directory of the request path) must prefix the request path,
    ``Secure`` cookies go over https only, expired ones are dropped; ports are not compared.
    Go's jar also refuses a ``Domain`` that is a public suffix (``co.uk``); the standard library
    knows no public suffix list and only refuses a top-level domain: the difference is a
    cookie a site sets for its whole public suffix, which a measurement of one URL does not
    meet. Cookies live in memory for the measurement only.
    """

    def __init__(self) -> None:
        policy = http.cookiejar.DefaultCookiePolicy(
            strict_ns_domain=http.cookiejar.DefaultCookiePolicy.DomainStrictNonDomain
        )
        self._jar = http.cookiejar.CookieJar(policy)

    def header(self, url: str) -> str | None:
        """The ``Cookie`` header value for a request to *url* (``None``: no cookie matches)."""
        if not len(self._jar):  # most measurements never get a cookie: nothing to match
            return None
        request = urllib.request.Request(url)
        self._jar.add_cookie_header(request)
        return request.get_header("Cookie")

    def store(self, url: str, set_cookie: list[str]) -> None:
        """Keep the cookies of a response to *url* whose ``Set-Cookie`` values are *set_cookie*."""
        if set_cookie:
            self._jar.extract_cookies(_SetCookies(set_cookie), urllib.request.Request(url))  # type: ignore[arg-type]  # the jar reads only info().get_all()

    def __len__(self) -> int:
        return len(self._jar)


class _SetCookies:
    """What :meth:`http.cookiejar.CookieJar.extract_cookies` reads of a response."""

    def __init__(self, values: list[str]) -> None:
        self._values = values

    def info(self) -> _SetCookies:
        return self

    def get_all(self, name: str, default: list[str] | None = None) -> list[str]:
        return self._values if name.lower() == "set-cookie" else (default or [])


async def fetch(
    url: str,
    *,
    address: str,
    ssl_context: ssl.SSLContext,
    timeout: float,
    clock: Clock,
    transaction_id: int = 0,
    tags: tuple[str, ...] = (),
    body_limit: int = BODY_LIMIT,
    method: str = "GET",
    headers: tuple[tuple[str, str], ...] = DEFAULT_HEADERS,
    cookies: Cookies | None = None,
    on_progress: activity.Progress = activity.nothing,
    connection: Connection | None = None,
) -> HTTPTransaction:
    """Send one request for *url* to *address* and read the response, within *timeout*.

    *on_progress* is called for every chunk of the body that arrives (:mod:`probe.rounds.activity`).

    *connection*, when given, is the open connection the TCP and TLS steps measured to
    *address* (TLS with the URL's host as SNI for https): the request is sent over it, as
    HTTP/2 when its handshake chose ``h2``, else as HTTP/1.1, and it is closed on return. The
    transaction's ``t0``/``t`` then span request, response and body only, with no connect and
    no handshake in them. Without
    it, the request goes on a new connection (connect, and a TLS handshake for https, whose
    ALPN is then the ``http/1.1`` httpx offers).

    *timeout* is an overall deadline for connect, TLS, request, response and body together
    (httpx's own timeouts only bound each read). A ``Host`` header for the URL's host is
    sent first; any ``Host`` in *headers* is ignored. With *cookies*, the cookies that match
    *url* are sent in a ``Cookie`` header (last, recorded like every header sent) and the
    response's ``Set-Cookie`` ones are stored in it, even when the body then fails. Note
    that httpcore sets the ALPN list of *ssl_context* to ``["http/1.1"]``: pass a context of
    its own if that matters.

    Returns:
        The recorded transaction. On failure ``failure`` holds the failure string and
        ``response`` is ``None``; a body longer than *body_limit* is not a failure but
        ``body_is_truncated``. Either way the ``x_`` fields say when the headers and the
        last body bytes arrived and how many body bytes came (see :class:`HTTPTransaction`).

    Raises:
        TargetError: *url* is not a valid http/https URL.
        ValueError: *address* is not an IP address, or *body_limit* is negative.
    """
    scheme, host, port, parts = urls.split_url_parts(url)
    ipaddress.ip_address(address)  # ValueError when it is not an IP address
    if body_limit < 0:
        raise ValueError(f"body_limit must not be negative: {body_limit}")
    endpoint = urls.endpoint(address, port)
    host_header = urls.authority(host, port, default_port=urls.DEFAULT_PORTS[scheme])
    sent = [("Host", host_header), *((k, v) for k, v in headers if k.lower() != "host")]
    # The jar sees the URL with its host name (IDNA-encoded), not the pinned address.
    named = urlunsplit((scheme, host_header, parts.path or "/", parts.query, ""))
    cookie = cookies.header(named) if cookies is not None else None
    if cookie is not None:
        sent.append(("Cookie", cookie))
    try:
        request = httpx.Request(
            method,
            urlunsplit((scheme, endpoint, parts.path or "/", parts.query, "")),
            headers=sent,
            extensions={"sni_hostname": host},
        )
    except httpx.InvalidURL as exc:
        raise TargetError(f"invalid URL {url!r}: {exc}") from None
    record = HTTPRequest(url=url, method=method, headers_list=_headers(request.headers))
    t0 = clock()
    progress = _Progress(clock, on_progress)
    operation: failures.Operation = "http_round_trip"
    try:
        async with (
            asyncio.timeout(timeout),
            bodies.open_response(
                request, ssl_context=ssl_context, timeout=timeout, connection=connection
            ) as response,
        ):
            progress.headers_arrived()
            if cookies is not None:
                cookies.store(named, response.headers.get_list("set-cookie"))
            operation = "read"
            alpn = _alpn(response) if scheme == "https" else ""
            body, truncated = await bodies.read_body(response, body_limit, on_read=progress.received)
    except failures.NETWORK_EXCEPTIONS as exc:
        return HTTPTransaction(
            address=endpoint,
            request=record,
            response=None,
            failure=failures.classify(exc, operation),
            t0=t0,
            t=clock(),
            transaction_id=transaction_id,
            tags=tags,
            x_headers_t=progress.headers_t,
            x_body_last_byte_t=progress.last_byte_t,
            x_body_bytes_received=progress.body_bytes,
        )
    return HTTPTransaction(
        address=endpoint,
        request=record,
        response=HTTPResponse(
            code=response.status_code,
            headers_list=_headers(response.headers),
            body=body,
            body_is_truncated=truncated,
            body_length=len(body),
            title=_title(body[:BODY_LIMIT], response.charset_encoding),
        ),
        failure=None,
        t0=t0,
        t=clock(),
        alpn=alpn,
        transaction_id=transaction_id,
        tags=tags,
        x_headers_t=progress.headers_t,
        x_body_last_byte_t=progress.last_byte_t,
        x_body_bytes_received=progress.body_bytes,
    )


class _Progress:
    """How far one exchange got, and when: the ``x_`` evidence of :class:`HTTPTransaction`."""

    __slots__ = ("_clock", "_on_progress", "body_bytes", "headers_t", "last_byte_t")

    def __init__(self, clock: Clock, on_progress: activity.Progress) -> None:
        self._clock = clock
        self._on_progress = on_progress
        self.headers_t: float | None = None
        self.last_byte_t: float | None = None
        self.body_bytes: int | None = None  # None until the headers arrive: no response at all

    def headers_arrived(self) -> None:
        self.headers_t = self._clock()
        self.body_bytes = 0

    def received(self, size: int) -> None:
        self._on_progress()  # a body arriving, however slowly, is a measurement at work
        if size:
            self.body_bytes = (self.body_bytes or 0) + size
            self.last_byte_t = self._clock()


def _alpn(response: httpx.Response) -> str:
    """The ALPN protocol the server chose in the TLS handshake ("" when it chose none)."""
    stream = response.extensions.get("network_stream")
    tls = stream.get_extra_info("ssl_object") if stream is not None else None
    return (tls.selected_alpn_protocol() or "") if isinstance(tls, ssl.SSLObject) else ""


def _headers(headers: httpx.Headers) -> tuple[tuple[str, str], ...]:
    """Header pairs in wire order, names in their original case."""
    return tuple((k.decode(headers.encoding), v.decode(headers.encoding)) for k, v in headers.raw)


def _title(body: bytes, charset: str | None) -> str:
    """The text of the first ``<title>…</title>``, entities unescaped, whitespace folded."""
    try:
        codecs.lookup(charset or "utf-8")
    except LookupError:
        charset = None
    text = body.decode(charset or "utf-8", errors="replace")
    opening = _TITLE_OPEN.search(text)
    closing = _TITLE_CLOSE.search(text, opening.end()) if opening else None
    if opening is None or closing is None:
        return ""
    return " ".join(html.unescape(text[opening.end() : closing.start()]).split())


def redirect_location(transaction: HTTPTransaction) -> str | None:
    """The URL a redirect response points to, for the next hop.

    A relative ``Location`` is resolved against the request URL (``urljoin``). A Location
    with a scheme, or a scheme-relative ``//…`` one, is returned as sent (the latter with the
    request's scheme) so that :func:`validate_redirect` sees an empty host such as
    ``http://``, which joining would silently replace with the current one.

    Returns:
        The next URL; ``None`` when the transaction failed, the status is not a redirect
        code, or the response has no (or an empty) ``Location``.
    """
    response = transaction.response
    if transaction.failure is not None or response is None or response.code not in REDIRECT_CODES:
        return None
    location = next((v.strip() for k, v in response.headers_list if k.lower() == "location"), "")
    if not location:
        return None
    if location.startswith("//"):
        return f"{urlsplit(transaction.request.url).scheme}:{location}"
    try:
        if urlsplit(location).scheme:
            return location
        return urljoin(transaction.request.url, location)
    except ValueError:  # e.g. an unclosed "[" in the authority
        return location


def validate_redirect(location: str) -> str | None:
    """Check a URL from :func:`redirect_location` before following it.

    Returns:
        ``None`` when it can be measured; ``"http_invalid_redirect_location_host"`` when
        its host (or port) is empty or malformed, e.g. ``http://``, ``http:///path``,
        ``https://:443/``; :data:`UNSUPPORTED_REDIRECT_SCHEME` for a scheme other than
        http/https.
    """
    try:
        scheme = urlsplit(location).scheme
    except ValueError:
        return failures.HTTP_INVALID_REDIRECT_LOCATION_HOST
    if scheme not in urls.DEFAULT_PORTS:
        return UNSUPPORTED_REDIRECT_SCHEME
    try:
        urls.split_url(location)
    except TargetError:
        return failures.HTTP_INVALID_REDIRECT_LOCATION_HOST
    return None
