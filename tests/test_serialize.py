"""Measurement → JSON: the OONI data format (reference §3), checked against golden dicts.

One hand-built measurement holds every step type; each test pins the exact JSON of one part.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from probe.model import (
    ControlDNS,
    ControlHTTPRequest,
    ControlIPInfo,
    ControlResponse,
    ControlTCPConnect,
    ControlTLSHandshake,
    DNSAnswer,
    DNSQuery,
    HTTPRequest,
    HTTPResponse,
    HTTPTransaction,
    Measurement,
    PeerCertificate,
    TCPConnect,
    TCPStatus,
    TLSHandshake,
    WebConnectivityTestKeys,
)
from probe.serialize import (
    StepTags,
    as_dict,
    headers_map,
    maybe_binary,
    network_events,
    new_measurement_uid,
    new_report_id,
    ooni_tags,
    ooni_time,
    parse_tags,
    to_json,
)

V4 = "93.184.215.14"
V6 = "2606:2800:21f:cb07:6820:80da:af6b:8b2c"
RESOLVER = "192.0.2.53"
TARGET_ADDRESSES = {V4, V6, RESOLVER}
"""The only addresses the measurement may hold: the target's and the resolver's."""

LEAF_DER = b"\x30\x82\x01\x0a\x02\x82\x01\x01\x00\xc3\xff"  # not UTF-8
ROOT_DER = b"0\x0bhello world"  # happens to be valid UTF-8: must still be base64

CNAME = DNSAnswer("CNAME", hostname="www.example.com", ttl=300)
A = DNSAnswer("A", ipv4=V4, ttl=300, asn=15133, as_org_name="Edgecast")
AAAA_SYSTEM = DNSAnswer("AAAA", ipv6=V6)  # getaddrinfo reports no TTL

UDP_QUERY = DNSQuery(
    engine="udp",
    resolver_address=f"{RESOLVER}:53",
    hostname="example.com",
    query_type="A",
    answers=(CNAME, A),
    rcode="NOERROR",
    failure=None,
    t0=0.001,
    t=0.021,
    transaction_id=1,
    depth=0,
)
SYSTEM_QUERY = DNSQuery(
    engine="getaddrinfo",
    resolver_address="",
    hostname="example.com",
    query_type="ANY",
    answers=(AAAA_SYSTEM,),
    rcode=None,
    failure=None,
    t0=0.001,
    t=0.03,
    transaction_id=2,
)
NXDOMAIN_QUERY = DNSQuery(
    engine="udp",
    resolver_address=f"{RESOLVER}:53",
    hostname="blocked.example",
    query_type="AAAA",
    answers=(),
    rcode="NXDOMAIN",
    failure="dns_nxdomain_error",
    t0=0.002,
    t=0.012,
    transaction_id=3,
    depth=0,
)

TCP_OK = TCPConnect(V4, 443, TCPStatus(True, None), t0=0.031, t=0.052, transaction_id=4, depth=0)
TCP_REFUSED = TCPConnect(V6, 443, TCPStatus(False, "connection_refused"), t0=0.031, t=0.033, transaction_id=5)

LEAF = PeerCertificate(
    data=LEAF_DER,
    subject="CN=example.com",
    issuer="CN=Test CA",
    not_before="2024-01-01T00:00:00Z",
    not_after="2025-01-01T00:00:00Z",
    subject_alt_names=("DNS:example.com", "DNS:www.example.com"),
    sha256="ab" * 32,
)
ROOT = PeerCertificate(
    data=ROOT_DER,
    subject="CN=Test CA",
    issuer="CN=Test CA",
    not_before="2020-01-01T00:00:00Z",
    not_after="2030-01-01T00:00:00Z",
    subject_alt_names=(),
    sha256="cd" * 32,
)
TLS_OK = TLSHandshake(
    address=f"{V4}:443",
    server_name="example.com",
    cipher_suite="TLS_AES_128_GCM_SHA256",
    negotiated_protocol="h2",
    tls_version="TLSv1.3",
    peer_certificates=(LEAF, ROOT),
    failure=None,
    t0=0.052,
    t=0.09,
    transaction_id=4,
    depth=0,
)

REQUEST = HTTPRequest(
    url="https://example.com/",
    method="GET",
    headers_list=(("Accept", "text/html"), ("User-Agent", "Mozilla/5.0"), ("Accept", "*/*")),
)
PAGE = "<html><title>Café</title></html>".encode()
TEXT_RESPONSE = HTTPResponse(
    code=200,
    headers_list=(
        ("Set-Cookie", "a=1"),
        ("Content-Type", "text/html; charset=utf-8"),
        ("Set-Cookie", "b=2"),
    ),
    body=PAGE,
    body_is_truncated=False,
    body_length=len(PAGE),
    title="Café",
)
BINARY = b"\xff\xd8\xff\xe0\x00\x10JFIF"
BINARY_RESPONSE = HTTPResponse(
    code=200,
    headers_list=(("Content-Type", "image/jpeg"),),
    body=BINARY,
    body_is_truncated=True,
    body_length=len(BINARY),
    title="",
)
HTTP_OK = HTTPTransaction(
    address=f"{V4}:443",
    request=REQUEST,
    response=TEXT_RESPONSE,
    failure=None,
    t0=0.09,
    t=0.2,
    alpn="h2",
    transaction_id=4,
    depth=0,
)
HTTP_BINARY = HTTPTransaction(f"{V4}:443", REQUEST, BINARY_RESPONSE, None, t0=0.2, t=0.3, transaction_id=6)
HTTP_RESET = HTTPTransaction(f"{V4}:443", REQUEST, None, "connection_reset", t0=0.3, t=0.31, transaction_id=7)

CONTROL = ControlResponse(
    tcp_connect={f"{V4}:443": ControlTCPConnect(True, None)},
    tls_handshake={f"{V4}:443": ControlTLSHandshake("example.com", True, None)},
    http_request=ControlHTTPRequest(
        body_length=1256,
        failure=None,
        title="Café",
        headers={"Content-Type": "text/html"},
        status_code=200,
    ),
    dns=ControlDNS(None, (V4,)),
    ip_info={V4: ControlIPInfo(asn=15133, flags=11)},
)

MEASUREMENT = Measurement(
    input="https://example.com/",
    measurement_start_time=datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC),
    test_start_time=datetime(2024, 5, 1, 11, 59, 58, tzinfo=UTC),
    test_runtime=1.25,
    software_name="reachprobe",
    software_version="0.1.0",
    test_keys=WebConnectivityTestKeys(
        queries=(UDP_QUERY, SYSTEM_QUERY, NXDOMAIN_QUERY),
        tcp_connect=(TCP_OK, TCP_REFUSED),
        tls_handshakes=(TLS_OK,),
        requests=(HTTP_RESET, HTTP_BINARY, HTTP_OK),
        control=CONTROL,
        dns_consistency="consistent",
        body_length_match=True,
        body_proportion=1.0,
        status_code_match=True,
        headers_match=True,
        title_match=True,
        blocking=False,
        accessible=True,
    ),
    measurement_uid="20240501120000.123456_ZZ_webconnectivity_0123456789abcdef",
    report_id="20240501T115958Z_webconnectivity_ZZ_0_n1_AbCdEfGhIjKlMnOp",
    test_helper="https://th.example.org/",
    annotations={"platform": "linux", "architecture": "x86_64", "engine_version": "0.1.0"},
)


def test_dns_queries() -> None:
    assert as_dict(UDP_QUERY) == {
        "engine": "udp",
        "resolver_address": "192.0.2.53:53",
        "hostname": "example.com",
        "query_type": "A",
        "answers": [
            {"answer_type": "CNAME", "hostname": "www.example.com", "ttl": 300, "asn": 0, "as_org_name": ""},
            {"answer_type": "A", "ipv4": V4, "ttl": 300, "asn": 15133, "as_org_name": "Edgecast"},
        ],
        "rcode": 0,  # OONI's number, not dnspython's name
        "failure": None,
        "t0": 0.001,
        "t": 0.021,
        "transaction_id": 1,
        "tags": ["depth=0"],
        "getaddrinfo_error": 0,
    }
    system = as_dict(SYSTEM_QUERY)
    assert system["answers"] == [{"answer_type": "AAAA", "ipv6": V6, "asn": 0, "as_org_name": ""}]
    assert system["rcode"] is None  # a query's own None fields stay: only answers omit them
    assert system["tags"] == []
    assert "addresses" not in system  # a property, not data


def test_dns_failure_keeps_null_and_empty_fields() -> None:
    query = as_dict(NXDOMAIN_QUERY)
    assert query["answers"] == []
    assert query["failure"] == "dns_nxdomain_error"
    assert query["rcode"] == 3


def test_tcp_connect() -> None:
    assert [as_dict(c) for c in (TCP_OK, TCP_REFUSED)] == [
        {
            "ip": V4,
            "port": 443,
            "status": {"success": True, "failure": None},
            "t0": 0.031,
            "t": 0.052,
            "transaction_id": 4,
            "tags": ["depth=0"],
        },
        {
            "ip": V6,
            "port": 443,
            "status": {"success": False, "failure": "connection_refused"},
            "t0": 0.031,
            "t": 0.033,
            "transaction_id": 5,
            "tags": [],
        },
    ]


def test_tls_handshake_with_certificates_always_base64() -> None:
    assert ROOT_DER.decode("utf-8")  # would pass as text: the certificate rule must override
    assert as_dict(TLS_OK) == {
        "address": f"{V4}:443",
        "server_name": "example.com",
        "cipher_suite": "TLS_AES_128_GCM_SHA256",
        "negotiated_protocol": "h2",
        "tls_version": "TLSv1.3",
        "peer_certificates": [  # OONI's BinaryData, leaf first
            {"data": "MIIBCgKCAQEAw/8=", "format": "base64"},
            {"data": "MAtoZWxsbyB3b3JsZA==", "format": "base64"},
        ],
        "failure": None,
        "t0": 0.052,
        "t": 0.09,
        "no_tls_verify": False,
        "network": "tcp",
        "transaction_id": 4,
        "tags": ["depth=0"],
        "x_peer_certificates_info": [  # our summary, beside them
            {
                "subject": "CN=example.com",
                "issuer": "CN=Test CA",
                "not_before": "2024-01-01T00:00:00Z",
                "not_after": "2025-01-01T00:00:00Z",
                "subject_alt_names": ["DNS:example.com", "DNS:www.example.com"],
                "sha256": "ab" * 32,
            },
            {
                "subject": "CN=Test CA",
                "issuer": "CN=Test CA",
                "not_before": "2020-01-01T00:00:00Z",
                "not_after": "2030-01-01T00:00:00Z",
                "subject_alt_names": [],
                "sha256": "cd" * 32,
            },
        ],
    }
    assert base64.b64decode("MIIBCgKCAQEAw/8=") == LEAF_DER


def test_http_transaction_text_body_and_headers_map() -> None:
    assert as_dict(HTTP_OK) == {
        "address": f"{V4}:443",
        "request": {
            "url": "https://example.com/",
            "method": "GET",
            "headers_list": [["Accept", "text/html"], ["User-Agent", "Mozilla/5.0"], ["Accept", "*/*"]],
            "headers": {"Accept": "text/html", "User-Agent": "Mozilla/5.0"},
            "body": "",
            "body_is_truncated": False,
            "x_transport": "tcp",
            "tor": {"exit_ip": None, "exit_name": None, "is_tor": False},
        },
        "response": {
            "code": 200,
            "headers_list": [
                ["Set-Cookie", "a=1"],
                ["Content-Type", "text/html; charset=utf-8"],
                ["Set-Cookie", "b=2"],
            ],
            "headers": {"Set-Cookie": "a=1", "Content-Type": "text/html; charset=utf-8"},
            "body": "<html><title>Café</title></html>",
            "body_is_truncated": False,
            "x_body_length": 33,
            "x_title": "Café",
        },
        "failure": None,
        "t0": 0.09,
        "t": 0.2,
        "alpn": "h2",
        "network": "tcp",
        "transaction_id": 4,
        "tags": ["depth=0"],
    }


def test_http_binary_body_is_base64() -> None:
    response = as_dict(HTTP_BINARY)["response"]
    assert response["body"] == {"format": "base64", "data": "/9j/4AAQSkZJRg=="}
    assert base64.b64decode(response["body"]["data"]) == BINARY
    assert response["body_is_truncated"] is True
    assert response["headers"] == {"Content-Type": "image/jpeg"}


def test_http_failure_has_oonis_empty_response() -> None:
    transaction = as_dict(HTTP_RESET)
    assert transaction["response"] == {
        "body": "",
        "body_is_truncated": False,
        "code": 0,
        "headers_list": [],
        "headers": {},
    }
    assert transaction["failure"] == "connection_reset"
    assert transaction["request"]["headers"] == {"Accept": "text/html", "User-Agent": "Mozilla/5.0"}


def test_http_transfer_evidence_follows_the_ooni_keys() -> None:
    """Our ``x_`` keys come last, after OONI's, which are unchanged."""
    evidence = HTTPTransaction(
        f"{V4}:443",
        REQUEST,
        None,
        "generic_timeout_error",
        t0=0.3,
        t=10.3,
        transaction_id=7,
        x_headers_t=0.52,
        x_body_last_byte_t=10.1,
        x_body_bytes_received=81920,
    )
    data = as_dict(evidence)
    assert list(data)[-3:] == ["x_headers_t", "x_body_last_byte_t", "x_body_bytes_received"]
    assert (data["x_headers_t"], data["x_body_last_byte_t"], data["x_body_bytes_received"]) == (
        0.52,
        10.1,
        81920,
    )
    assert {k: v for k, v in data.items() if not k.startswith("x_")} == as_dict(
        HTTPTransaction(f"{V4}:443", REQUEST, None, "generic_timeout_error", t0=0.3, t=10.3, transaction_id=7)
    )


def test_http_transfer_evidence_is_omitted_when_none_and_kept_when_zero() -> None:
    """Headers then silence: no last-byte time (omitted), but 0 bytes is evidence (kept)."""
    silent = HTTPTransaction(
        f"{V4}:443",
        REQUEST,
        None,
        "generic_timeout_error",
        t0=0.3,
        t=10.3,
        x_headers_t=0.5,
        x_body_bytes_received=0,
    )
    data = as_dict(silent)
    assert [k for k in data if k.startswith("x_")] == ["x_headers_t", "x_body_bytes_received"]
    assert data["x_body_bytes_received"] == 0
    # Without evidence (data from before the fields, or no headers at all) the keys are absent.
    assert not [k for k in as_dict(HTTP_RESET) if k.startswith("x_")]
    assert not [k for k in as_dict(HTTP_OK) if k.startswith("x_")]


def test_control() -> None:
    assert as_dict(CONTROL) == {
        "tcp_connect": {f"{V4}:443": {"status": True, "failure": None}},
        "tls_handshake": {f"{V4}:443": {"server_name": "example.com", "status": True, "failure": None}},
        "http_request": {
            "body_length": 1256,
            "failure": None,
            "title": "Café",
            "headers": {"Content-Type": "text/html"},
            "status_code": 200,
            "discovered_h3_endpoint": "",
        },
        "dns": {"failure": None, "addrs": [V4]},
        "ip_info": {V4: {"asn": 15133, "flags": 11}},
    }


def test_measurement_envelope() -> None:
    data = as_dict(MEASUREMENT)
    test_keys = data.pop("test_keys")
    assert data == {
        "input": "https://example.com/",
        "measurement_start_time": "2024-05-01 12:00:00",
        "test_start_time": "2024-05-01 11:59:58",
        "test_runtime": 1.25,
        "software_name": "reachprobe",
        "software_version": "0.1.0",
        "measurement_uid": "20240501120000.123456_ZZ_webconnectivity_0123456789abcdef",
        "report_id": "20240501T115958Z_webconnectivity_ZZ_0_n1_AbCdEfGhIjKlMnOp",
        "probe_asn": "AS0",
        "probe_cc": "ZZ",
        "probe_network_name": "",
        "probe_ip": "127.0.0.1",
        "resolver_asn": "AS0",
        "resolver_ip": "",
        "resolver_network_name": "",
        "test_name": "web_connectivity",
        "test_version": "0.5.28",
        "data_format_version": "0.2.0",
        # Go's architecture name, as df-000-base lists them
        "annotations": {
            "platform": "linux",
            "architecture": "amd64",
            "engine_version": "0.1.0",
            "engine_version_full": "0.1.0",
        },
        "options": [],
        "test_helpers": {"backend": {"address": "https://th.example.org/", "type": "https"}},
        "extensions": {
            "dnst": 0,
            "httpt": 0,
            "netevents": 0,
            "tcpconnect": 0,
            "tlshandshake": 0,
            "tunnel": 0,
        },
    }
    assert [q["transaction_id"] for q in test_keys["queries"]] == [1, 2, 3]
    assert [r["transaction_id"] for r in test_keys["requests"]] == [7, 6, 4]  # order kept (reverse time)
    assert (test_keys["blocking"], test_keys["accessible"]) == (False, True)
    # Our labels carry the x_ prefix and, like every x_ key, are omitted while None.
    assert not {"x_mechanism", "x_confirmed"} & set(test_keys)
    assert "mechanism" not in test_keys and "confirmed" not in test_keys  # no OONI name reused
    # Web Connectivity 0.5.28's keys; the flags are omitted until the analysis computed them.
    assert {k: test_keys[k] for k in ("agent", "client_resolver", "retries", "socksproxy")} == {
        "agent": "redirect",
        "client_resolver": "",
        "retries": None,
        "socksproxy": None,
    }
    assert test_keys["network_events"] == network_events(MEASUREMENT.test_keys)
    assert not {"x_blocking_flags", "x_dns_flags", "x_null_null_flags"} & set(test_keys)
    assert test_keys["control"] == as_dict(CONTROL)
    assert test_keys["tls_handshakes"] == [as_dict(TLS_OK)]


def _walk(value: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]")


def test_only_json_types_remain() -> None:
    allowed = (dict, list, str, int, float, bool, type(None))
    strays = [
        (path, type(v).__name__) for path, v in _walk(as_dict(MEASUREMENT)) if not isinstance(v, allowed)
    ]
    assert strays == []  # no tuple, bytes or dataclass survives


def test_to_json_round_trips() -> None:
    text = to_json(MEASUREMENT)
    assert json.loads(text) == as_dict(MEASUREMENT)
    assert "Café" in text  # UTF-8 kept, not \u-escaped
    assert json.loads(to_json(MEASUREMENT, indent=2)) == json.loads(text)
    assert "\n  " in to_json(MEASUREMENT, indent=2)


_ADDRESS_CANDIDATE = re.compile(r"[0-9A-Fa-f:.]{2,}")


def _addresses(text: str) -> set[str]:
    """The IP addresses inside *text* (``ip``, ``ip:port``, ``[v6]:port``, ``host:port``)."""
    found = set()
    for candidate in _ADDRESS_CANDIDATE.findall(text):
        for token in (candidate, candidate.rsplit(":", 1)[0]):
            try:
                found.add(str(ipaddress.ip_address(token)))
            except ValueError:
                continue
    return found


def _strings(value: Any, path: str = "$") -> Iterator[tuple[str, str]]:
    """Every string in *value*, dictionary keys included (the control's keys are ``ip:port``)."""
    for where, item in _walk(value, path):
        if isinstance(item, str):
            yield where, item
        elif isinstance(item, dict):
            yield from ((f"{where}.<key>", key) for key in item)


def test_the_volunteer_ip_is_never_recorded() -> None:
    data = as_dict(MEASUREMENT)
    assert MEASUREMENT.probe_ip == "127.0.0.1"  # the default: OONI's redaction marker
    assert data["probe_ip"] == "127.0.0.1"
    assert not {key for key in data if key.endswith("_ip")} - {"probe_ip", "resolver_ip"}  # no client_ip, …
    assert data["resolver_ip"] == data["test_keys"]["client_resolver"] == ""  # not known: never guessed
    # Every other address is one the measurement was about: the target's or the resolver's.
    where: dict[str, set[str]] = {}
    for path, text in _strings(data):
        for address in _addresses(text):
            where.setdefault(address, set()).add(path)
    assert where.pop("127.0.0.1") == {"$.probe_ip"}
    assert set(where) == TARGET_ADDRESSES
    assert where[RESOLVER] == {
        "$.test_keys.queries[0].resolver_address",
        "$.test_keys.queries[2].resolver_address",
    }


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", ""),
        (b"plain", "plain"),
        ("日本".encode(), "日本"),
        (b"\x00\x01", "\x00\x01"),  # control characters are valid UTF-8
        (b"\xff", {"format": "base64", "data": "/w=="}),
        ("é".encode()[:1], {"format": "base64", "data": "ww=="}),  # a truncated multi-byte sequence
    ],
)
def test_maybe_binary(data: bytes, expected: object) -> None:
    assert maybe_binary(data) == expected


def test_headers_map_first_value_wins_and_keeps_case() -> None:
    pairs = (("Server", "nginx"), ("server", "blockpage"), ("Server", "squid"))
    assert headers_map(pairs) == {"Server": "nginx", "server": "blockpage"}
    assert headers_map(()) == {}


def test_containers() -> None:
    assert as_dict((1, (2, b"x"), [3])) == [1, [2, "x"], [3]]
    assert as_dict({1: (TCPStatus(True, None),)}) == {"1": [{"success": True, "failure": None}]}


def test_without_a_control_test_helpers_is_null() -> None:
    import dataclasses

    assert as_dict(dataclasses.replace(MEASUREMENT, test_helper=None))["test_helpers"] is None
    plain = as_dict(dataclasses.replace(MEASUREMENT, test_helper="http://127.0.0.1:8080/"))
    assert plain["test_helpers"] == {"backend": {"address": "http://127.0.0.1:8080/", "type": "http"}}


def test_our_verdict_labels_and_flags_carry_the_x_prefix() -> None:
    import dataclasses

    keys = dataclasses.replace(
        MEASUREMENT.test_keys,
        mechanism="http.blockpage",
        confirmed="pk_pta_blockpage",
        x_blocking_flags=16,
        x_dns_flags=0,
        x_null_null_flags=0,
    )
    data = as_dict(dataclasses.replace(MEASUREMENT, test_keys=keys))["test_keys"]
    assert (data["x_mechanism"], data["x_confirmed"]) == ("http.blockpage", "pk_pta_blockpage")
    assert (data["x_blocking_flags"], data["x_dns_flags"], data["x_null_null_flags"]) == (16, 0, 0)


def test_network_events_are_the_steps_own_times_in_time_order() -> None:
    events = network_events(MEASUREMENT.test_keys)
    assert [
        (e["operation"], e["address"], e["failure"], e["t0"], e["t"], e["transaction_id"]) for e in events
    ] == [
        ("connect", f"[{V6}]:443", "connection_refused", 0.031, 0.033, 5),
        ("connect", f"{V4}:443", None, 0.031, 0.052, 4),
        ("tls_handshake_start", f"{V4}:443", None, 0.052, 0.052, 4),
        ("tls_handshake_done", f"{V4}:443", None, 0.052, 0.09, 4),
        ("http_transaction_start", f"{V4}:443", None, 0.09, 0.09, 4),
        ("http_transaction_done", f"{V4}:443", None, 0.09, 0.2, 4),
        ("http_transaction_start", f"{V4}:443", None, 0.2, 0.2, 6),
        ("http_transaction_done", f"{V4}:443", None, 0.2, 0.3, 6),
        ("http_transaction_start", f"{V4}:443", None, 0.3, 0.3, 7),
        ("http_transaction_done", f"{V4}:443", "connection_reset", 0.3, 0.31, 7),
    ]
    assert {(e["proto"], e["num_bytes"]) for e in events} == {("tcp", 0)}


def test_oonis_identifier_forms() -> None:
    from datetime import UTC, datetime

    at = datetime(2024, 2, 14, 9, 6, 17, 181572, tzinfo=UTC)
    report_id = new_report_id(at, test_name="web_connectivity", probe_cc="PK", probe_asn="AS17557")
    assert re.fullmatch(r"20240214T090617Z_webconnectivity_PK_17557_n1_[A-Za-z0-9]{16}", report_id)
    uid = new_measurement_uid(at, test_name="web_connectivity", probe_cc="PK")
    assert re.fullmatch(r"20240214090617\.181572_PK_webconnectivity_[0-9a-f]{16}", uid)
    assert new_measurement_uid(at, test_name="web_connectivity", probe_cc="PK") != uid


# --- typed step fields and times: OONI strings only in the JSON --------------------------------


@pytest.mark.parametrize(
    ("step", "tags"),
    [
        # The order the probe has always written: a lookup's classic first, an endpoint's after.
        (dataclasses.replace(SYSTEM_QUERY, depth=0, classic=True), ["classic", "depth=0"]),
        (dataclasses.replace(UDP_QUERY, depth=2, tags=("udp_truncated",)), ["depth=2", "udp_truncated"]),
        (dataclasses.replace(TCP_OK, depth=1, classic=True), ["depth=1", "classic"]),
        (dataclasses.replace(TLS_OK, classic=True), ["depth=0", "classic"]),
        (dataclasses.replace(HTTP_OK, depth=3, classic=True), ["depth=3", "classic"]),
        (TCP_REFUSED, []),
    ],
)
def test_depth_and_classic_become_oonis_tags(step: Any, tags: list[str]) -> None:
    out = as_dict(step)
    assert out["tags"] == ooni_tags(step) == tags
    assert "depth" not in out and "classic" not in out
    assert parse_tags(out["tags"]) == StepTags(step.depth, step.classic, step.tags)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (None, StepTags(None, False, ())),
        (["depth=0"], StepTags(0, False, ())),
        (["classic", "depth=12", "x"], StepTags(12, True, ("x",))),
        (
            ["depth=x", "depth=-1", "depth=", "depth=2", "depth=3"],
            StepTags(2, False, ("depth=x", "depth=-1", "depth=", "depth=3")),
        ),
        (["depth=٣"], StepTags(None, False, ("depth=٣",))),  # a non-ASCII digit is no hop
    ],
)
def test_parse_tags_is_the_one_reader(tags: list[str] | None, expected: StepTags) -> None:
    assert parse_tags(tags) == expected


def test_times_are_datetimes_formatted_once() -> None:
    doc = as_dict(MEASUREMENT)
    assert (doc["measurement_start_time"], doc["test_start_time"]) == (
        "2024-05-01 12:00:00",
        "2024-05-01 11:59:58",
    )
    pk = timezone(timedelta(hours=5))
    assert ooni_time(datetime(2024, 5, 1, 17, 0, 0, 999999, tzinfo=pk)) == "2024-05-01 12:00:00"
    assert ooni_time(datetime(2024, 5, 1, 12, 0, 0)) == "2024-05-01 12:00:00"  # naive: UTC already
