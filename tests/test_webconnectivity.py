"""One URL end to end (probe.webconnectivity.measure) against real servers on 127.0.0.1.

The sites (tests/servers/http_server.py) are reached through the scripted loopback resolver
(``use_system_resolver=False``) or by IP literal, so no test leaves loopback. The verdict keys
belong to the analysis; here only what holds whatever it decides is asserted: without a
control, ``control_failure`` is set and ``blocking``/``accessible`` stay ``None``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

import pytest

from probe import webconnectivity
from probe.model import HTTPTransaction, Measurement
from probe.serialize import to_json
from probe.steps import failures, http
from probe.steps.dns import ResolverSpec
from probe.webconnectivity import MeasureConfig
from tests.servers.dns_server import ScriptedDNSServer
from tests.servers.http_server import PAGE, HTTPServer, Request
from tests.servers.tcp_server import Behaviour, closed_port, tcp_server

TITLE = "Hello & Wörld"


def measure(
    url: str,
    resolver: ScriptedDNSServer | None = None,
    *,
    timeout: float = 3.0,
    ca_file: Path | None = None,
    **options: Any,
) -> Measurement:
    """Measure *url* through *resolver* only (no system resolver), connecting to loopback."""
    options.setdefault("use_system_resolver", False)
    config = MeasureConfig(
        resolvers=(ResolverSpec("udp", resolver.host, resolver.port),) if resolver else (),
        allow_loopback=True,
        ca_file=ca_file,
        **options,
    ).with_timeout(timeout)
    return asyncio.run(webconnectivity.measure(url, config=config))


def depths(steps: tuple[Any, ...]) -> list[int]:
    """The hop (``depth``) of each step, in order."""
    return [step.depth for step in steps]


def assert_no_verdict(m: Measurement) -> None:
    """No control: OONI's rules decide no blocking (reference §1.5).

    Undecided, ``(None, None)``, or OONI's ``(False, True)`` of rule 1.1 (a page over verified
    TLS needs no control) and 5.1a (a failed lookup without a control, sic). The configured
    resolver stands in for the system one here, so its lookups are the classic observations.
    """
    assert m.test_keys.control is None
    assert m.test_keys.control_failure
    assert (m.test_keys.blocking, m.test_keys.accessible) in ((None, None), (False, True))


def only_request(m: Measurement) -> HTTPTransaction:
    (request,) = m.test_keys.requests
    return request


def test_plain_http(loopback_dns: ScriptedDNSServer, http_site: HTTPServer) -> None:
    url = http_site.url("/")
    m = measure(url, loopback_dns)
    keys = m.test_keys
    assert [(q.engine, q.resolver_address, q.hostname, q.query_type) for q in keys.queries] == [
        ("udp", loopback_dns.address, "example.com", "A"),
        ("udp", loopback_dns.address, "example.com", "AAAA"),
    ]
    assert keys.queries[0].addresses == ("127.0.0.1",)
    assert keys.queries[0].failure is None
    assert keys.queries[1].failure == "dns_no_answer"  # an A-only name
    assert depths(keys.queries) == [0, 0]
    (connect,) = keys.tcp_connect
    assert (connect.ip, connect.port, connect.status.success, connect.status.failure) == (
        "127.0.0.1",
        http_site.port,
        True,
        None,
    )
    assert keys.tls_handshakes == ()
    request = only_request(m)
    assert (request.failure, request.address, request.request.url) == (
        None,
        f"127.0.0.1:{http_site.port}",
        url,
    )
    assert request.response is not None
    assert (request.response.code, request.response.body, request.response.title) == (200, PAGE, TITLE)
    assert request.response.body_is_truncated is False
    assert depths((connect, request)) == [0, 0]
    assert ("Host", f"example.com:{http_site.port}") in last_request(http_site, "/").headers
    assert keys.http_experiment_failure is None
    assert (m.input, m.test_name, m.probe_ip) == (url, "web_connectivity", "127.0.0.1")
    assert_no_verdict(m)


def last_request(server: HTTPServer, target: str) -> Request:
    """The last request for *target*: the TCP step's own connection is recorded too (with no
    request line), and its handler thread may finish after the fetch's."""
    return [r for r in server.requests if r.target == target][-1]


def test_https_with_the_real_sni_and_the_ca_file(
    loopback_dns: ScriptedDNSServer, https_site: HTTPServer, ca_file: Path
) -> None:
    m = measure(https_site.url("/"), loopback_dns, ca_file=ca_file)
    keys = m.test_keys
    (connect,) = keys.tcp_connect
    (handshake,) = keys.tls_handshakes
    assert (handshake.failure, handshake.server_name, handshake.address) == (
        None,
        "example.com",
        f"127.0.0.1:{https_site.port}",
    )
    assert handshake.tls_version in ("TLSv1.2", "TLSv1.3")
    (cert,) = handshake.peer_certificates
    assert "DNS:example.com" in cert.subject_alt_names
    assert handshake.transaction_id == connect.transaction_id  # one endpoint, one transaction
    request = only_request(m)
    assert request.failure is None and request.response is not None
    assert (request.response.code, request.response.title, request.alpn) == (200, TITLE, "http/1.1")
    seen = last_request(https_site, "/")
    assert seen.sni == "example.com"
    assert ("Host", f"example.com:{https_site.port}") in seen.headers
    assert keys.http_experiment_failure is None
    assert_no_verdict(m)


def test_https_without_the_ca_file_is_an_unknown_authority(
    loopback_dns: ScriptedDNSServer, https_site: HTTPServer
) -> None:
    m = measure(https_site.url("/"), loopback_dns)  # the system store does not know the test CA
    (handshake,) = m.test_keys.tls_handshakes
    assert (handshake.failure, handshake.server_name) == ("ssl_unknown_authority", "example.com")
    assert m.test_keys.requests == ()


@pytest.mark.parametrize("redirects", [1, 3, 10])
def test_redirects_measure_every_hop_again(
    loopback_dns: ScriptedDNSServer, http_site: HTTPServer, redirects: int
) -> None:
    m = measure(http_site.url(f"/r/{redirects}"), loopback_dns)
    keys = m.test_keys
    hops = list(range(redirects + 1))
    # Requests in reverse time order, as OONI's: the final page first.
    expected = [f"/r/{n}" for n in range(redirects, 0, -1)] + ["/final"]
    assert [r.request.url for r in keys.requests] == [http_site.url(p) for p in reversed(expected)]
    assert depths(keys.requests) == hops[::-1]
    assert [r.response.code if r.response else None for r in keys.requests] == [200] + [302] * redirects
    assert all(r.failure is None for r in keys.requests)
    assert depths(keys.queries) == [n for n in hops for _ in ("A", "AAAA")]  # DNS again on each hop
    assert depths(keys.tcp_connect) == hops
    assert all(c.status.success for c in keys.tcp_connect)
    assert keys.http_experiment_failure is None
    assert_no_verdict(m)


@pytest.mark.parametrize("path", ["/r/11", "/loop/0"])
def test_too_many_redirects_fail_the_last_request(
    loopback_dns: ScriptedDNSServer, http_site: HTTPServer, path: str
) -> None:
    m = measure(http_site.url(path), loopback_dns)
    keys = m.test_keys
    last, *earlier = keys.requests
    assert len(keys.requests) == http.MAX_REDIRECTS + 1
    assert depths(keys.requests) == list(range(http.MAX_REDIRECTS, -1, -1))
    assert last.failure == failures.TOO_MANY_REDIRECTS == "unknown_failure: stopped after too many redirects"
    assert last.response is not None and last.response.code == 302  # what arrived is kept
    assert [r.failure for r in earlier] == [None] * http.MAX_REDIRECTS
    assert max(depths(keys.queries)) == http.MAX_REDIRECTS  # the 12th hop is never started
    assert_no_verdict(m)


def test_broken_location_ends_the_chain(loopback_dns: ScriptedDNSServer, http_site: HTTPServer) -> None:
    m = measure(http_site.url("/broken"), loopback_dns)
    request = only_request(m)
    assert request.failure == "http_invalid_redirect_location_host"
    assert request.response is not None and request.response.code == 302
    assert depths(m.test_keys.queries) == [0, 0]  # no hop to "http://"
    assert_no_verdict(m)


UNSUPPORTED = http.UNSUPPORTED_REDIRECT_SCHEME
INVALID_HOST = failures.HTTP_INVALID_REDIRECT_LOCATION_HOST
HOSTILE_LOCATIONS: list[tuple[bytes, str]] = [
    (b"mailto:x", UNSUPPORTED),
    (b"javascript:alert(1)", UNSUPPORTED),
    (b"data:,x", UNSUPPORTED),
    (b"about:blank", UNSUPPORTED),
    (b"tel:+1", UNSUPPORTED),
    (b"http:foo", INVALID_HOST),
    (b"https:", INVALID_HOST),
    (b"http://[::1", INVALID_HOST),
    (b"http://a b/", INVALID_HOST),
    ("http://☃-⌘.com/".encode(), INVALID_HOST),  # UTF-8, but no valid IDNA name
    (b"http://ex\x01ample/", INVALID_HOST),  # control characters
    (b"http://a\x7fb/", INVALID_HOST),
]
"""``Location`` bytes as sent (tests/servers/http_server.py ``/redirect-bytes``) → the hop's failure.

httpx's client parsed each of them before the probe could (to offer ``next_request``): the
first six raised ``InvalidURL`` out of the measurement, the others became
``http_protocol_error`` with the 302 response lost."""


def redirect_to(server: HTTPServer, location: bytes, host: str = "example.com") -> str:
    return server.url(f"/redirect-bytes?to={quote_from_bytes(location, safe='')}", host=host)


@pytest.mark.parametrize(
    ("location", "failure"), HOSTILE_LOCATIONS, ids=[repr(loc)[2:-1] for loc, _ in HOSTILE_LOCATIONS]
)
def test_hostile_location_is_a_failure_on_the_hop(
    loopback_dns: ScriptedDNSServer, http_site: HTTPServer, location: bytes, failure: str
) -> None:
    m = measure(redirect_to(http_site, location), loopback_dns)
    request = only_request(m)
    assert request.failure == failure
    assert request.response is not None and request.response.code == 302  # what arrived is kept
    assert ("Location", location.decode("utf-8", "replace")) in request.response.headers_list
    assert depths(m.test_keys.queries) == [0, 0]  # no next hop
    assert_no_verdict(m)


def test_a_location_that_is_not_http_is_a_protocol_error(
    loopback_dns: ScriptedDNSServer, http_site: HTTPServer
) -> None:
    """A NUL in a header value is not HTTP: h11 refuses the whole response (no exception)."""
    m = measure(redirect_to(http_site, b"http://example.com/\x00"), loopback_dns)
    request = only_request(m)
    assert (request.failure, request.response) == ("http_protocol_error", None)


@pytest.mark.parametrize(
    ("location", "hostname"),
    [
        ("http://bü.example/".encode(), "xn--b-eha.example"),  # UTF-8
        (b"http://ex\xe9mple.com/", "xn--exmple-cva.com"),  # not UTF-8: read as Latin-1, as httpx does
    ],
)
def test_non_ascii_location_is_followed(
    loopback_dns: ScriptedDNSServer, http_site: HTTPServer, location: bytes, hostname: str
) -> None:
    m = measure(redirect_to(http_site, location), loopback_dns)
    request = only_request(m)
    assert request.failure is None and request.response is not None and request.response.code == 302
    next_hop = [q for q in m.test_keys.queries if q.depth == 1]
    assert [(q.hostname, q.failure) for q in next_hop] == [(hostname, "dns_nxdomain_error")] * 2


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_refused_port_is_recorded(loopback_dns: ScriptedDNSServer, scheme: str) -> None:
    port = closed_port()
    m = measure(f"{scheme}://example.com:{port}/", loopback_dns)
    keys = m.test_keys
    (connect,) = keys.tcp_connect
    assert (connect.ip, connect.port, connect.status.success, connect.status.failure) == (
        "127.0.0.1",
        port,
        False,
        "connection_refused",
    )
    assert (keys.tls_handshakes, keys.requests) == ((), ())
    assert m.test_runtime >= 0
    assert_no_verdict(m)


def test_refused_ip_literal_is_the_http_experiment_failure() -> None:
    # An IP literal is a classic (getaddrinfo-equivalent) endpoint, which the verdict rules read.
    m = measure(f"http://127.0.0.1:{closed_port()}/")
    assert [c.status.failure for c in m.test_keys.tcp_connect] == ["connection_refused"]
    assert m.test_keys.http_experiment_failure == "connection_refused"
    assert_no_verdict(m)


@pytest.mark.parametrize(("scheme", "step"), [("http", "http"), ("https", "tls")])
def test_silent_listener_times_out_within_the_budget(
    loopback_dns: ScriptedDNSServer, ca_file: Path, scheme: str, step: str
) -> None:
    with tcp_server("accept") as port:
        started = time.monotonic()
        m = measure(f"{scheme}://example.com:{port}/", loopback_dns, timeout=0.5, ca_file=ca_file)
        elapsed = time.monotonic() - started
    keys = m.test_keys
    assert [c.status.success for c in keys.tcp_connect] == [True]
    if step == "tls":
        assert [h.failure for h in keys.tls_handshakes] == ["generic_timeout_error"]
        assert keys.requests == ()
    else:
        assert keys.tls_handshakes == ()
        assert only_request(m).failure == "generic_timeout_error"
    assert elapsed < 1.5
    assert_no_verdict(m)


@pytest.mark.parametrize(
    ("behaviour", "failure"),
    [("reset_after_hello", "connection_reset"), ("close_after_hello", "eof_error")],
)
def test_interference_after_the_client_hello(
    loopback_dns: ScriptedDNSServer, ca_file: Path, behaviour: Behaviour, failure: str
) -> None:
    with tcp_server(behaviour) as port:
        m = measure(f"https://example.com:{port}/", loopback_dns, ca_file=ca_file)
    (handshake,) = m.test_keys.tls_handshakes
    assert (handshake.failure, handshake.server_name, handshake.address) == (
        failure,
        "example.com",
        f"127.0.0.1:{port}",
    )
    assert m.test_keys.requests == ()
    assert_no_verdict(m)


def test_nxdomain_from_the_resolver(loopback_dns: ScriptedDNSServer, http_site: HTTPServer) -> None:
    m = measure(http_site.url("/", host="nx.example"), loopback_dns)
    keys = m.test_keys
    assert [(q.query_type, q.rcode, q.failure) for q in keys.queries] == [
        ("A", "NXDOMAIN", "dns_nxdomain_error"),
        ("AAAA", "NXDOMAIN", "dns_nxdomain_error"),
    ]
    assert (keys.tcp_connect, keys.tls_handshakes, keys.requests) == ((), (), ())
    assert_no_verdict(m)


def test_nxdomain_is_the_dns_experiment_failure(
    monkeypatch: pytest.MonkeyPatch, loopback_dns: ScriptedDNSServer, http_site: HTTPServer
) -> None:
    """``dns_experiment_failure`` reads the system lookup (OONI's classic analysis).

    A real NXDOMAIN from getaddrinfo would come from the nameserver of /etc/resolv.conf, off
    loopback; with ``AI_NUMERICHOST`` the C library itself fails the name with EAI_NONAME,
    what it returns for NXDOMAIN, and nothing leaves the machine. The scripted resolver says
    NXDOMAIN too, as a censor's resolver would.
    """
    real = socket.getaddrinfo

    def numeric_only(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real(host, port, *args, **{**kwargs, "flags": socket.AI_NUMERICHOST})

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
    m = measure(http_site.url("/", host="nx.example"), loopback_dns, use_system_resolver=True)
    keys = m.test_keys
    assert [(q.engine, q.failure) for q in keys.queries] == [
        ("getaddrinfo", "dns_nxdomain_error"),
        ("udp", "dns_nxdomain_error"),
        ("udp", "dns_nxdomain_error"),
    ]
    assert keys.queries[0].getaddrinfo_error == socket.EAI_NONAME
    assert keys.queries[0].classic
    assert keys.dns_experiment_failure == "dns_nxdomain_error"
    assert (keys.tcp_connect, keys.requests) == ((), ())
    # Not null/null: a failed lookup without a control is OONI's (false, true) (rule 5.1a, sic).
    assert keys.control_failure


def test_system_resolver_with_a_name_from_etc_hosts(http_site: HTTPServer) -> None:
    # localhost comes from /etc/hosts: getaddrinfo answers without asking any nameserver.
    m = measure(http_site.url("/final", host="localhost"), use_system_resolver=True)
    (query,) = m.test_keys.queries
    assert (query.engine, query.hostname, query.failure) == ("getaddrinfo", "localhost", None)
    assert "127.0.0.1" in query.addresses
    assert (query.depth, query.classic, query.tags) == (0, True, ())
    request = next(r for r in m.test_keys.requests if r.response is not None)
    assert request.address == f"127.0.0.1:{http_site.port}"
    assert (request.depth, request.classic, request.tags) == (0, True, ())
    assert request.response is not None and request.response.body == b"final"


@pytest.mark.parametrize("host", ["ЯНДЕКС.РФ", "яндекс.рф"])
def test_idna_host(loopback_dns: ScriptedDNSServer, http_site: HTTPServer, host: str) -> None:
    before = len(loopback_dns.queries)
    m = measure(http_site.url("/final", host=host), loopback_dns)
    keys = m.test_keys
    assert {q.hostname for q in keys.queries} == {"xn--d1acpjx3f.xn--p1ai"}
    assert {str(q.question[0].name) for _, q in loopback_dns.queries[before:]} == {"xn--d1acpjx3f.xn--p1ai."}
    assert keys.queries[0].addresses == ("127.0.0.1",)
    request = only_request(m)
    assert request.response is not None and request.response.body == b"final"
    assert ("Host", f"xn--d1acpjx3f.xn--p1ai:{http_site.port}") in last_request(http_site, "/final").headers


def test_ip_literal_needs_no_dns(loopback_dns: ScriptedDNSServer, http_site: HTTPServer) -> None:
    before = len(loopback_dns.queries)
    m = measure(http_site.url("/final", host="127.0.0.1"), loopback_dns, use_system_resolver=True)
    assert m.test_keys.queries == ()
    assert len(loopback_dns.queries) == before
    assert [c.ip for c in m.test_keys.tcp_connect] == ["127.0.0.1"]
    request = only_request(m)
    assert request.response is not None and request.response.body == b"final"


@pytest.mark.parametrize(
    ("size", "truncated"), [(http.BODY_LIMIT, False), (http.BODY_LIMIT + 1, True), (600_000, True)]
)
def test_body_over_512_kib_is_truncated(http_site: HTTPServer, size: int, truncated: bool) -> None:
    m = measure(http_site.url(f"/size/{size}", host="127.0.0.1"))
    response = only_request(m).response
    assert response is not None
    assert http.BODY_LIMIT == 512 * 1024
    assert (response.body_is_truncated, response.body_length) == (truncated, min(size, http.BODY_LIMIT))
    assert response.body == b"a" * min(size, http.BODY_LIMIT)


def test_json_has_ooni_field_names(
    loopback_dns: ScriptedDNSServer, https_site: HTTPServer, ca_file: Path
) -> None:
    m = measure(https_site.url("/r/1"), loopback_dns, ca_file=ca_file)
    doc = json.loads(to_json(m))
    assert {
        "input",
        "measurement_start_time",
        "test_start_time",
        "test_runtime",
        "probe_asn",
        "probe_cc",
        "probe_ip",
        "software_name",
        "software_version",
        "test_name",
        "test_version",
        "data_format_version",
        "annotations",
        "test_keys",
    } <= set(doc)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", doc["measurement_start_time"])
    assert (doc["probe_asn"], doc["probe_cc"], doc["test_name"]) == ("AS0", "ZZ", "web_connectivity")
    keys = doc["test_keys"]
    assert {
        "queries",
        "tcp_connect",
        "tls_handshakes",
        "requests",
        "control_failure",
        "dns_experiment_failure",
        "http_experiment_failure",
        "blocking",
        "accessible",
    } <= set(keys)
    query = keys["queries"][0]
    assert {"answers", "engine", "failure", "hostname", "query_type", "resolver_address", "t0", "t"} <= set(
        query
    )
    assert query["answers"] == [
        {"answer_type": "A", "ipv4": "127.0.0.1", "ttl": 300, "asn": 0, "as_org_name": ""}
    ]
    connect = keys["tcp_connect"][0]
    assert connect["status"] == {"success": True, "failure": None}
    assert (connect["ip"], connect["port"]) == ("127.0.0.1", https_site.port)
    handshake = keys["tls_handshakes"][0]
    assert {"address", "server_name", "cipher_suite", "negotiated_protocol", "tls_version", "failure"} <= set(
        handshake
    )
    assert handshake["peer_certificates"][0]["format"] == "base64"
    final, first = keys["requests"]
    assert first["request"]["url"] == https_site.url("/r/1")
    assert first["request"]["headers"]["Host"] == f"example.com:{https_site.port}"
    assert first["response"]["code"] == 302
    assert (final["response"]["code"], final["response"]["body"]) == (200, "final")
    assert final["response"]["body_is_truncated"] is False
    assert final["response"]["headers"]["Content-Type"] == "text/plain"
    assert (final["tags"], first["tags"]) == (["depth=1"], ["depth=0"])
    assert (keys["blocking"], keys["accessible"]) == (False, True)  # rule 1.1: verified HTTPS


def _ip_addresses(text: str) -> set[str]:
    """Every IPv4/IPv6 address standing alone in *text* (not a version like ``Chrome/116.0.0.0``)."""
    found = set()
    for token in re.findall(r"(?<![\w/.:])[0-9a-fA-F:.]*[.:][0-9a-fA-F:.]+", text):
        for candidate in (token, token.rsplit(":", 1)[0]):  # ip, or ip:port
            try:
                found.add(str(ipaddress.ip_address(candidate)))
            except ValueError:
                continue
    return found


@pytest.mark.parametrize("path", ["/", "/r/2", "/reset"])
def test_no_address_but_loopback_in_the_record(
    loopback_dns: ScriptedDNSServer, http_site: HTTPServer, path: str
) -> None:
    m = measure(http_site.url(path), loopback_dns)
    assert m.probe_ip == "127.0.0.1"
    doc = json.loads(to_json(m))
    assert doc["probe_ip"] == "127.0.0.1"
    assert _ip_addresses(to_json(m)) == {"127.0.0.1"}
