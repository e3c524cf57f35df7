"""The helper over real HTTP on loopback: what it measures, what it refuses, how it holds up."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from probe.helper.app import HelperSettings, Limits
from probe.helper.geo import Geo, load_country_database
from probe.helper.measure import HelperConfig
from probe.helper.policy import AddressPolicy
from probe.ipinfo import load_asn_database
from probe.steps import dns
from tests.servers.dns_server import Reply, ScriptedDNSServer
from tests.servers.helper_server import running_helper
from tests.servers.http_server import PAGE, http_server

LOOPBACK = AddressPolicy.allowing(["127.0.0.0/8"])


def post(url: str, body: object, **kwargs: object) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url, content=content, timeout=20, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def resolver() -> Iterator[ScriptedDNSServer]:
    script = {"site.test": Reply(a=("127.0.0.1",)), "inside.test": Reply(a=("127.0.0.1",))}
    with ScriptedDNSServer(script) as server:
        yield server


def settings_for(resolver: ScriptedDNSServer, **changes: object) -> HelperSettings:
    config = HelperConfig(resolvers=(dns.parse_resolver(resolver.address),), http_timeout=3.0)
    return HelperSettings(**{"config": config, "policy": LOOPBACK, **changes})  # type: ignore[arg-type]


def test_measures_an_http_url_like_oonis_helper(resolver: ScriptedDNSServer) -> None:
    with http_server() as site, running_helper(settings_for(resolver)) as helper:
        url = site.url("/", host="site.test")
        endpoint = f"127.0.0.1:{site.port}"
        reply = post(helper, {"http_request": url, "http_request_headers": {}, "tcp_connect": [endpoint]})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    headers = body["http_request"].pop("headers")
    assert body == {
        "tcp_connect": {endpoint: {"status": True, "failure": None}},
        "tls_handshake": {},
        "http_request": {
            "body_length": len(PAGE),
            "failure": None,
            "title": "Hello & Wörld",
            "status_code": 200,
            "discovered_h3_endpoint": "",
        },
        "dns": {"failure": None, "addrs": ["127.0.0.1"]},
        "ip_info": {"127.0.0.1": {"asn": 0, "flags": 3}},
    }
    assert headers["X-Mixed-CASE"] == "Yes"
    assert headers["set-cookie"] == "a=1"  # first value wins, as OONI's


def test_https_handshake_and_valid_for_domain_flag(
    resolver: ScriptedDNSServer, ca: trustme.CA, ca_file: Path
) -> None:
    cert = ca.issue_cert("site.test")
    settings = HelperSettings(
        config=HelperConfig(resolvers=(dns.parse_resolver(resolver.address),), ca_file=ca_file),
        policy=LOOPBACK,
    )
    with http_server(cert) as site, running_helper(settings) as helper:
        endpoint = f"127.0.0.1:{site.port}"
        body = post(
            helper, {"http_request": site.url("/", host="site.test"), "tcp_connect": [endpoint]}
        ).json()
    assert body["tls_handshake"] == {endpoint: {"server_name": "site.test", "status": True, "failure": None}}
    assert body["ip_info"]["127.0.0.1"]["flags"] == 1 | 2 | 8
    assert body["http_request"]["status_code"] == 200


def test_nxdomain_uses_the_legacy_name(resolver: ScriptedDNSServer) -> None:
    with running_helper(settings_for(resolver)) as helper:
        body = post(helper, {"http_request": "http://missing.test/", "tcp_connect": []}).json()
    assert body["dns"] == {"failure": "dns_name_error", "addrs": []}
    assert body["http_request"] == {
        "body_length": -1,
        "failure": "dns_nxdomain_error",
        "title": "",
        "headers": {},
        "status_code": -1,
        "discovered_h3_endpoint": "",
    }
    assert body["tcp_connect"] == {}


FORBIDDEN = [
    ("127.0.0.1:80", "loopback"),
    ("[::1]:80", "loopback"),
    ("[::ffff:7f00:1]:80", "loopback"),  # IPv4-mapped 127.0.0.1
    ("10.1.2.3:80", "private"),
    ("192.168.1.1:443", "private"),
    ("172.16.0.1:443", "private"),
    ("[fd00::1]:443", "private"),
    ("169.254.169.254:80", "link-local"),
    ("[fe80::1]:80", "link-local"),
    ("0.0.0.0:80", "unspecified"),
    ("224.0.0.1:80", "multicast"),
    ("100.64.0.1:80", "bogon"),
    ("240.0.0.1:80", "private"),  # Python counts 240/4 as private: refused either way
]


@pytest.mark.parametrize(("endpoint", "reason"), FORBIDDEN)
def test_refuses_forbidden_endpoints(endpoint: str, reason: str) -> None:
    with running_helper(HelperSettings()) as helper:
        reply = post(helper, {"http_request": "http://example.com/", "tcp_connect": [endpoint]})
    assert reply.status_code == 400
    assert reply.json() == {"error": f"forbidden target: tcp_connect endpoint {endpoint} is {reason}"}


@pytest.mark.parametrize(
    ("url", "host", "reason"),
    [
        ("http://127.0.0.1:6379/", "127.0.0.1", "loopback"),
        ("http://[::1]/", "::1", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254", "link-local"),
        ("https://10.0.0.1/", "10.0.0.1", "private"),
    ],
)
def test_refuses_forbidden_url_hosts(url: str, host: str, reason: str) -> None:
    with running_helper(HelperSettings()) as helper:
        reply = post(helper, {"http_request": url, "tcp_connect": []})
    assert reply.status_code == 400
    assert reply.json() == {"error": f"forbidden target: http_request host {host} is {reason}"}


def test_a_name_resolving_to_a_forbidden_address_is_never_dialled(resolver: ScriptedDNSServer) -> None:
    settings = settings_for(resolver, policy=AddressPolicy())  # loopback not allowed
    with http_server() as site, running_helper(settings) as helper:
        body = post(helper, {"http_request": site.url("/", host="inside.test"), "tcp_connect": []}).json()
        assert site.requests == []
    assert body["http_request"]["failure"] == "dns_bogon_error"
    assert body["tcp_connect"] == {}
    assert body["ip_info"] == {"127.0.0.1": {"asn": 0, "flags": 2 | 4}}


def test_a_redirect_to_a_forbidden_address_is_not_followed(resolver: ScriptedDNSServer) -> None:
    settings = settings_for(resolver, policy=AddressPolicy.allowing(["127.0.0.1/32"]))
    with http_server() as site, running_helper(settings) as helper:
        target = f"http://127.0.0.2:{site.port}/final"
        url = site.url(f"/redirect?to={target}", host="site.test")
        body = post(helper, {"http_request": url, "tcp_connect": []}).json()
    assert body["http_request"]["failure"] == "dns_bogon_error"


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            b"{bad",
            "invalid JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (b"\xff\xfe", "invalid JSON: Expecting value: line 1 column 1 (char 0)"),
        (
            b"\xc3(",
            "invalid JSON: 'utf-8' codec can't decode byte 0xc3 in position 0: invalid continuation byte",
        ),
        (b"[]", "request: expected a JSON object"),
        (b"{}", "http_request: expected a non-empty string"),
        (b'{"http_request": 5}', "http_request: expected a non-empty string"),
        (
            b'{"http_request": "ftp://x/"}',
            "http_request: unsupported URL scheme 'ftp' in 'ftp://x/': only http and https",
        ),
        (
            b'{"http_request": "http://x/", "tcp_connect": "1.2.3.4:80"}',
            "tcp_connect: expected a list of 'ip:port' strings",
        ),
        (
            b'{"http_request": "http://x/", "tcp_connect": ["x.com:80"]}',
            "tcp_connect: 'x.com:80': not an IP address and port",
        ),
        (
            b'{"http_request": "http://x/", "tcp_connect": ["1.2.3.4:0"]}',
            "tcp_connect: '1.2.3.4:0': port must be 1-65535",
        ),
        (
            b'{"http_request": "http://x/", "http_request_headers": {"a b": ["1"]}}',
            "http_request_headers['a b']: invalid header name",
        ),
        (b'{"http_request": "http://x/", "x_quic_enabled": "yes"}', "x_quic_enabled: expected true or false"),
    ],
)
def test_malformed_requests_get_a_clear_400(body: bytes, error: str) -> None:
    with running_helper(HelperSettings()) as helper:
        reply = post(helper, body)
    assert reply.status_code == 400
    assert reply.json() == {"error": error}


def test_oversized_bodies_are_refused_declared_or_streamed() -> None:
    settings = HelperSettings(limits=Limits(max_request_bytes=1000))
    big = b"{" + b" " * 2000 + b"}"

    def chunks() -> Iterator[bytes]:
        yield from (big[i : i + 100] for i in range(0, len(big), 100))

    with running_helper(settings) as helper:
        declared = httpx.post(helper, content=big, timeout=10)
        streamed = httpx.post(helper, content=chunks(), timeout=10)
        still_up = httpx.get(helper + "whoami", timeout=10)
    assert "content-length" not in streamed.request.headers
    for reply in (declared, streamed):
        assert reply.status_code == 413
        assert reply.json() == {"error": "request body larger than 1000 bytes"}
    assert still_up.status_code == 200


def test_a_flood_is_bounded_and_the_helper_survives(resolver: ScriptedDNSServer) -> None:
    settings = settings_for(resolver, limits=Limits(max_concurrency=2))
    with http_server() as site, running_helper(settings) as helper:
        # /trickle never ends: each measurement holds its slot for the whole HTTP budget.
        request = {"http_request": site.url("/trickle", host="site.test"), "tcp_connect": []}

        async def flood() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=None)) as client:
                return await asyncio.gather(*(client.post(helper, json=request) for _ in range(20)))

        replies = asyncio.run(flood())
        statuses = [reply.status_code for reply in replies]
        after = post(helper, {"http_request": site.url("/", host="site.test"), "tcp_connect": []})
    assert set(statuses) <= {200, 503}
    assert 1 <= statuses.count(200) <= 10
    assert statuses.count(503) >= 10
    assert {reply.json()["error"] for reply in replies if reply.status_code == 503} == {
        "busy: too many control requests in flight"
    }
    assert after.status_code == 200
    assert after.json()["http_request"]["status_code"] == 200


def test_busy_answer_is_json_with_retry_after(resolver: ScriptedDNSServer) -> None:
    settings = settings_for(resolver, limits=Limits(max_concurrency=1))
    with http_server() as site, running_helper(settings) as helper:
        request = {"http_request": site.url("/trickle", host="site.test"), "tcp_connect": []}

        async def two() -> list[httpx.Response]:
            async with httpx.AsyncClient(timeout=30) as client:
                first = asyncio.create_task(client.post(helper, json=request))
                await asyncio.sleep(0.5)
                second = await client.post(helper, json=request)
                return [await first, second]

        first, second = asyncio.run(two())
    assert first.status_code == 200
    assert first.json()["http_request"]["failure"] == "generic_timeout_error"
    assert second.status_code == 503
    assert second.headers["retry-after"] == "1"
    assert second.json() == {"error": "busy: too many control requests in flight"}


def test_whoami_answers_only_asn_and_country(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    asn_file = tmp_path / "asn.csv"
    asn_file.write_text("network,asn\n127.0.0.0/8,64500\n")
    cc_file = tmp_path / "cc.csv"
    cc_file.write_text("network,cc\n127.0.0.0/8,pk\n")
    geo = Geo(asn_of=load_asn_database(asn_file), cc_of=load_country_database(cc_file))
    caplog.set_level(logging.DEBUG)
    with running_helper(HelperSettings(geo=geo)) as helper, httpx.Client(timeout=10) as client:
        reply = client.get(helper + "whoami")
        client_port = reply.extensions["network_stream"].get_extra_info("client_addr")[1]
        unknown = httpx.get(helper + "whoami", timeout=10).json()
    assert reply.json() == {"probe_asn": "AS64500", "probe_cc": "PK", "probe_ip": "127.0.0.1"}
    assert unknown == {"probe_asn": "AS64500", "probe_cc": "PK", "probe_ip": "127.0.0.1"}
    assert str(client_port) not in caplog.text  # nothing logged the client's address


def test_whoami_unknown_network() -> None:
    with running_helper(HelperSettings()) as helper:
        reply = httpx.get(helper + "whoami", timeout=10).json()
    assert reply == {"probe_asn": "AS0", "probe_cc": "ZZ", "probe_ip": "127.0.0.1"}


def test_other_routes_and_methods_answer_json() -> None:
    with running_helper(HelperSettings()) as helper:
        index = httpx.get(helper, timeout=10)
        missing = httpx.get(helper + "admin", timeout=10)
        wrong = httpx.put(helper, timeout=10)
    assert index.json()["control"] == "POST /"
    assert (missing.status_code, missing.json()) == (404, {"error": "Not Found"})
    assert (wrong.status_code, wrong.json()) == (405, {"error": "Method Not Allowed"})
