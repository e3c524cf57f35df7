"""The summary columns of submitted documents, from their OONI keys: exact, test by test."""

from __future__ import annotations

from typing import Any

import pytest

from probe.collector.summary import summarize
from probe.mechanism import Mechanism
from probe.model import Summary
from probe.outcome import Outcome, outcome_of
from tests.collector.documents import web_connectivity


def wc(**keys: Any) -> dict[str, Any]:
    return web_connectivity("r", "https://x.com/", **keys)


def answer(ip: str) -> dict[str, Any]:
    return {"answers": [{"answer_type": "A", "ipv4": ip}], "failure": None}


def doc(test_name: str, keys: Any) -> dict[str, Any]:
    return {"test_name": test_name, "test_keys": keys}


def outcome(s: Summary) -> Outcome:
    blocking = s.blocking
    return outcome_of(
        blocking=blocking
        if isinstance(blocking, str) or blocking is None
        else ("false" if not blocking else "true"),
        accessible=s.accessible,
        mechanism=None if s.mechanism is None else str(s.mechanism),
        confirmed=s.confirmed,
        control_failure=s.control_failure,
    )


WEB: list[tuple[str, dict[str, Any], str | None, Outcome]] = [
    ("reachable", wc(), "ok", Outcome.REACHABLE),
    ("down", wc(blocking=False, accessible=False), "down", Outcome.DOWN),
    ("nxdomain", wc(blocking="dns", accessible=False, dns_experiment_failure="dns_nxdomain_error",
                    dns_consistency="inconsistent"), "dns.nxdomain", Outcome.BLOCKED_ANOMALY),
    ("dns lie", wc(blocking="dns", accessible=False, dns_consistency="inconsistent"), "dns.blockpage",
     Outcome.BLOCKED_ANOMALY),
    ("tcp reset", wc(blocking="tcp_ip", accessible=False, tcp_failure="connection_reset"), "tcp.reset",
     Outcome.BLOCKED_ANOMALY),
    ("tcp flagged without a failure", wc(blocking="tcp_ip", accessible=False), "tcp.unknown",
     Outcome.BLOCKED_ANOMALY),
    ("sni reset", wc(blocking="http-failure", accessible=False, http_experiment_failure="connection_reset",
                     tls_handshakes=[{"failure": "connection_reset", "server_name": "x.com"}]),
     "tls.reset.sni", Outcome.BLOCKED_ANOMALY),
    ("http timeout", wc(blocking="http-failure", accessible=False,
                        http_experiment_failure="generic_timeout_error"),
     "http.timeout", Outcome.BLOCKED_ANOMALY),
    ("http diff", wc(blocking="http-diff", accessible=False), "http.diff", Outcome.BLOCKED_ANOMALY),
    ("control failed", wc(blocking=None, accessible=None, control_failure="generic_timeout_error"),
     "control.unreachable", Outcome.NO_VERDICT_CONTROL),
    ("undecided", wc(blocking=None, accessible=None), "down", Outcome.NO_VERDICT_UNDECIDED),
    ("nothing measured", wc(blocking=None, accessible=None, queries=[], tcp_connect=[]), None,
     Outcome.NO_VERDICT_NOT_MEASURED),
    ("ours", wc(blocking="http-failure", accessible=False, x_mechanism="http.blockpage",
                x_confirmed="pk_pta_blockpage"), "http.blockpage", Outcome.BLOCKED_CONFIRMED),
    ("a later version's label", wc(blocking="tcp_ip", accessible=False, x_mechanism="tcp.blackhole"),
     "tcp.blackhole", Outcome.BLOCKED_ANOMALY),
    ("garbage verdict", wc(blocking="maybe", accessible="yes", queries=[]), "down",
     Outcome.NO_VERDICT_UNDECIDED),
    ("dns bogon", wc(blocking="dns", accessible=False, queries=[answer("10.10.34.35")]), "dns.bogon",
     Outcome.BLOCKED_ANOMALY),
    ("dns localhost", wc(blocking="dns", accessible=False, queries=[answer("127.0.0.1")]), "dns.localhost",
     Outcome.BLOCKED_ANOMALY),
]  # fmt: skip


@pytest.mark.parametrize(("name", "document", "mechanism", "expected"), WEB, ids=[w[0] for w in WEB])
def test_web_connectivity(
    name: str, document: dict[str, Any], mechanism: str | None, expected: Outcome
) -> None:
    s = summarize(document)
    assert (None if s.mechanism is None else str(s.mechanism)) == mechanism
    assert outcome(s) is expected


def test_web_connectivity_columns() -> None:
    keys = {"blocking": "http-failure", "accessible": False, "http_experiment_failure": "connection_reset",
            "tls_handshakes": [{"failure": "connection_reset"}], "dns_consistency": "consistent"}  # fmt: skip
    assert summarize(wc(**keys)) == Summary(
        blocking="http-failure",
        accessible=False,
        mechanism=Mechanism.TLS_RESET_SNI,
        dns_consistency="consistent",
        tls_failure="connection_reset",
        http_failure="connection_reset",
    )


def test_hostile_values_never_reach_a_column() -> None:
    s = summarize(wc(blocking="dns", accessible=1, dns_experiment_failure="x\0y", control_failure=["no"],
                     dns_consistency="A" * 100, x_confirmed=5, queries="nope"))  # fmt: skip
    assert s == Summary(blocking="dns", mechanism=Mechanism.DNS_BLOCKPAGE)
    long = summarize(wc(blocking=False, http_experiment_failure="f" * 5000))
    assert long.http_failure == "f" * 512


OTHERS: list[tuple[str, str, dict[str, Any], Summary]] = [
    ("telegram ok", "telegram", {"telegram_tcp_blocking": False, "telegram_http_blocking": False,
                                 "telegram_web_status": "ok"},
     Summary(blocking=False, accessible=True, mechanism=Mechanism.OK)),
    ("telegram dcs dropped", "telegram", {
        "telegram_tcp_blocking": True, "telegram_http_blocking": True,
        "tcp_connect": [{"ip": "149.154.175.50", "port": 443,
                         "status": {"failure": "generic_timeout_error", "success": False}}]},
     Summary(blocking="tcp_ip", accessible=False, mechanism=Mechanism.TCP_TIMEOUT,
             tcp_failure="generic_timeout_error")),
    ("telegram web", "telegram", {"telegram_tcp_blocking": False, "telegram_http_blocking": False,
                                  "telegram_web_status": "blocked",
                                  "telegram_web_failure": "connection_reset"},
     Summary(blocking="http-failure", accessible=False, mechanism=Mechanism.HTTP_RESET,
             http_failure="connection_reset")),
    ("whatsapp registration", "whatsapp", {
        "whatsapp_endpoints_status": "ok", "registration_server_status": "blocked",
        "registration_server_failure": "ssl_invalid_hostname", "whatsapp_web_status": "ok"},
     Summary(blocking="http-failure", accessible=False, mechanism=Mechanism.TLS_MITM,
             http_failure="ssl_invalid_hostname")),
    ("messenger dns", "facebook_messenger", {"facebook_dns_blocking": True, "facebook_tcp_blocking": False},
     Summary(blocking="dns", accessible=False, mechanism="dns.unknown")),
    ("signal ok", "signal", {"signal_backend_status": "ok", "signal_backend_failure": None},
     Summary(blocking=False, accessible=True, mechanism=Mechanism.OK)),
    ("tor all dropped", "tor", {"dir_port_total": 2, "dir_port_accessible": 0, "or_port_total": 3,
                                "or_port_accessible": 0, "obfs4_total": 0, "obfs4_accessible": 0,
                                "targets": {"a": {"failure": "generic_timeout_error"}}},
     Summary(blocking="tcp_ip", accessible=False, mechanism=Mechanism.TCP_TIMEOUT,
             tcp_failure="generic_timeout_error")),
    ("tor some", "tor", {"dir_port_total": 2, "dir_port_accessible": 1},
     Summary(blocking=False, accessible=True, mechanism=Mechanism.OK)),
    ("tor no counts", "tor", {"targets": {}}, Summary()),
    ("keys absent", "telegram", {}, Summary()),
    ("unknown test", "dash", {"simple": {"median_bitrate": 1000}}, Summary()),
    ("keys not an object", "telegram", None, Summary()),  # type: ignore[list-item]  # a stranger's JSON
]  # fmt: skip


@pytest.mark.parametrize(("name", "test", "keys", "expected"), OTHERS, ids=[o[0] for o in OTHERS])
def test_other_tests(name: str, test: str, keys: dict[str, Any], expected: Summary) -> None:
    assert summarize(doc(test, keys)) == expected
