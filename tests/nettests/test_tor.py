"""The Tor test (ts-023) against real loopback OR ports, directory ports and bridges."""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from probe import serialize
from probe.errors import ConfigError
from probe.mechanism import Mechanism
from probe.nettests import endpoints, tor
from probe.nettests.base import Context
from tests.servers.tcp_server import closed_port, connection_server, rst_close, tcp_server

CONFIG = tor.TorConfig(timeout=1.0, http_timeout=2.0)
CONSENSUS = b"network-status-version 3\n" + b"x" * 1000


@pytest.fixture(scope="module")
def relay_cert() -> trustme.LeafCert:
    """A certificate like a relay's: a made-up name from a CA nobody trusts."""
    return trustme.CA().issue_cert("www.kklh7ezxtf.com")


@pytest.fixture(scope="module")
def or_port(relay_cert: trustme.LeafCert) -> Iterator[int]:
    with tcp_server("tls", relay_cert) as port:
        yield port


def read_head(conn: socket.socket) -> bytes:
    """The request line and headers of one HTTP request."""
    request = b""
    while b"\r\n\r\n" not in request and (chunk := conn.recv(4096)):
        request += chunk
    return request


@pytest.fixture(scope="module")
def dir_port() -> Iterator[int]:
    def answer(conn: socket.socket) -> None:
        request = read_head(conn)
        assert request.startswith(b"GET /tor/status-vote/current/consensus.z HTTP/1.1\r\n")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(CONSENSUS), CONSENSUS))

    with connection_server(answer, threaded=True) as port:
        yield port


def run(targets: list[tor.TorTarget]) -> dict[str, Any]:
    m = asyncio.run(tor.measure(targets, context=Context(probe_cc="PK", probe_asn="AS17557"), config=CONFIG))
    doc: dict[str, Any] = json.loads(serialize.to_json(m))
    assert doc["test_name"] == "tor" and doc["test_version"] == "0.4.0" and doc["input"] is None
    assert m.target == "tor"
    doc["_summary"] = m.summary
    return doc


def test_an_or_port_that_completes_the_handshake_is_accessible(or_port: int) -> None:
    address = f"127.0.0.1:{or_port}"
    doc = run([tor.TorTarget(address, "or_port_dirauth", name="moria1")])
    keys = doc["test_keys"]
    entry = keys["targets"][address]
    assert set(entry) == {
        "agent", "failure", "network_events", "queries", "requests", "summary", "target_address",
        "target_name", "target_protocol", "tcp_connect", "tls_handshakes",
    }  # fmt: skip
    assert entry["failure"] is None and entry["agent"] == "redirect"
    assert entry["summary"] == {"connect": {"failure": None}, "handshake": {"failure": None}}
    assert (entry["target_address"], entry["target_name"], entry["target_protocol"]) == (
        address, "moria1", "or_port_dirauth",
    )  # fmt: skip
    assert entry["queries"] is None and entry["requests"] is None
    [connect] = entry["tcp_connect"]
    assert (connect["ip"], connect["port"], connect["status"]) == (
        "127.0.0.1",
        or_port,
        {"failure": None, "success": True},
    )
    [handshake] = entry["tls_handshakes"]
    assert handshake["failure"] is None and handshake["no_tls_verify"] is True
    assert handshake["server_name"].startswith("www.") and handshake["server_name"].endswith(".com")
    assert len(handshake["peer_certificates"]) == 1 and handshake["tls_version"].startswith("TLSv1")
    assert [e["operation"] for e in entry["network_events"]] == [
        "connect",
        "tls_handshake_start",
        "tls_handshake_done",
    ]
    assert {k: v for k, v in keys.items() if k != "targets"} == {
        "dir_port_total": 0, "dir_port_accessible": 0, "obfs4_total": 0, "obfs4_accessible": 0,
        "or_port_dirauth_total": 1, "or_port_dirauth_accessible": 1,
        "or_port_total": 0, "or_port_accessible": 0,
        "x_blocking": False, "x_accessible": True, "x_mechanism": "ok",
    }  # fmt: skip
    summary = doc["_summary"]
    assert (summary.blocking, summary.accessible, summary.mechanism) == (False, True, Mechanism.OK)


@pytest.mark.parametrize(
    ("behaviour", "connect_failure", "handshake_failure", "blocking", "mechanism"),
    [
        ("refused", "connection_refused", None, "tcp_ip", Mechanism.TCP_REFUSED),
        ("reset_after_hello", None, "connection_reset", "http-failure", Mechanism.TLS_RESET),
        ("close_after_hello", None, "eof_error", "http-failure", Mechanism.TLS_EOF),
        ("accept", None, "generic_timeout_error", "http-failure", Mechanism.TLS_TIMEOUT),
    ],
)
def test_an_or_port_blocked(
    behaviour: str,
    connect_failure: str | None,
    handshake_failure: str | None,
    blocking: str,
    mechanism: Mechanism,
) -> None:
    def measure(port: int) -> dict[str, Any]:
        address = f"127.0.0.1:{port}"
        doc = run([tor.TorTarget(address, "or_port_dirauth")])
        return doc | {"_entry": doc["test_keys"]["targets"][address]}

    if behaviour == "refused":
        doc = measure(closed_port())
    else:
        with tcp_server(behaviour) as port:  # type: ignore[arg-type]  # a Behaviour literal
            doc = measure(port)
    entry = doc["_entry"]
    assert entry["failure"] == (connect_failure or handshake_failure)
    expected_summary: dict[str, Any] = {"connect": {"failure": connect_failure}}
    if connect_failure is None:
        expected_summary["handshake"] = {"failure": handshake_failure}
        assert entry["tls_handshakes"][0]["failure"] == handshake_failure
    else:
        assert entry["tls_handshakes"] is None
    assert entry["summary"] == expected_summary
    assert "target_name" not in entry
    assert (
        doc["test_keys"]["or_port_dirauth_total"] == 1 and doc["test_keys"]["or_port_dirauth_accessible"] == 0
    )
    summary = doc["_summary"]
    assert (summary.blocking, summary.accessible, summary.mechanism) == (blocking, False, mechanism)
    keys = doc["test_keys"]
    summary_keys = [keys[k] for k in ("x_blocking", "x_accessible", "x_mechanism")]
    assert summary_keys == [blocking, False, mechanism.value]


def test_a_dir_port_serves_the_consensus(dir_port: int) -> None:
    address = f"127.0.0.1:{dir_port}"
    doc = run([tor.TorTarget(address, "dir_port", name="moria1")])
    entry = doc["test_keys"]["targets"][address]
    assert entry["failure"] is None and entry["tls_handshakes"] is None
    assert entry["summary"] == {"connect": {"failure": None}}
    [request] = entry["requests"]
    assert request["request"]["url"] == f"http://{address}/tor/status-vote/current/consensus.z"
    assert request["response"]["code"] == 200
    assert (
        request["response"]["body"] == CONSENSUS[:256].decode() and request["response"]["body_is_truncated"]
    )
    assert [e["operation"] for e in entry["network_events"]] == [
        "connect",
        "http_transaction_start",
        "http_transaction_done",
    ]
    assert (doc["test_keys"]["dir_port_total"], doc["test_keys"]["dir_port_accessible"]) == (1, 1)


def test_a_dir_port_that_resets_the_request_fails() -> None:
    def reset(conn: socket.socket) -> None:
        read_head(conn)
        rst_close(conn)

    with connection_server(reset) as port:
        address = f"127.0.0.1:{port}"
        doc = run([tor.TorTarget(address, "dir_port")])
    entry = doc["test_keys"]["targets"][address]
    assert entry["failure"] == "connection_reset"
    assert entry["summary"] == {"connect": {"failure": None}}
    assert doc["_summary"].mechanism == Mechanism.HTTP_RESET and doc["_summary"].blocking == "http-failure"


def test_a_private_bridge_is_scrubbed_and_keyed_by_its_fingerprint(or_port: int) -> None:
    address, fingerprint = f"127.0.0.1:{or_port}", "A" * 40
    bridge = tor.TorTarget(address, "or_port", fingerprint=fingerprint, source="operator")
    doc = run([bridge])
    key = hashlib.sha256(address.encode() + fingerprint.encode()).hexdigest()
    assert bridge.id == key
    entry = doc["test_keys"]["targets"][key]
    assert entry["target_address"] == "[scrubbed]" and entry["target_source"] == "operator"
    assert entry["tcp_connect"][0]["ip"] == "[scrubbed]"
    assert entry["tls_handshakes"][0]["address"] == "[scrubbed]"
    assert "127.0.0.1" not in json.dumps(doc["test_keys"])
    assert (doc["test_keys"]["or_port_total"], doc["test_keys"]["or_port_accessible"]) == (1, 1)


def test_an_obfs4_bridge_is_only_connected_to(or_port: int) -> None:
    address = f"127.0.0.1:{or_port}"
    doc = run([tor.TorTarget(address, "obfs4")])
    entry = doc["test_keys"]["targets"][address]
    assert entry["failure"] is None and entry["x_obfs4_handshake"] is False
    assert entry["tls_handshakes"] is None and entry["summary"] == {"connect": {"failure": None}}
    assert (doc["test_keys"]["obfs4_total"], doc["test_keys"]["obfs4_accessible"]) == (1, 1)


def test_one_accessible_authority_is_enough_but_all_bridges_down_is_blocking(or_port: int) -> None:
    reachable = f"127.0.0.1:{or_port}"
    refused = f"127.0.0.1:{closed_port()}"
    doc = run([tor.TorTarget(reachable, "or_port_dirauth"), tor.TorTarget(refused, "or_port_dirauth")])
    assert doc["_summary"].blocking is False
    assert (doc["test_keys"]["or_port_dirauth_total"], doc["test_keys"]["or_port_dirauth_accessible"]) == (
        2,
        1,
    )
    doc = run(
        [tor.TorTarget(reachable, "or_port_dirauth"), tor.TorTarget(refused, "or_port", fingerprint="B" * 40)]
    )
    assert (doc["_summary"].blocking, doc["_summary"].mechanism) == ("tcp_ip", Mechanism.TCP_REFUSED)


def test_the_shipped_list_is_the_directory_authorities() -> None:
    targets = tor.targets_from(endpoints.load("tor"))
    keyed = {t.id: t for t in targets}
    assert len(keyed) == 20
    assert (keyed["128.31.0.39:9201"].protocol, keyed["128.31.0.39:9201"].name) == (
        "or_port_dirauth",
        "moria1",
    )
    assert keyed["128.31.0.39:9231"].protocol == "dir_port"
    assert keyed["171.25.193.9:80"].protocol == "or_port_dirauth"  # maatuska: OR port 80, dir port 443
    assert keyed["171.25.193.9:443"].protocol == "dir_port"
    assert not any(t.private for t in targets)


def test_an_override_lists_bridges_and_bad_entries_are_named(tmp_path: Path) -> None:
    override = tmp_path / "bridges.toml"
    override.write_text(
        '[[tor]]\nrole = "or_port"\nhost = "192.0.2.10"\nports = [443, 9001]\n'
        'params = { fingerprint = "' + "C" * 40 + '", source = "operator" }\n'
    )
    targets = tor.targets_from(endpoints.load("tor", override))
    assert [(t.address, t.protocol, t.private) for t in targets] == [
        ("192.0.2.10:443", "or_port", True), ("192.0.2.10:9001", "or_port", True),
    ]  # fmt: skip
    override.write_text('[[tor]]\nrole = "meek"\nhost = "192.0.2.10"\nports = [443]\n')
    with pytest.raises(ConfigError, match=r"bridges.toml:1: tor.role: 'meek' is not one of"):
        tor.targets_from(endpoints.load("tor", override))
    override.write_text('[[tor]]\nrole = "or_port"\nhost = "bridge.example"\nports = [443]\n')
    with pytest.raises(ConfigError, match=r"bridges.toml:1: tor.host: 'bridge.example' is not an IP address"):
        tor.targets_from(endpoints.load("tor", override))


def test_probe_tor_prints_the_targets_and_the_verdict(
    or_port: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from probe.cli import main

    override = tmp_path / "tor.toml"
    override.write_text(
        f'[[tor]]\nrole = "or_port_dirauth"\nname = "moria1"\nhost = "127.0.0.1"\nports = [{or_port}]\n'
        f'[[tor]]\nrole = "or_port"\nhost = "127.0.0.1"\nports = [{closed_port()}]\n'
        'params = { fingerprint = "' + "D" * 40 + '" }\n'
    )
    assert main(["tor", "--endpoints", str(override), "--timeout", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert (doc["test_keys"]["or_port_dirauth_accessible"], doc["test_keys"]["or_port_accessible"]) == (1, 0)
    assert (doc["test_keys"]["x_blocking"], doc["test_keys"]["x_mechanism"]) == ("tcp_ip", "tcp.refused")
    assert main(["tor", "--endpoints", str(override), "--timeout", "1"]) == 0
    out = capsys.readouterr().out
    assert f"or_port_dirauth moria1 127.0.0.1:{or_port}: ok" in out
    assert "connection_refused" in out and "accessible: or_port_dirauth 1/1, or_port 0/1" in out
    verdict = "verdict: blocking=tcp_ip accessible=false dns_consistency=null mechanism=tcp.refused"
    assert f"{verdict} → blocked (anomaly)" in out
    override.write_text('[[tor]]\nrole = "or_port"\nhost = "bridge.example"\nports = [443]\n')
    assert main(["tor", "--endpoints", str(override)]) == 2
    assert "tor.host: 'bridge.example' is not an IP address" in capsys.readouterr().err
