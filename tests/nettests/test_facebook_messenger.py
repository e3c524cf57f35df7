"""The Facebook Messenger test (ts-019) against a loopback resolver and loopback services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from probe.ipinfo import AsnLookup, no_asn
from probe.nettests import facebook_messenger
from tests.nettests.loopback import CONTEXT, LOCAL, SUMMARY_KEYS, URLGETTER_KEYS, Loopback, loopback, run
from tests.servers.dns_server import Reply
from tests.servers.tcp_server import closed_port, tcp_server

SERVICES = {"b_api": "b-api.facebook.com", "edge": "edge-mqtt.facebook.com"}


def facebook_asn(ip: str) -> int:
    """An ASN database placing loopback in Facebook's AS (the services' address here)."""
    return 32934 if ip == "127.0.0.1" else 64500 if ip == "192.0.2.7" else 0


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Loopback]:
    script = {
        "stun.fbsbx.com": LOCAL,
        "b-api.facebook.com": LOCAL,
        "edge-mqtt.facebook.com": LOCAL,
        "elsewhere.facebook.com": Reply(a=("192.0.2.7",)),
        "bogon.facebook.com": Reply(a=("10.10.34.35",)),
        "gone.facebook.com": Reply(rcode="NXDOMAIN"),
    }
    with loopback(tmp_path, script) as lab:
        yield lab


def _measure(
    lab: Loopback, services: dict[str, tuple[str, int]], asn_of: AsnLookup = facebook_asn
) -> tuple[dict[str, Any], Any]:
    entries: list[dict[str, Any]] = [{"role": "stun", "name": "stun", "host": "stun.fbsbx.com"}]
    entries += [
        {"role": "service", "name": name, "host": host, "ports": [port]}
        for name, (host, port) in services.items()
    ]
    listed = lab.endpoint_list("facebook_messenger", entries)
    # 192.0.2.0/24 stands for the public Internet here, as the lab's 10.x world does there.
    config = lab.config(timeout=1.0, asn_of=asn_of, public_networks=("192.0.2.0/24",))
    return run(facebook_messenger.measure(listed, context=CONTEXT, config=config))


def _fb(keys: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in keys.items() if k.startswith("facebook_")}


def test_every_service_consistent_and_reachable(world: Loopback) -> None:
    with tcp_server("accept") as port:
        doc, m = _measure(world, {name: (host, port) for name, host in SERVICES.items()})
    keys = doc["test_keys"]
    assert (doc["test_name"], doc["test_version"], m.target) == (
        "facebook_messenger",
        "0.2.1",
        "facebook_messenger",
    )
    assert set(keys) == URLGETTER_KEYS | SUMMARY_KEYS | set(_fb(keys))
    assert _fb(keys) == {
        "facebook_b_api_dns_consistent": True,
        "facebook_b_api_reachable": True,
        "facebook_dns_blocking": False,
        "facebook_edge_dns_consistent": True,
        "facebook_edge_reachable": True,
        "facebook_stun_dns_consistent": True,
        "facebook_stun_reachable": None,
        "facebook_tcp_blocking": False,
    }
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == (False, True, "ok")
    # STUN is looked up, never connected to; each service is looked up once and connected once.
    assert [q["hostname"] for q in keys["queries"] if q["query_type"] == "A"] == [
        "stun.fbsbx.com", "b-api.facebook.com", "edge-mqtt.facebook.com",
    ]  # fmt: skip
    assert [(c["ip"], c["port"]) for c in keys["tcp_connect"]] == [("127.0.0.1", port)] * 2
    assert keys["requests"] is None and keys["tls_handshakes"] is None


def test_an_unreachable_service_is_tcp_blocking(world: Loopback) -> None:
    with tcp_server("accept") as port:
        doc, m = _measure(
            world, {"b_api": (SERVICES["b_api"], closed_port()), "edge": (SERVICES["edge"], port)}
        )
    keys = doc["test_keys"]
    assert (keys["facebook_b_api_dns_consistent"], keys["facebook_b_api_reachable"]) == (True, False)
    assert (keys["facebook_tcp_blocking"], keys["facebook_dns_blocking"]) == (True, False)
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == ("tcp_ip", False, "tcp.refused")
    assert m.summary.tcp_failure == "connection_refused"


@pytest.mark.parametrize(
    ("host", "mechanism"),
    [
        ("elsewhere.facebook.com", "dns.blockpage"),  # an address in another AS
        ("bogon.facebook.com", "dns.bogon"),
        ("gone.facebook.com", "dns.nxdomain"),
    ],
)
def test_an_inconsistent_answer_is_dns_blocking_and_not_connected(
    world: Loopback, host: str, mechanism: str
) -> None:
    with tcp_server("accept") as port:
        doc, _ = _measure(world, {"b_api": (host, port), "edge": (SERVICES["edge"], port)})
    keys = doc["test_keys"]
    assert (keys["facebook_b_api_dns_consistent"], keys["facebook_b_api_reachable"]) == (False, None)
    assert (keys["facebook_dns_blocking"], keys["facebook_tcp_blocking"]) == (True, False)
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == ("dns", False, mechanism)
    assert len(keys["tcp_connect"]) == 1  # edge only


def test_without_an_asn_database_consistency_is_unknown_not_blocking(world: Loopback) -> None:
    with tcp_server("accept") as port:
        doc, _ = _measure(world, {"b_api": (SERVICES["b_api"], port)}, asn_of=no_asn)
    keys = doc["test_keys"]
    assert _fb(keys) == {
        "facebook_b_api_dns_consistent": None,
        "facebook_b_api_reachable": True,
        "facebook_dns_blocking": False,
        "facebook_stun_dns_consistent": None,
        "facebook_stun_reachable": None,
        "facebook_tcp_blocking": False,
    }
    assert keys["x_blocking"] is False
