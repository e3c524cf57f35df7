"""HTTP/3 reachability against a real aioquic server on loopback, beside a real HTTPS server.

The HTTPS server (TCP, the reference path) and the QUIC server (UDP) share one port number,
as a site's 443 does; ``example.com`` resolves to 127.0.0.1 through an injected lookup.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from probe import serialize
from probe.lab.quicserver import Behaviour, QuicServer
from probe.mechanism import Mechanism
from probe.model import OONIMeasurement
from probe.nettests import http3
from probe.nettests.base import Context
from probe.outcome import Outcome, outcome_of
from tests.servers.http_server import HTTPServer, http_server


def _lookup(host: str, port: int) -> list[tuple[int, str]]:
    assert host == "example.com"
    return [(socket.AF_INET, "127.0.0.1")]


def pem_of(cert: trustme.LeafCert) -> bytes:
    return cert.private_key_pem.bytes() + b"".join(blob.bytes() for blob in cert.cert_chain_pems)


@pytest.fixture(scope="module")
def site(ca: trustme.CA) -> Iterator[HTTPServer]:
    with http_server(ca.issue_cert("example.com")) as server:
        yield server


def route(host: str, path: str) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
    if path == "/big":
        return 200, b"<html><head><title>Big</title></head>" + b"x" * 1_000_000, ()
    return 200, b"<html><head><title>Over QUIC</title></head><body>h3</body></html>", (("server", "lab"),)


def run(site: HTTPServer, ca_file: Path, path: str = "/", **options: object) -> OONIMeasurement:
    settings: dict[str, object] = {
        "ca_file": ca_file, "allow_loopback": True, "lookup": _lookup, "quic_timeout": 1.0, "deadline": 20.0,
    }  # fmt: skip
    config = http3.HTTP3Config(**{**settings, **options})  # type: ignore[arg-type]  # the config's keywords
    return asyncio.run(
        http3.measure(site.url(path), context=Context(probe_asn="AS17557", probe_cc="PK"), config=config)
    )


def served(
    ca: trustme.CA, site: HTTPServer, behaviour: Behaviour = "serve", name: str = "example.com"
) -> QuicServer:
    return QuicServer(pem_of(ca.issue_cert(name)), behaviour=behaviour, route=route, port=site.port)


def test_success_records_both_paths_in_oonis_shapes(ca: trustme.CA, ca_file: Path, site: HTTPServer) -> None:
    with served(ca, site):
        m = run(site, ca_file)
    doc = json.loads(serialize.to_json(m))
    keys = doc["test_keys"]
    assert (doc["test_name"], doc["input"], m.target) == ("http3", site.url("/"), "http3:" + site.url("/"))
    (quic,) = keys["quic_handshakes"]
    assert (quic["network"], quic["address"], quic["server_name"]) == (
        "udp",
        f"127.0.0.1:{site.port}",
        "example.com",
    )
    assert (quic["failure"], quic["negotiated_protocol"], quic["tls_version"]) == (None, "h3", "TLSv1.3")
    assert quic["peer_certificates"][0]["format"] == "base64"
    (tls,) = keys["tls_handshakes"]
    assert (tls["network"], tls["failure"]) == ("tcp", None)
    get, head = keys["requests"]
    assert (get["request"]["x_transport"], get["request"]["method"], get["alpn"]) == ("udp", "GET", "h3")
    assert (get["response"]["code"], get["response"]["x_title"], get["failure"]) == (200, "Over QUIC", None)
    assert (head["request"]["x_transport"], head["request"]["method"]) == ("tcp", "HEAD")
    assert (keys["failure"], keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == (
        None,
        False,
        True,
        "ok",
    )
    assert (m.summary.blocking, m.summary.accessible, m.summary.mechanism) == (False, True, Mechanism.OK)


def outcome(m: OONIMeasurement) -> Outcome:
    s = m.summary
    return outcome_of(
        blocking=s.blocking, accessible=s.accessible, mechanism=s.mechanism, confirmed=None,
        control_failure=s.control_failure,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("behaviour", "failure", "mechanism"),
    [
        ("silent", "generic_timeout_error", Mechanism.QUIC_TIMEOUT),
        ("refuse", "connection_refused", Mechanism.QUIC_REFUSED),
        ("wrong-name", "ssl_invalid_hostname", Mechanism.QUIC_RESET),
        ("unknown-ca", "ssl_unknown_authority", Mechanism.QUIC_RESET),
    ],
)
def test_quic_failing_while_tls_over_tcp_passes_is_its_own_mechanism(
    ca: trustme.CA, ca_file: Path, site: HTTPServer, behaviour: str, failure: str, mechanism: Mechanism
) -> None:
    if behaviour == "silent":  # UDP bound, never answering: a drop
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
            sink.bind(("127.0.0.1", site.port))
            m = run(site, ca_file, expect_h3=True)
    elif behaviour == "wrong-name":
        with QuicServer(pem_of(ca.issue_cert("other.example")), route=route, port=site.port):
            m = run(site, ca_file, expect_h3=True)
    elif behaviour == "unknown-ca":
        with QuicServer(pem_of(trustme.CA().issue_cert("example.com")), route=route, port=site.port):
            m = run(site, ca_file, expect_h3=True)
    else:
        with served(ca, site, "refuse"):
            m = run(site, ca_file, expect_h3=True)
    keys = m.document["test_keys"]
    (quic,) = keys["quic_handshakes"]
    assert quic["failure"] == failure
    assert keys["tls_handshakes"][0]["failure"] is None
    assert [r["request"]["x_transport"] for r in keys["requests"]] == ["tcp"]  # the HEAD only
    assert (m.summary.blocking, m.summary.accessible, m.summary.mechanism) == ("tcp_ip", False, mechanism)
    assert (m.summary.tls_failure, m.summary.tcp_failure) == (failure, None)
    assert outcome(m) is Outcome.BLOCKED_ANOMALY


def test_without_evidence_of_http3_a_silent_udp_port_is_undecided(ca_file: Path, site: HTTPServer) -> None:
    m = run(site, ca_file)  # nothing on UDP: the loopback kernel refuses (ICMP port unreachable)
    assert m.document["test_keys"]["quic_handshakes"][0]["failure"] == "connection_refused"
    assert m.document["test_keys"]["x_h3_advertised"] is False
    assert (m.summary.blocking, m.summary.accessible, m.summary.mechanism) == (
        None,
        None,
        Mechanism.QUIC_REFUSED,
    )
    assert outcome(m) is Outcome.NO_VERDICT_UNDECIDED


def test_server_closing_after_the_handshake_fails_the_get(
    ca: trustme.CA, ca_file: Path, site: HTTPServer
) -> None:
    with served(ca, site, "close"):
        m = run(site, ca_file)
    keys = m.document["test_keys"]
    assert keys["quic_handshakes"][0]["failure"] is None
    get = keys["requests"][0]
    assert (get["request"]["x_transport"], get["failure"], get["response"]["code"]) == ("udp", "eof_error", 0)
    assert keys["failure"] == "eof_error"
    assert (m.summary.blocking, m.summary.mechanism, m.summary.http_failure) == (
        "http-failure", Mechanism.HTTP_RESET, "eof_error",
    )  # fmt: skip


def test_alt_svc_is_the_evidence_of_http3() -> None:
    from probe.model import HTTPRequest, HTTPResponse, HTTPTransaction

    def head(*headers: tuple[str, str]) -> HTTPTransaction:
        response = HTTPResponse(200, headers, b"", False, 0, "")
        return HTTPTransaction("1.2.3.4:443", HTTPRequest("https://x/", "HEAD", ()), response, None, 0.0, 0.1)

    assert http3.h3_advertised(head(("Alt-Svc", 'h3=":443"; ma=86400, h3-29=":443"')))
    assert http3.h3_advertised(head(("alt-svc", 'h2=":443", h3-29=":443"')))
    assert not http3.h3_advertised(head(("Alt-Svc", 'h2=":443"; ma=60')))
    assert not http3.h3_advertised(head(("Server", "h3")))
    assert not http3.h3_advertised(None)


def test_an_http_url_is_bad_input() -> None:
    from probe.errors import TargetError

    with pytest.raises(TargetError, match="needs an https:// URL"):
        asyncio.run(http3.measure("http://example.com/", context=Context()))


def test_a_large_page_costs_little_more_than_the_cap(ca: trustme.CA, ca_file: Path, site: HTTPServer) -> None:
    with served(ca, site):
        m = run(site, ca_file, path="/big", body_limit=16 * 1024)
    (get, _head) = m.document["test_keys"]["requests"]
    response = get["response"]
    assert (get["failure"], response["code"], response["x_title"]) == (None, 200, "Big")
    assert (response["x_body_length"], response["body_is_truncated"]) == (16 * 1024, True)
    # The server had 16 KiB of credit beyond the cap: what came is bounded by it, not by the page.
    assert 16 * 1024 < get["x_body_bytes_received"] <= 32 * 1024
    assert m.summary.mechanism == Mechanism.OK


def _two_addresses(host: str, port: int) -> list[tuple[int, str]]:
    assert host == "example.com"
    return [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET, "127.0.0.2")]  # nothing on .2: refused


def test_every_address_is_measured_and_one_answering_is_enough(
    ca: trustme.CA, ca_file: Path, site: HTTPServer
) -> None:
    with served(ca, site):
        m = run(site, ca_file, lookup=_two_addresses)
    keys = m.document["test_keys"]
    by_address = {c["ip"]: c["status"]["failure"] for c in keys["tcp_connect"]}
    assert by_address == {"127.0.0.1": None, "127.0.0.2": "connection_refused"}
    quic = {q["address"]: (q["failure"], q["transaction_id"]) for q in keys["quic_handshakes"]}
    assert quic == {
        f"127.0.0.1:{site.port}": (None, 3),
        f"127.0.0.2:{site.port}": ("connection_refused", 5),
    }
    assert (keys["failure"], keys["x_mechanism"]) == (None, "ok")
    assert (m.summary.blocking, m.summary.accessible, m.summary.tcp_failure) == (False, True, None)


def test_quic_is_blocked_only_if_it_fails_wherever_tls_over_tcp_passes(
    ca: trustme.CA, ca_file: Path, site: HTTPServer
) -> None:
    # .1: TLS over TCP passes, UDP silent (a drop); .2: nothing at all (refused, both paths).
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", site.port))
        m = run(site, ca_file, lookup=_two_addresses, expect_h3=True)
    keys = m.document["test_keys"]
    assert [q["failure"] for q in keys["quic_handshakes"]] == ["generic_timeout_error", "connection_refused"]
    assert (m.summary.blocking, m.summary.accessible, m.summary.mechanism) == (
        "tcp_ip",
        False,
        Mechanism.QUIC_TIMEOUT,
    )
    assert (m.summary.tls_failure, m.summary.tcp_failure, keys["failure"]) == (
        "generic_timeout_error",
        None,
        "generic_timeout_error",
    )
