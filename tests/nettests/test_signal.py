"""The Signal test (ts-029) against loopback backends."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import trustme

from probe.errors import ConfigError
from probe.nettests import signal
from tests.nettests.loopback import CONTEXT, LOCAL, SUMMARY_KEYS, URLGETTER_KEYS, Loopback, loopback, run
from tests.servers.dns_server import Reply
from tests.servers.http_server import http_server
from tests.servers.tcp_server import tcp_server

BACKENDS = ("textsecure-service.whispersystems.org", "storage.signal.org", "cdn.signal.org")
SIGNAL_KEYS = {"signal_backend_failure", "signal_backend_status"}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Loopback]:
    script = {name: LOCAL for name in BACKENDS} | {"uptime.signal.org": Reply(rcode="SERVFAIL")}
    with loopback(tmp_path, script) as lab:
        yield lab


def _measure(lab: Loopback, ports: dict[str, int]) -> tuple[dict[str, Any], Any]:
    entries: list[dict[str, Any]] = [
        {"role": "backend", "url": f"https://{h}:{p}/"} for h, p in ports.items()
    ]
    entries.append({"role": "uptime", "host": "uptime.signal.org"})
    listed = lab.endpoint_list("signal", entries)
    return run(signal.measure(listed, context=CONTEXT, config=lab.config(timeout=1.0)))


def test_every_backend_reachable(world: Loopback) -> None:
    with ExitStack() as stack:
        servers = {name: stack.enter_context(http_server(world.cert(name))) for name in BACKENDS}
        doc, m = _measure(world, {name: server.port for name, server in servers.items()})
    keys = doc["test_keys"]
    assert (doc["test_name"], doc["test_version"], doc["input"], m.target) == (
        "signal",
        "0.2.2",
        None,
        "signal",
    )
    assert set(keys) == URLGETTER_KEYS | SIGNAL_KEYS | SUMMARY_KEYS
    assert (keys["signal_backend_status"], keys["signal_backend_failure"]) == ("ok", None)
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == (False, True, "ok")
    assert [h["server_name"] for h in keys["tls_handshakes"]] == list(BACKENDS)
    assert [(r["request"]["method"], r["response"]["code"]) for r in keys["requests"]] == [("GET", 200)] * 3
    # The uptime lookup is recorded (its SERVFAIL too) but not judged.
    uptime = [q for q in keys["queries"] if q["hostname"] == "uptime.signal.org"]
    assert [(q["query_type"], q["failure"]) for q in uptime] == [
        ("A", "dns_servfail_error"),
        ("AAAA", "dns_servfail_error"),
    ]
    assert [s.sni for s in servers.values() for s in s.requests] == list(BACKENDS)


def test_a_backend_reset_by_sni_makes_signal_blocked(world: Loopback) -> None:
    with ExitStack() as stack:
        first = stack.enter_context(http_server(world.cert(BACKENDS[0])))
        reset = stack.enter_context(tcp_server("reset_after_hello"))
        last = stack.enter_context(http_server(world.cert(BACKENDS[2])))
        doc, m = _measure(world, {BACKENDS[0]: first.port, BACKENDS[1]: reset, BACKENDS[2]: last.port})
    keys = doc["test_keys"]
    assert {k: keys[k] for k in SIGNAL_KEYS} == {
        "signal_backend_failure": "connection_reset",
        "signal_backend_status": "blocked",
    }
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == (
        "http-failure",
        False,
        "tls.reset",
    )
    assert (m.summary.blocking, m.summary.tls_failure) == ("http-failure", "connection_reset")
    assert [h["failure"] for h in keys["tls_handshakes"]] == [None, "connection_reset", None]


def test_a_backend_whose_certificate_no_root_signs_is_blocked(world: Loopback) -> None:
    with ExitStack() as stack:
        stranger = stack.enter_context(http_server(trustme.CA().issue_cert(BACKENDS[0])))
        doc, _ = _measure(world, {BACKENDS[0]: stranger.port})
    keys = doc["test_keys"]
    assert (keys["signal_backend_status"], keys["signal_backend_failure"]) == (
        "blocked",
        "ssl_unknown_authority",
    )
    assert keys["x_mechanism"] == "tls.certificate"


def test_signals_own_roots_are_trusted_besides_the_store() -> None:
    roots = signal.signal_roots()
    context = ssl.create_default_context(cadata=roots)
    subjects = [dict(x[0] for x in cert["subject"])["commonName"] for cert in context.get_ca_certs()]
    assert subjects == ["TextSecure", "Signal Messenger"]


def test_a_roots_file_without_certificates_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "roots.toml"
    path.write_text('roots = ["not a certificate"]\n')
    with pytest.raises(ConfigError) as caught:
        signal.signal_roots(path)
    assert str(caught.value) == f"{path}: roots: expected a list of PEM certificates"


def test_an_address_of_the_volunteer_echoed_by_a_server_is_scrubbed(world: Loopback) -> None:
    # The volunteer's address as the round's whoami learned it (192.0.2.9 here): a backend
    # that echoes it (in its body and title) must not put it in the measurement.
    with http_server(world.cert(BACKENDS[1])) as server:
        listed = world.endpoint_list(
            "signal",
            [
                {
                    "role": "backend",
                    "url": f"https://{BACKENDS[1]}:{server.port}/echo?body=<title>you+are+192.0.2.9</title>",
                }
            ],
        )
        config = world.config(timeout=1.0, volunteer_addresses=("192.0.2.9",))
        doc, _ = run(signal.measure(listed, context=CONTEXT, config=config))
    text = json.dumps(doc)
    assert "192.0.2.9" not in text
    [request] = doc["test_keys"]["requests"]
    assert request["response"]["body"] == "<title>you are [scrubbed]</title>"
    assert request["response"]["x_title"] == "you are [scrubbed]"
    assert doc["test_keys"]["signal_backend_status"] == "ok"
