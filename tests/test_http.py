"""The HTTP step against real loopback HTTP/HTTPS servers, and its URL helpers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gzip
import socket
import ssl
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.analysis import mechanism
from probe.errors import TargetError
from probe.model import HTTPRequest, HTTPResponse, HTTPTransaction
from probe.steps import http, urls
from probe.steps.clock import relative_clock
from tests.servers.http_server import PAGE, PAGE_HEADERS, HTTPServer, bomb, http_server
from tests.servers.tcp_server import closed_port, connection_server

TITLE = "Hello & Wörld"


def fetch(
    url: str, address: str = "127.0.0.1", *, context: ssl.SSLContext | None = None, **kw: Any
) -> HTTPTransaction:
    kw.setdefault("timeout", 5.0)
    context = context or ssl.create_default_context()
    records: list[HTTPTransaction] = []

    async def run() -> None:
        # Not returned from the task: asyncio.run formats the repr of its main task (and so of
        # the result) when it restores the SIGINT handler, which would skew the memory test.
        records.append(
            await http.fetch(url, address=address, ssl_context=context, clock=relative_clock(), **kw)
        )

    asyncio.run(run())
    return records[0]


def test_page_pinned_to_address(http_site: HTTPServer) -> None:
    port = http_site.port
    record = fetch(http_site.url("/"), transaction_id=3, tags=("depth=0",))
    host_header = ("Host", f"example.com:{port}")
    assert record.failure is None
    assert record.address == f"127.0.0.1:{port}"
    assert record.request == HTTPRequest(
        f"http://example.com:{port}/", "GET", (host_header, *http.DEFAULT_HEADERS)
    )
    assert record.response == HTTPResponse(
        code=200,
        headers_list=(*PAGE_HEADERS, ("Content-Length", str(len(PAGE))), ("Connection", "close")),
        body=PAGE,
        body_is_truncated=False,
        body_length=len(PAGE),
        title=TITLE,
    )
    assert (record.alpn, record.transaction_id, record.tags, record.network) == ("", 3, ("depth=0",), "tcp")
    assert 0 <= record.t0 <= record.t
    seen = http_site.requests[-1]
    assert (seen.method, seen.target, seen.sni) == ("GET", "/", None)
    assert seen.headers == record.request.headers_list  # as recorded, in order, same case


def test_custom_method_and_headers(http_site: HTTPServer) -> None:
    record = fetch(
        http_site.url("/?a=1&b=%20"), method="HEAD", headers=(("user-agent", "probe"), ("Host", "evil"))
    )
    assert record.request.headers_list == (("Host", f"example.com:{http_site.port}"), ("user-agent", "probe"))
    assert http_site.requests[-1].target == "/?a=1&b=%20"
    assert http_site.requests[-1].method == "HEAD"
    assert record.response is not None
    assert (record.response.code, record.response.body, record.response.title) == (200, b"", "")


def test_default_port_is_left_out_of_the_host_header() -> None:
    # Whatever answers on port 80 (usually nothing), the request is recorded the same way.
    record = fetch("http://Example.COM/", timeout=2.0)
    assert record.request.url == "http://Example.COM/"
    assert record.request.headers_list[0] == ("Host", "example.com")
    assert record.address == "127.0.0.1:80"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
def test_ipv6_address() -> None:
    with http_server(host="::1") as running:
        by_name = fetch(running.url("/final"), address="::1")
        by_ip = fetch(running.url("/final", host="[::1]"), address="::1")
    assert by_name.address == by_ip.address == f"[::1]:{running.port}"
    assert by_name.request.headers_list[0] == ("Host", f"example.com:{running.port}")
    assert by_ip.request.headers_list[0] == ("Host", f"[::1]:{running.port}")
    assert by_name.response is not None and by_name.response.body == b"final"
    assert [r.headers[0] for r in running.requests] == [
        by_name.request.headers_list[0],
        by_ip.request.headers_list[0],
    ]


def test_https_sni_and_host_follow_the_url_not_the_address(
    https_site: HTTPServer, client_context: ssl.SSLContext
) -> None:
    record = fetch(https_site.url("/"), context=client_context)
    assert record.failure is None
    assert record.response is not None and record.response.title == TITLE
    assert record.alpn == "http/1.1"
    seen = https_site.requests[-1]
    assert seen.sni == "example.com"
    assert ("Host", f"example.com:{https_site.port}") in seen.headers


def test_https_to_an_ip_literal_checks_the_ip(https_site: HTTPServer, client_context: ssl.SSLContext) -> None:
    record = fetch(https_site.url("/final", host="127.0.0.1"), context=client_context)
    assert record.failure is None
    assert https_site.requests[-1].sni is None  # no SNI for IP literals (RFC 6066)


@pytest.mark.parametrize(
    ("cert_kind", "failure"),
    [
        ("wrong_name", "ssl_invalid_hostname"),
        ("unknown_ca", "ssl_unknown_authority"),
        ("expired", "ssl_invalid_certificate"),
    ],
)
def test_https_certificate_failures(
    ca: trustme.CA, client_context: ssl.SSLContext, cert_kind: str, failure: str
) -> None:
    past = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    cert = {
        # The address is in the certificate: only a check of the URL's name can reject it.
        "wrong_name": lambda: ca.issue_cert("other.test", "127.0.0.1"),
        "unknown_ca": lambda: trustme.CA().issue_cert("example.com"),
        "expired": lambda: ca.issue_cert(
            "example.com", not_before=past, not_after=past + dt.timedelta(days=1)
        ),
    }[cert_kind]()
    with http_server(cert) as running:
        record = fetch(running.url("/"), context=client_context)
    assert (record.failure, record.response, record.alpn) == (failure, None, "")
    assert record.address == f"127.0.0.1:{running.port}"


@pytest.mark.parametrize(
    ("path", "failure"),
    [
        ("/reset", "connection_reset"),
        ("/close", "eof_error"),
        ("/garbage", "http_protocol_error"),
        ("/bad-gzip", "http_decoding_error"),
    ],
)
def test_failures(http_site: HTTPServer, path: str, failure: str) -> None:
    record = fetch(http_site.url(path))
    assert (record.failure, record.response) == (failure, None)
    assert record.request.url == http_site.url(path)
    assert 0 <= record.t0 <= record.t


def test_connection_refused() -> None:
    port = closed_port()
    record = fetch(f"http://example.com:{port}/")
    assert (record.failure, record.response, record.address) == (
        "connection_refused",
        None,
        f"127.0.0.1:{port}",
    )


@pytest.mark.parametrize("path", ["/trickle", "/trickle-head"])
def test_overall_deadline_beats_a_trickling_server(http_site: HTTPServer, path: str) -> None:
    started = time.monotonic()
    record = fetch(http_site.url(path), timeout=1.0)
    assert time.monotonic() - started < 1.5
    assert (record.failure, record.response) == ("generic_timeout_error", None)
    assert 0.9 <= record.t - record.t0 < 1.5


# --- transfer evidence (the x_ fields) ---------------------------------------------------------


def _evidence(record: HTTPTransaction) -> tuple[float | None, float | None, int | None]:
    return record.x_headers_t, record.x_body_last_byte_t, record.x_body_bytes_received


def _assert_ordered(record: HTTPTransaction) -> None:
    """t0 <= headers <= last byte <= t, for the times that are set."""
    times = [record.t0, record.x_headers_t, record.x_body_last_byte_t, record.t]
    present = [t for t in times if t is not None]
    assert present == sorted(present), times


@pytest.mark.parametrize(
    ("path", "received"),
    [
        ("/size/1000", 1000),
        ("/", len(PAGE)),
        # As received, before inflating: the gzip stream, not the 1000 bytes it holds.
        ("/gzip-size/1000", len(gzip.compress(b"a" * 1000))),
    ],
)
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_transfer_evidence_on_success(
    http_site: HTTPServer,
    https_site: HTTPServer,
    client_context: ssl.SSLContext,
    scheme: str,
    path: str,
    received: int,
) -> None:
    site = https_site if scheme == "https" else http_site
    record = fetch(site.url(path), context=client_context)
    assert record.failure is None and record.response is not None
    assert record.x_body_bytes_received == received
    assert record.x_headers_t is not None and record.x_body_last_byte_t is not None
    assert record.t0 < record.x_headers_t
    _assert_ordered(record)


def test_transfer_evidence_of_an_empty_body(http_site: HTTPServer) -> None:
    record = fetch(http_site.url("/size/0"))
    assert record.response is not None and record.response.body == b""
    headers_t, last_byte_t, received = _evidence(record)
    assert (last_byte_t, received) == (None, 0)  # headers, and no body byte: none to time
    assert headers_t is not None
    _assert_ordered(record)


def test_transfer_evidence_of_a_truncated_body(http_site: HTTPServer) -> None:
    record = fetch(http_site.url("/endless"), body_limit=1000)
    assert record.response is not None and record.response.body_is_truncated
    # Reading stops at the network read that crossed the cap: more came than was kept.
    received = record.x_body_bytes_received
    assert received is not None and received > 1000 == record.response.body_length
    _assert_ordered(record)


def test_transfer_evidence_when_the_deadline_falls_mid_body(http_site: HTTPServer) -> None:
    """/trickle: one body byte every 0.2 s. The failure keeps what came, and when."""
    record = fetch(http_site.url("/trickle"), timeout=1.0)
    assert (record.failure, record.response) == ("generic_timeout_error", None)
    headers_t, last_byte_t, received = _evidence(record)
    assert headers_t is not None and last_byte_t is not None and received is not None
    assert 2 <= received <= 6  # about 1 s / 0.2 s
    assert record.t - last_byte_t < 0.6  # the body was still coming when the deadline fell
    _assert_ordered(record)
    assert mechanism.is_throttled(record)


@pytest.mark.parametrize("path", ["/trickle-head", None])
def test_no_transfer_evidence_before_the_headers(http_site: HTTPServer, path: str | None) -> None:
    """Headers that never complete, or a refused connection: no response, so no evidence."""
    url = http_site.url(path) if path else f"http://example.com:{closed_port()}/"
    record = fetch(url, timeout=1.0)
    assert record.failure in ("generic_timeout_error", "connection_refused")
    assert _evidence(record) == (None, None, None)
    _assert_ordered(record)


@contextlib.contextmanager
def stalling_server(body: bytes) -> Iterator[int]:
    """Answer any request with headers announcing 1 MiB, send *body*, then nothing more."""
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                return
            request += chunk
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n")
        if body:
            time.sleep(0.05)  # a separate delivery, after the headers
            conn.sendall(body)
        stop.wait(10)

    with connection_server(handle, threaded=True, stop=stop) as port:
        yield port


@pytest.mark.parametrize("burst", [b"", b"x" * 3000])
def test_transfer_evidence_of_a_stall(burst: bytes) -> None:
    """Headers (and a burst), then silence until the deadline: evidence of a stall, not a trickle."""
    with stalling_server(burst) as port:
        record = fetch(f"http://example.com:{port}/big", timeout=1.0)
    assert (record.failure, record.response) == ("generic_timeout_error", None)
    headers_t, last_byte_t, received = _evidence(record)
    assert headers_t is not None and received == len(burst)
    if burst:
        assert last_byte_t is not None and record.t - last_byte_t > 0.5  # silence, then the deadline
    else:
        assert last_byte_t is None
    _assert_ordered(record)
    assert not mechanism.is_throttled(record)


@pytest.mark.parametrize(
    ("path", "length", "truncated"),
    [
        ("/size/1000", 1000, False),
        ("/size/1001", 1000, True),
        ("/size/0", 0, False),
        ("/gzip-size/1000", 1000, False),
        ("/gzip-size/1001", 1000, True),
    ],
)
def test_body_limit_is_exact(http_site: HTTPServer, path: str, length: int, truncated: bool) -> None:
    record = fetch(http_site.url(path), body_limit=1000)
    assert record.response is not None
    assert record.response.body == b"a" * length
    assert (record.response.body_length, record.response.body_is_truncated) == (length, truncated)


@pytest.mark.parametrize("path", ["/endless", "/bomb"])
def test_endless_and_bomb_bodies_stop_at_the_limit_in_bounded_memory(
    http_site: HTTPServer, path: str
) -> None:
    bomb()  # build the bomb before measuring: only the client side counts
    context = ssl.create_default_context()
    fetch(http_site.url("/size/1"), context=context)  # and import whatever httpx imports lazily
    tracemalloc.start()
    try:
        record = fetch(http_site.url(path), context=context)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert record.failure is None and record.response is not None
    assert record.response.body_is_truncated is True
    assert record.response.body_length == len(record.response.body) == http.BODY_LIMIT
    assert record.response.body == (b"x" if path == "/endless" else b"\0") * http.BODY_LIMIT
    # The body is held twice at most (buffer and result) plus a few network reads (about 1.5 MiB
    # in all); inflating the bomb the way httpx does would cost 64 MiB.
    assert peak < 2 * http.BODY_LIMIT + 1024 * 1024, peak


@pytest.mark.parametrize(
    ("path", "body", "title"),
    [
        ("/gzip", PAGE, TITLE),
        ("/deflate", PAGE, TITLE),
        ("/raw-deflate", PAGE, TITLE),
        ("/br", b"\x0b\x02\x80hello\x03", ""),  # a coding we do not decode is kept as received
    ],
)
def test_content_encodings(http_site: HTTPServer, path: str, body: bytes, title: str) -> None:
    record = fetch(http_site.url(path))
    assert record.response is not None
    assert (record.response.body, record.response.title) == (body, title)
    assert record.response.body_length == len(body)


@pytest.mark.parametrize(
    ("body", "content_type", "encoding", "title"),
    [
        ("<title>A</title>", "text/html", "utf-8", "A"),
        ("<TiTlE lang='en'>  a \n\t b </tItLe >", "text/html", "utf-8", "a b"),
        ("<title>x &lt;y&gt; &#233;&nbsp;&amp;z</title>", "text/html", "utf-8", "x <y> é &z"),
        ("<title>no end", "text/html", "utf-8", ""),
        ("<title></title><title>b</title>", "text/html", "utf-8", ""),
        ("<titles>no</titles>", "text/html", "utf-8", ""),
        ("<title>été</title>", "text/html; charset=iso-8859-1", "latin-1", "été"),
        ("<title>été</title>", "text/html; charset=bogus", "utf-8", "été"),
        ("<title>été</title>", "text/html", "latin-1", "\ufffdt\ufffd"),
        ("", "text/html", "utf-8", ""),
    ],
)
def test_title(http_site: HTTPServer, body: str, content_type: str, encoding: str, title: str) -> None:
    record = fetch(
        http_site.url("/echo?" + urlencode({"body": body, "type": content_type, "encoding": encoding}))
    )
    assert record.response is not None
    assert record.response.title == title


def test_redirect_chain(http_site: HTTPServer) -> None:
    url, hops = http_site.url("/r/3"), []
    for _ in range(http.MAX_REDIRECTS):
        record = fetch(url)
        assert record.failure is None and record.response is not None
        hops.append((record.response.code, url))
        location = http.redirect_location(record)
        if location is None:
            break
        assert http.validate_redirect(location) is None
        url = location
    assert hops == [(302, http_site.url(f"/r/{n}")) for n in (3, 2, 1)] + [(200, http_site.url("/final"))]


def test_endless_redirects_keep_pointing_onwards(http_site: HTTPServer) -> None:
    url = http_site.url("/loop/0")
    for n in range(1, http.MAX_REDIRECTS + 2):
        next_url = http.redirect_location(fetch(url))
        assert next_url == http_site.url(f"/loop/{n}")
        url = next_url


@pytest.mark.parametrize(
    ("path", "location", "failure"),
    [
        ("/broken", "http://", "http_invalid_redirect_location_host"),
        ("/dir/relative", "http://example.com:{port}/dir/next?x=1", None),
        ("/redirect?to=ftp://example.com/", "ftp://example.com/", http.UNSUPPORTED_REDIRECT_SCHEME),
        ("/no-location", None, None),
        ("/", None, None),
    ],
)
def test_redirect_locations_from_the_wire(
    http_site: HTTPServer, path: str, location: str | None, failure: str | None
) -> None:
    record = fetch(http_site.url(path))
    found = http.redirect_location(record)
    assert found == (location.format(port=http_site.port) if location else None)
    if found is not None:
        assert http.validate_redirect(found) == failure


def _transaction(code: int, location: str | None, failure: str | None = None) -> HTTPTransaction:
    headers = (("LOCATION", location),) if location is not None else ()
    response = HTTPResponse(code, (("Server", "x"), *headers), b"", False, 0, "")
    request = HTTPRequest("http://example.com/dir/page?q=1", "GET", ())
    return HTTPTransaction("192.0.2.1:80", request, None if failure else response, failure, 0.0, 0.1)


@pytest.mark.parametrize(
    ("code", "location", "expected"),
    [
        (302, "/final", "http://example.com/final"),
        (301, "next", "http://example.com/dir/next"),
        (303, "?x=2", "http://example.com/dir/page?x=2"),
        (307, "//cdn.example/x", "http://cdn.example/x"),
        (308, "https://other.example/", "https://other.example/"),
        (302, " /spaced ", "http://example.com/spaced"),
        (302, "http://", "http://"),
        (302, "///path", "http:///path"),
        (302, "http:/x", "http:/x"),
        (302, "http://[::1", "http://[::1"),
        (302, "", None),
        (302, None, None),
        (200, "/x", None),
        (304, "/x", None),
    ],
)
def test_redirect_location(code: int, location: str | None, expected: str | None) -> None:
    assert http.redirect_location(_transaction(code, location)) == expected


def test_no_redirect_location_without_response() -> None:
    assert http.redirect_location(_transaction(302, "/x", failure="connection_reset")) is None


@pytest.mark.parametrize(
    ("location", "failure"),
    [
        ("http://example.com/", None),
        ("https://[::1]:8443/x", None),
        ("HTTPS://bücher.example/", None),
        ("http://", "http_invalid_redirect_location_host"),
        ("http:///path", "http_invalid_redirect_location_host"),
        ("https://:443/", "http_invalid_redirect_location_host"),
        ("http:/x", "http_invalid_redirect_location_host"),
        ("http://[::1", "http_invalid_redirect_location_host"),
        ("http://exa mple/", "http_invalid_redirect_location_host"),
        ("http://example.com:99999/", "http_invalid_redirect_location_host"),
        ("ftp://example.com/", "unknown_failure: unsupported redirect scheme"),
        ("mailto:a@example.com", "unknown_failure: unsupported redirect scheme"),
        ("javascript:alert(1)", "unknown_failure: unsupported redirect scheme"),
        ("data:,x", "unknown_failure: unsupported redirect scheme"),
        ("about:blank", "unknown_failure: unsupported redirect scheme"),
        ("tel:+1", "unknown_failure: unsupported redirect scheme"),
        ("/relative", "unknown_failure: unsupported redirect scheme"),
        ("http:foo", "http_invalid_redirect_location_host"),
        ("https:", "http_invalid_redirect_location_host"),
        ("http://a b/", "http_invalid_redirect_location_host"),
        ("http://ex\x01ample/", "http_invalid_redirect_location_host"),
        ("http://example.com/\x7f", "http_invalid_redirect_location_host"),
        ("http://☃-⌘.com/", "http_invalid_redirect_location_host"),
        ("http://bü.example/é?q=ü", None),
    ],
)
def test_validate_redirect(location: str, failure: str | None) -> None:
    assert http.validate_redirect(location) == failure


_LOCATIONS = st.one_of(
    st.text(max_size=40),
    st.builds(
        str.__add__,
        st.sampled_from(
            ["http://", "https://", "http:", "https:", "//", "/", "http://[", "http://a.example:"]
        ),
        st.text(max_size=30),
    ),
)


@settings(max_examples=300, deadline=None)
@given(location=_LOCATIONS)
def test_any_location_is_judged_and_a_valid_one_is_measurable(location: str) -> None:
    """Whatever a Location says, judging it never raises, and one judged valid is a hop the steps take.

    The next hop's DNS step encodes its host, and its HTTP step builds a request for it (here
    to a closed port: refused at once). A TargetError there would end the measurement.
    """
    found = http.redirect_location(_transaction(302, location))
    if found is None or http.validate_redirect(found) is not None:
        return
    _, host, _ = urls.split_url(found)
    urls.encode_hostname(host)
    scheme = found.partition(":")[0].lower()
    port = closed_port()
    moved = urlunsplit(
        urlsplit(found)._replace(netloc=f"{host}:{port}" if ":" not in host else f"[{host}]:{port}")
    )
    assert fetch(moved, timeout=1.0).failure == "connection_refused", (scheme, moved)


def test_fetch_rejects_bad_input() -> None:
    with pytest.raises(TargetError, match=r"^unsupported URL scheme 'ftp'"):
        fetch("ftp://example.com/")
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        fetch("http://example.com/", address="example.com")
