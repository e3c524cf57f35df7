"""The messaging apps in the lab: Telegram's data centres dropped, WhatsApp's registration host
reset, Signal reset by SNI — each test's own verdict, read from what ``probe <test> --json`` printed.

The scenario files' expectations are checked by ``test_scenarios.py`` (shared runs); here the
measurements are read directly, key by key, as an analyst reading OONI's data would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from probe.lab.runner import Report, TargetResult
from probe.lab.scenario import scenario_dir
from tests.lab.conftest import scenario_report


def _nettest(report: Report, command: str) -> tuple[TargetResult, dict[str, Any]]:
    [result] = [r for r in report.results if r.nettest is not None and r.nettest.command == command]
    assert result.measurement is not None, result.problems
    assert not result.problems, result.problems
    return result, result.measurement


def _private(report: Report, measurement: dict[str, Any]) -> None:
    text = json.dumps(measurement)
    assert report.plan.client_ip not in text
    assert measurement["probe_ip"] == "127.0.0.1"


def _path(name: str) -> Path:
    return scenario_dir() / f"{name}.toml"


@pytest.mark.lab
def test_telegram_data_centres_dropped_while_the_web_loads(no_new_namespaces: None) -> None:
    report = scenario_report(_path("pk-telegram-dc-drop"))
    result, m = _nettest(report, "telegram")
    keys = m["test_keys"]
    assert (m["test_name"], m["input"]) == ("telegram", None)
    assert (keys["telegram_tcp_blocking"], keys["telegram_http_blocking"]) == (True, True)
    assert (keys["telegram_web_status"], keys["telegram_web_failure"]) == ("ok", None)
    # Every data centre address, on both ports, timed out at the connect; no POST went out.
    dcs = {report.plan.endpoint_ip(f"telegram-dc{i}") for i in range(1, 7)}
    connects = [c for c in keys["tcp_connect"] if c["ip"] in dcs]
    assert len(connects) == 12
    assert {c["status"]["failure"] for c in connects} == {"generic_timeout_error"}
    assert [r["request"]["method"] for r in keys["requests"]] == ["GET"]
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == ("tcp_ip", False, "tcp.timeout")
    assert result.observed["outcome"] == "blocked.anomaly"
    _private(report, m)


@pytest.mark.lab
def test_whatsapp_registration_reset_by_sni(no_new_namespaces: None) -> None:
    report = scenario_report(_path("pk-whatsapp-registration-reset"))
    result, m = _nettest(report, "whatsapp")
    keys = m["test_keys"]
    assert (keys["registration_server_status"], keys["registration_server_failure"]) == (
        "blocked", "connection_reset",
    )  # fmt: skip
    assert (keys["whatsapp_endpoints_status"], keys["whatsapp_endpoints_blocked"]) == ("ok", [])
    assert (keys["whatsapp_web_status"], keys["whatsapp_web_failure"]) == ("ok", None)
    [reset] = [h for h in keys["tls_handshakes"] if h["failure"] is not None]
    assert (reset["server_name"], reset["failure"]) == ("v.whatsapp.net", "connection_reset")
    assert (keys["x_blocking"], keys["x_mechanism"]) == ("http-failure", "tls.reset")
    # Web Connectivity, with the control beside it, attributes the same reset to the SNI.
    [web] = [r for r in report.results if r.nettest is None]
    assert web.observed["mechanism"] == "tls.reset.sni"
    assert result.observed["outcome"] == web.observed["outcome"] == "blocked.anomaly"
    _private(report, m)


@pytest.mark.lab
def test_signal_backends_reset_by_sni(no_new_namespaces: None) -> None:
    report = scenario_report(_path("pk-signal-sni-reset"))
    result, m = _nettest(report, "signal")
    keys = m["test_keys"]
    assert (keys["signal_backend_status"], keys["signal_backend_failure"]) == ("blocked", "connection_reset")
    handshakes = {h["server_name"]: h["failure"] for h in keys["tls_handshakes"]}
    assert handshakes == {
        "textsecure-service.whispersystems.org": None,
        "storage.signal.org": "connection_reset",
        "cdn.signal.org": "connection_reset",
        "cdn2.signal.org": "connection_reset",
        "sfu.voip.signal.org": "connection_reset",
    }
    # The uptime lookup answered (recorded, not judged).
    assert any(q["hostname"] == "uptime.signal.org" and q["failure"] is None for q in keys["queries"])
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == (
        "http-failure",
        False,
        "tls.reset",
    )
    assert result.observed["outcome"] == "blocked.anomaly"
    _private(report, m)


@pytest.mark.lab
def test_messenger_dns_answered_with_a_bogon_and_an_address_dropped(no_new_namespaces: None) -> None:
    report = scenario_report(_path("pk-messenger-dns-and-ip"))
    result, m = _nettest(report, "facebook-messenger")
    keys = m["test_keys"]
    # b-api: the ISP resolver's bogon, never connected to; edge: its address dropped.
    assert (keys["facebook_b_api_dns_consistent"], keys["facebook_b_api_reachable"]) == (False, None)
    assert (keys["facebook_edge_dns_consistent"], keys["facebook_edge_reachable"]) == (True, False)
    assert (keys["facebook_dns_blocking"], keys["facebook_tcp_blocking"]) == (True, True)
    [bogon] = [q for q in keys["queries"] if q["hostname"] == "b-api.facebook.com"]
    assert [a["ipv4"] for a in bogon["answers"]] == ["10.10.34.35"]
    assert "10.10.34.35" not in {c["ip"] for c in keys["tcp_connect"]}
    assert (keys["x_blocking"], keys["x_mechanism"]) == ("dns", "dns.bogon")
    assert result.observed["outcome"] == "blocked.anomaly"
    _private(report, m)
