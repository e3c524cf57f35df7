"""The wire format: exact parsing, and fuzzing of both parsers (they raise WireError or succeed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.helper.wire import (
    MAX_ENDPOINTS,
    WireError,
    parse_endpoint,
    parse_request,
    parse_response,
    request_json,
    response_json,
)
from probe.model import (
    ControlDNS,
    ControlHTTPRequest,
    ControlIPInfo,
    ControlRequest,
    ControlResponse,
    ControlTCPConnect,
    ControlTLSHandshake,
)

OONI_REQUEST = {
    "http_request": "https://www.example.com/",
    "http_request_headers": {"Accept": ["*/*"], "User-Agent": ["miniooni/0.1.0-dev"]},
    "tcp_connect": ["93.184.216.34:443", "[2606:2800:220:1:248:1893:25c8:1946]:443"],
    "x_quic_enabled": False,
}


def test_parses_oonis_request() -> None:
    request = parse_request(json.dumps(OONI_REQUEST).encode())
    assert request == ControlRequest(
        http_request="https://www.example.com/",
        http_request_headers={"Accept": ("*/*",), "User-Agent": ("miniooni/0.1.0-dev",)},
        tcp_connect=("93.184.216.34:443", "[2606:2800:220:1:248:1893:25c8:1946]:443"),
    )
    assert json.loads(request_json(request)) == OONI_REQUEST


def test_endpoints_are_canonical_and_unique() -> None:
    body = {"http_request": "http://x/", "tcp_connect": ["[2001:DB8::0001]:80", "[2001:db8::1]:80"]}
    assert parse_request(json.dumps(body).encode()).tcp_connect == ("[2001:db8::1]:80",)
    assert parse_endpoint("1.2.3.4:80") == ("1.2.3.4", 80, "1.2.3.4:80")
    with pytest.raises(WireError, match="needs brackets"):
        parse_endpoint("2001:db8::1:80")


@pytest.mark.parametrize(
    "data",
    [b"[" * 100_000 + b"]" * 100_000, b'{"http_request": ' + b"9" * 5000 + b"}", b"\x00", b"\xc3\x28"],
)
def test_pathological_json_is_a_wire_error(data: bytes) -> None:
    with pytest.raises(WireError):
        parse_request(data)


def test_too_many_endpoints() -> None:
    body = {"http_request": "http://x/", "tcp_connect": [f"1.2.3.{i % 250}:{i + 1}" for i in range(65)]}
    with pytest.raises(WireError, match=f"more than {MAX_ENDPOINTS} endpoints"):
        parse_request(json.dumps(body).encode())


RESPONSE = ControlResponse(
    tcp_connect={"1.2.3.4:443": ControlTCPConnect(status=False, failure="connection_refused")},
    tls_handshake={
        "1.2.3.4:443": ControlTLSHandshake(server_name="x.com", status=False, failure="eof_error")
    },
    http_request=ControlHTTPRequest(
        body_length=10, failure=None, title="T", headers={"Server": "x"}, status_code=200
    ),
    dns=ControlDNS(failure=None, addrs=("1.2.3.4",)),
    ip_info={"1.2.3.4": ControlIPInfo(asn=13335, flags=3)},
)


def test_response_round_trip() -> None:
    assert parse_response(response_json(RESPONSE)) == RESPONSE


def test_older_helpers_without_tls_or_ip_info() -> None:
    data = json.loads(response_json(RESPONSE))
    del data["tls_handshake"], data["ip_info"]
    parsed = parse_response(json.dumps(data).encode())
    assert parsed.tls_handshake == {} and parsed.ip_info == {}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda d: d.pop("dns"), "dns: expected a JSON object"),
        (lambda d: d["dns"].update(addrs="1.2.3.4"), "dns.addrs: expected a list"),
        (
            lambda d: d["tcp_connect"].update({"x": {"status": True}}),
            "tcp_connect: 'x' is not an 'ip:port' endpoint",
        ),
        (lambda d: d["tcp_connect"]["1.2.3.4:443"].update(status="yes"), "status: expected true or false"),
        (lambda d: d["http_request"].update(status_code=True), "status_code: expected an integer >= -1"),
        (lambda d: d["http_request"].update(body_length=-5), "body_length: expected an integer >= -1"),
        (lambda d: d["http_request"].update(title=["x"]), "title: expected a string"),
        (
            lambda d: d["ip_info"].update({"nope": {"asn": 1, "flags": 0}}),
            "ip_info: 'nope' is not an IP address",
        ),
        (lambda d: d["http_request"].update(failure="x" * 600), "failure: longer than 512 characters"),
    ],
)
def test_hostile_responses_are_wire_errors(change: Any, error: str) -> None:
    data = json.loads(response_json(RESPONSE))
    change(data)
    with pytest.raises(WireError, match=error.replace("(", r"\(").replace(")", r"\)")):
        parse_response(json.dumps(data).encode())


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from(["http_request", "http_request_headers", "tcp_connect", "x_quic_enabled", "other"])
VALUES = st.one_of(
    JSON,
    st.sampled_from(["http://x.test/", "https://[::1]:8/p?q", "http://", "ftp://a/", "http://a b/"]),
    st.lists(st.sampled_from(["1.2.3.4:80", "[::1]:1", "a:1", "1.2.3.4", ":80", "[1.2.3.4]:9"]), max_size=3),
    st.dictionaries(st.text(max_size=8), st.lists(st.text(max_size=8), max_size=2), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_request_bytes(data: bytes) -> None:
    try:
        request = parse_request(data)
    except WireError:
        return
    assert parse_request(request_json(request)) == request


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=5))
def test_fuzz_request_objects(obj: dict[str, Any]) -> None:
    try:
        request = parse_request(json.dumps(obj).encode())
    except WireError:
        return
    assert isinstance(request.http_request, str)
    assert all(isinstance(v, tuple) for v in request.http_request_headers.values())
    assert parse_request(request_json(request)) == request


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["dns", "tcp_connect", "tls_handshake", "http_request", "ip_info"]), JSON)
)
def test_fuzz_response_objects(obj: dict[str, Any]) -> None:
    try:
        response = parse_response(json.dumps(obj).encode())
    except WireError:
        return
    assert parse_response(response_json(response)) == response
