"""Cookies across redirects: a hop's ``Set-Cookie`` goes with the next hops' requests.

OONI's probe and test helper keep one cookie jar per measurement (probe-cli
``webconnectivitylte/measurer.go``, ``secureflow.go``/``cleartextflow.go``, ``oohelperd/handler.go``),
so a site that sets a cookie on its redirect and requires it is measured as a browser sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from probe.control import build_request, call
from probe.helper.app import HelperSettings
from probe.helper.policy import AddressPolicy
from probe.steps import http, tls
from probe.steps.clock import relative_clock
from probe.webconnectivity import MeasureConfig, measure
from tests.servers.helper_server import running_helper
from tests.servers.http_server import HTTPServer, http_server


@pytest.fixture(scope="module")
def site() -> Iterator[HTTPServer]:
    with http_server() as server:
        yield server


def test_a_cookie_set_on_a_redirect_goes_with_the_next_hop(site: HTTPServer) -> None:
    """The gate sets its cookie on a 302 to itself and lets in only who sends it back: two hops,
    the second with the cookie recorded in its request headers (was: too_many_redirects)."""
    url = f"http://127.0.0.1:{site.port}/cookie-gate"
    config = MeasureConfig(allow_loopback=True, use_system_resolver=False, control_url=None)
    keys = asyncio.run(measure(url, config=config)).test_keys
    assert keys.http_experiment_failure is None
    hops = list(reversed(keys.requests))  # OONI order: the last request first
    assert [(hop.request.url, hop.response and hop.response.code) for hop in hops] == [
        (url, 302),
        (f"http://127.0.0.1:{site.port}/cookie-gate", 200),
    ]
    first, second = (dict(hop.request.headers_list) for hop in hops)
    assert "Cookie" not in first
    assert second["Cookie"] == "gate=open"
    assert hops[1].request.headers_list[-1] == ("Cookie", "gate=open")  # recorded as sent: last
    assert hops[1].response is not None and hops[1].response.body == b"welcome"


def test_the_control_carries_cookies_too(site: HTTPServer) -> None:
    """OONI's helper keeps a jar per request: the control sees the gate's page, not a loop."""
    url = f"http://127.0.0.1:{site.port}/cookie-gate"
    settings = HelperSettings(policy=AddressPolicy.allowing(["127.0.0.0/8"]))
    request = build_request(url, ["127.0.0.1"], port=site.port)
    with running_helper(settings) as helper:
        response, failure = asyncio.run(
            call(helper, request, timeout=10, ssl_context=tls.make_ssl_context(alpn=()))
        )
    assert failure is None and response is not None
    assert (response.http_request.failure, response.http_request.status_code) == (None, 200)
    assert response.http_request.body_length == len(b"welcome")


def test_fetch_sends_and_stores_cookies(site: HTTPServer) -> None:
    """One jar over two fetches pinned to loopback under a host name: the Set-Cookie of the
    first is stored under the name (not the address) and sent, recorded, with the second."""
    jar = http.Cookies()

    async def fetch(url: str) -> http.HTTPTransaction:
        return await http.fetch(
            url,
            address="127.0.0.1",
            ssl_context=tls.make_ssl_context(alpn=()),
            timeout=5,
            clock=relative_clock(),
            cookies=jar,
        )

    first = asyncio.run(fetch(site.url("/set-cookie?cookie=sid%3D42%3B%20Path%3D%2F", host="Example.COM")))
    second = asyncio.run(fetch(site.url("/final", host="example.com")))
    other = asyncio.run(fetch(site.url("/final", host="other.example")))
    assert first.response is not None and first.response.code == 200
    assert "Cookie" not in dict(first.request.headers_list)
    assert dict(second.request.headers_list)["Cookie"] == "sid=42"
    assert "Cookie" not in dict(other.request.headers_list)
    assert [dict(r.headers).get("Cookie") for r in site.requests[-3:]] == [None, "sid=42", None]


def test_without_a_jar_nothing_is_sent_or_kept(site: HTTPServer) -> None:
    async def fetch(url: str) -> http.HTTPTransaction:
        return await http.fetch(
            url,
            address="127.0.0.1",
            ssl_context=tls.make_ssl_context(alpn=()),
            timeout=5,
            clock=relative_clock(),
        )

    asyncio.run(fetch(site.url("/set-cookie?cookie=sid%3D42")))
    assert "Cookie" not in dict(asyncio.run(fetch(site.url("/final"))).request.headers_list)


@pytest.mark.parametrize(
    ("set_at", "set_cookie", "next_url", "sent"),
    [
        # host-only (no Domain): the same host, any port, any scheme
        ("http://example.com/", "a=1", "http://example.com/x", "a=1"),
        ("http://example.com:8080/", "a=1", "https://example.com:9090/", "a=1"),
        ("http://example.com/", "a=1", "http://www.example.com/", None),
        ("http://www.example.com/", "a=1", "http://example.com/", None),
        ("http://127.0.0.1:1/", "a=1", "http://127.0.0.1:2/", "a=1"),
        ("http://127.0.0.1/", "a=1", "http://127.0.0.2/", None),
        # Domain: that domain and below, and only a domain the host is in
        ("http://www.example.com/", "a=1; Domain=example.com", "http://example.com/", "a=1"),
        ("http://www.example.com/", "a=1; Domain=.example.com", "http://x.example.com/", "a=1"),
        ("http://example.com/", "a=1; Domain=other.org", "http://other.org/", None),
        ("http://example.com/", "a=1; Domain=com", "http://other.com/", None),
        ("http://example.com/", "a=1; Domain=www.example.com", "http://www.example.com/", None),
        # Path: an explicit one, and the default (the directory of the request path)
        ("http://example.com/", "a=1; Path=/private", "http://example.com/public", None),
        ("http://example.com/", "a=1; Path=/private", "http://example.com/private/x", "a=1"),
        ("http://example.com/dir/page", "a=1", "http://example.com/dir/other", "a=1"),
        ("http://example.com/dir/page", "a=1", "http://example.com/", None),
        # Secure: https only
        ("https://example.com/", "a=1; Secure", "http://example.com/", None),
        ("https://example.com/", "a=1; Secure", "https://example.com/", "a=1"),
        # expiry
        ("http://example.com/", "a=1; Max-Age=0", "http://example.com/", None),
        ("http://example.com/", "a=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT", "http://example.com/", None),
        ("http://example.com/", "a=1; Max-Age=3600", "http://example.com/", "a=1"),
        # IDNA: the jar sees the A-label the request carries
        ("http://xn--mnchen-3ya.de/", "a=1", "http://xn--mnchen-3ya.de/x", "a=1"),
    ],
)
def test_cookie_rules(set_at: str, set_cookie: str, next_url: str, sent: str | None) -> None:
    jar = http.Cookies()
    jar.store(set_at, [set_cookie])
    assert jar.header(next_url) == sent


def test_cookies_accumulate_and_are_replaced() -> None:
    jar = http.Cookies()
    jar.store("http://example.com/", ["a=1", "b=2"])
    jar.store("http://example.com/", ["a=3"])
    assert jar.header("http://example.com/") == "a=3; b=2"
    jar.store("http://example.com/", ["b=gone; Max-Age=0"])
    assert (jar.header("http://example.com/"), len(jar)) == ("a=3", 1)
