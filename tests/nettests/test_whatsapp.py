"""The WhatsApp test (ts-018) against loopback endpoints, registration service and web."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from probe.nettests import whatsapp
from tests.nettests.loopback import CONTEXT, LOCAL, SUMMARY_KEYS, URLGETTER_KEYS, Loopback, loopback, run
from tests.servers.dns_server import Reply
from tests.servers.http_server import http_server
from tests.servers.tcp_server import closed_port, tcp_server

WHATSAPP_KEYS = {
    "registration_server_failure", "registration_server_status", "whatsapp_endpoints_blocked",
    "whatsapp_endpoints_dns_inconsistent", "whatsapp_endpoints_status", "whatsapp_web_failure",
    "whatsapp_web_status",
}  # fmt: skip
NAMES = ("e1.whatsapp.net", "e2.whatsapp.net", "v.whatsapp.net", "web.whatsapp.com")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Loopback]:
    script = {name: LOCAL for name in NAMES} | {"e3.whatsapp.net": Reply(rcode="NXDOMAIN")}
    with loopback(tmp_path, script) as lab:
        yield lab


def _measure(
    lab: Loopback, endpoints: dict[str, list[int]], registration: int, web: int, **config: Any
) -> tuple[dict[str, Any], Any]:
    entries: list[dict[str, Any]] = [
        {"role": "endpoint", "host": host, "ports": ports} for host, ports in endpoints.items()
    ]
    entries.append({"role": "registration", "url": f"https://v.whatsapp.net:{registration}/v2/register"})
    entries.append({"role": "web", "url": f"https://web.whatsapp.com:{web}/"})
    listed = lab.endpoint_list("whatsapp", entries)
    return run(whatsapp.measure(listed, context=CONTEXT, config=lab.config(timeout=1.0, **config)))


def test_everything_reachable(world: Loopback) -> None:
    with ExitStack() as stack:
        accept = stack.enter_context(tcp_server("accept"))
        registration = stack.enter_context(http_server(world.cert("v.whatsapp.net")))
        web = stack.enter_context(http_server(world.cert("web.whatsapp.com")))
        endpoints = {"e1.whatsapp.net": [accept, accept], "e2.whatsapp.net": [accept]}
        doc, m = _measure(world, endpoints, registration.port, web.port)
    keys = doc["test_keys"]
    assert (doc["test_name"], doc["test_version"], doc["input"], m.target) == (
        "whatsapp",
        "0.11.0",
        None,
        "whatsapp",
    )
    assert set(keys) == URLGETTER_KEYS | WHATSAPP_KEYS | SUMMARY_KEYS
    assert {k: keys[k] for k in WHATSAPP_KEYS} == {
        "registration_server_failure": None,
        "registration_server_status": "ok",
        "whatsapp_endpoints_blocked": [],
        "whatsapp_endpoints_dns_inconsistent": [],
        "whatsapp_endpoints_status": "ok",
        "whatsapp_web_failure": None,
        "whatsapp_web_status": "ok",
    }
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == (False, True, "ok")
    assert [r.target for r in registration.requests] == ["/v2/register"]
    assert [r.sni for r in web.requests] == ["web.whatsapp.com"]
    # Three endpoint connects (no request over them), then the two HTTPS fetches.
    assert [(c["port"], c["status"]["success"]) for c in keys["tcp_connect"]] == [
        (accept, True), (accept, True), (accept, True), (registration.port, True), (web.port, True),
    ]  # fmt: skip
    assert [r["request"]["url"] for r in keys["requests"]] == [
        f"https://v.whatsapp.net:{registration.port}/v2/register",
        f"https://web.whatsapp.com:{web.port}/",
    ]
    assert [q["hostname"] for q in keys["queries"] if q["query_type"] == "A"] == [
        "e1.whatsapp.net", "e1.whatsapp.net", "e2.whatsapp.net", "v.whatsapp.net", "web.whatsapp.com",
    ]  # fmt: skip


def test_endpoints_blocked_on_every_port_are_listed(world: Loopback) -> None:
    with ExitStack() as stack:
        accept = stack.enter_context(tcp_server("accept"))
        registration = stack.enter_context(http_server(world.cert("v.whatsapp.net")))
        web = stack.enter_context(http_server(world.cert("web.whatsapp.com")))
        closed = closed_port()
        # e1 blocked on both ports; e2 on one of two (not blocked); e3 does not resolve.
        endpoints = {
            "e1.whatsapp.net": [closed, closed],
            "e2.whatsapp.net": [closed, accept],
            "e3.whatsapp.net": [443],
        }
        doc, m = _measure(world, endpoints, registration.port, web.port)
    keys = doc["test_keys"]
    assert keys["whatsapp_endpoints_blocked"] == ["e1.whatsapp.net", "e3.whatsapp.net"]
    assert keys["whatsapp_endpoints_status"] == "ok"
    assert (keys["x_blocking"], keys["x_mechanism"]) == (False, "ok")
    assert (m.summary.dns_failure, m.summary.tcp_failure) == ("dns_nxdomain_error", "connection_refused")


def test_every_endpoint_blocked_is_the_app_blocked(world: Loopback) -> None:
    with ExitStack() as stack:
        registration = stack.enter_context(http_server(world.cert("v.whatsapp.net")))
        web = stack.enter_context(http_server(world.cert("web.whatsapp.com")))
        closed = closed_port()
        doc, m = _measure(world, {"e1.whatsapp.net": [closed, closed]}, registration.port, web.port)
    keys = doc["test_keys"]
    assert (keys["whatsapp_endpoints_status"], keys["whatsapp_endpoints_blocked"]) == (
        "blocked",
        ["e1.whatsapp.net"],
    )
    assert (keys["registration_server_status"], keys["whatsapp_web_status"]) == ("ok", "ok")
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == ("tcp_ip", False, "tcp.refused")
    assert m.summary.tcp_failure == "connection_refused"


def test_registration_reset_after_the_client_hello(world: Loopback) -> None:
    with ExitStack() as stack:
        accept = stack.enter_context(tcp_server("accept"))
        reset = stack.enter_context(tcp_server("reset_after_hello"))
        web = stack.enter_context(http_server(world.cert("web.whatsapp.com")))
        doc, m = _measure(world, {"e1.whatsapp.net": [accept]}, reset, web.port)
    keys = doc["test_keys"]
    assert {k: keys[k] for k in WHATSAPP_KEYS} == {
        "registration_server_failure": "connection_reset",
        "registration_server_status": "blocked",
        "whatsapp_endpoints_blocked": [],
        "whatsapp_endpoints_dns_inconsistent": [],
        "whatsapp_endpoints_status": "ok",
        "whatsapp_web_failure": None,
        "whatsapp_web_status": "ok",
    }
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == (
        "http-failure",
        False,
        "tls.reset",
    )
    assert m.summary.tls_failure == "connection_reset"


def test_web_with_a_certificate_for_another_name(world: Loopback) -> None:
    with ExitStack() as stack:
        accept = stack.enter_context(tcp_server("accept"))
        registration = stack.enter_context(http_server(world.cert("v.whatsapp.net")))
        wrong = stack.enter_context(http_server(world.cert("blockpage.example")))
        doc, _ = _measure(world, {"e1.whatsapp.net": [accept]}, registration.port, wrong.port)
    keys = doc["test_keys"]
    assert (keys["whatsapp_web_status"], keys["whatsapp_web_failure"]) == ("blocked", "ssl_invalid_hostname")
    assert (keys["x_blocking"], keys["x_mechanism"]) == ("http-failure", "tls.certificate")


def test_endpoints_answered_with_loopback_and_unreachable_are_dns_blocking(world: Loopback) -> None:
    # As on a real network, where 127.0.0.1 is a censor's answer (the tests otherwise allow it).
    with ExitStack() as stack:
        registration = stack.enter_context(http_server(world.cert("v.whatsapp.net")))
        web = stack.enter_context(http_server(world.cert("web.whatsapp.com")))
        closed = closed_port()
        endpoints = {"e1.whatsapp.net": [closed], "e2.whatsapp.net": [closed]}
        doc, _ = _measure(world, endpoints, registration.port, web.port, allow_loopback=False)
    keys = doc["test_keys"]
    assert keys["whatsapp_endpoints_status"] == "blocked"
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == ("dns", False, "dns.localhost")
