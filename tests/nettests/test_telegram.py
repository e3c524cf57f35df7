"""The Telegram test (ts-020) against loopback data centres and a loopback web.telegram.org."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from probe.errors import ConfigError
from probe.nettests import telegram
from tests.nettests.loopback import CONTEXT, LOCAL, SUMMARY_KEYS, URLGETTER_KEYS, Loopback, loopback, run
from tests.servers.dns_server import Reply
from tests.servers.http_server import HTTPServer, http_server
from tests.servers.tcp_server import closed_port, connection_server, rst_close, tcp_server

TELEGRAM_KEYS = {
    "telegram_http_blocking",
    "telegram_tcp_blocking",
    "telegram_web_failure",
    "telegram_web_status",
}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Loopback]:
    with loopback(tmp_path, {"web.telegram.org": LOCAL, "gone.telegram.org": Reply(rcode="NXDOMAIN")}) as lab:
        yield lab


def reset_after_request(conn: socket.socket) -> None:
    """Read the request head, then reset: a censor matching the request (the connect passed)."""
    request = b""
    while b"\r\n\r\n" not in request and (chunk := conn.recv(4096)):
        request += chunk
    rst_close(conn)


def _measure(lab: Loopback, dc_ports: list[int], web_url: str) -> tuple[dict[str, Any], Any]:
    entries: list[dict[str, Any]] = [{"role": "datacenter", "host": "127.0.0.1", "ports": dc_ports}]
    entries.append({"role": "web", "url": web_url})
    listed = lab.endpoint_list("telegram", entries)
    return run(telegram.measure(listed, context=CONTEXT, config=lab.config(timeout=1.0)))


def _servers(lab: Loopback, stack: ExitStack) -> tuple[HTTPServer, HTTPServer]:
    dc = stack.enter_context(http_server())
    web = stack.enter_context(http_server(lab.cert("web.telegram.org")))
    return dc, web


def test_everything_reachable(world: Loopback) -> None:
    with ExitStack() as stack:
        dc, web = _servers(world, stack)
        doc, m = _measure(world, [dc.port, dc.port], f"https://web.telegram.org:{web.port}/")
    keys = doc["test_keys"]
    assert (doc["test_name"], doc["test_version"], doc["input"], m.target) == (
        "telegram",
        "0.3.1",
        None,
        "telegram",
    )
    assert set(keys) == URLGETTER_KEYS | TELEGRAM_KEYS | SUMMARY_KEYS
    assert {k: keys[k] for k in TELEGRAM_KEYS} == {
        "telegram_http_blocking": False,
        "telegram_tcp_blocking": False,
        "telegram_web_failure": None,
        "telegram_web_status": "ok",
    }
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == (False, True, "ok")
    assert (m.summary.blocking, m.summary.accessible, m.summary.mechanism) == (False, True, "ok")
    # Two POSTs to the data centre (its two ports), plain HTTP; one GET to the web, over TLS.
    assert [(r.method, r.target) for r in dc.requests] == [("POST", "/"), ("POST", "/")]
    assert [r.sni for r in web.requests] == ["web.telegram.org"]
    requests = keys["requests"]
    assert [(r["request"]["method"], r["request"]["url"], r["response"]["code"]) for r in requests] == [
        ("POST", f"http://127.0.0.1:{dc.port}/", 200),
        ("POST", f"http://127.0.0.1:{dc.port}/", 200),
        ("GET", f"https://web.telegram.org:{web.port}/", 200),
    ]
    assert [(c["ip"], c["port"], c["status"]) for c in keys["tcp_connect"]] == [
        ("127.0.0.1", dc.port, {"failure": None, "success": True}),
        ("127.0.0.1", dc.port, {"failure": None, "success": True}),
        ("127.0.0.1", web.port, {"failure": None, "success": True}),
    ]
    [handshake] = keys["tls_handshakes"]
    assert (handshake["server_name"], handshake["failure"]) == ("web.telegram.org", None)
    assert [(q["hostname"], q["query_type"], q["engine"]) for q in keys["queries"]] == [
        ("web.telegram.org", "A", "udp"),
        ("web.telegram.org", "AAAA", "udp"),
    ]
    assert keys["network_events"][0]["operation"] == "connect"
    assert (keys["agent"], keys["failure"], keys["failed_operation"], keys["socksproxy"]) == (
        "redirect", None, None, None,
    )  # fmt: skip


def test_data_centres_unreachable_at_tcp_is_tcp_blocking(world: Loopback) -> None:
    with ExitStack() as stack:
        _, web = _servers(world, stack)
        doc, m = _measure(world, [closed_port(), closed_port()], f"https://web.telegram.org:{web.port}/")
    keys = doc["test_keys"]
    assert {k: keys[k] for k in TELEGRAM_KEYS} == {
        "telegram_http_blocking": True,
        "telegram_tcp_blocking": True,
        "telegram_web_failure": None,
        "telegram_web_status": "ok",
    }
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == ("tcp_ip", False, "tcp.refused")
    assert m.summary.tcp_failure == "connection_refused" and m.summary.http_failure is None
    assert [r["request"]["method"] for r in keys["requests"]] == ["GET"]


def test_data_centres_connected_but_reset_is_http_blocking(world: Loopback) -> None:
    with ExitStack() as stack:
        _, web = _servers(world, stack)
        reset = stack.enter_context(connection_server(reset_after_request))
        doc, m = _measure(world, [reset, reset], f"https://web.telegram.org:{web.port}/")
    keys = doc["test_keys"]
    assert (keys["telegram_tcp_blocking"], keys["telegram_http_blocking"]) == (False, True)
    assert (m.summary.tcp_failure, m.summary.http_failure) == (None, "connection_reset")
    assert keys["telegram_web_status"] == "ok"
    assert (keys["x_blocking"], keys["x_mechanism"]) == ("http-failure", "http.reset")
    assert [r["failure"] for r in keys["requests"][:2]] == ["connection_reset", "connection_reset"]


def test_one_data_centre_port_answering_is_enough(world: Loopback) -> None:
    with ExitStack() as stack:
        dc, web = _servers(world, stack)
        doc, _ = _measure(world, [closed_port(), dc.port], f"https://web.telegram.org:{web.port}/")
    keys = doc["test_keys"]
    assert (keys["telegram_tcp_blocking"], keys["telegram_http_blocking"], keys["x_blocking"]) == (
        False,
        False,
        False,
    )


def test_web_reset_after_the_client_hello(world: Loopback) -> None:
    with ExitStack() as stack:
        dc, _ = _servers(world, stack)
        sni_reset = stack.enter_context(tcp_server("reset_after_hello"))
        doc, m = _measure(world, [dc.port, dc.port], f"https://web.telegram.org:{sni_reset}/")
    keys = doc["test_keys"]
    assert {k: keys[k] for k in TELEGRAM_KEYS} == {
        "telegram_http_blocking": False,
        "telegram_tcp_blocking": False,
        "telegram_web_failure": "connection_reset",
        "telegram_web_status": "blocked",
    }
    # Without a control (or a decoy SNI) the reset is not attributed to the SNI.
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == (
        "http-failure",
        False,
        "tls.reset",
    )
    assert m.summary.tls_failure == "connection_reset"
    assert [h["failure"] for h in keys["tls_handshakes"]] == ["connection_reset"]


def test_web_name_that_does_not_resolve(world: Loopback) -> None:
    with ExitStack() as stack:
        dc, _ = _servers(world, stack)
        doc, m = _measure(world, [dc.port], "https://gone.telegram.org/")
    keys = doc["test_keys"]
    assert (keys["telegram_web_status"], keys["telegram_web_failure"]) == ("blocked", "dns_nxdomain_error")
    assert (keys["x_blocking"], keys["x_mechanism"]) == ("dns", "dns.nxdomain")
    assert m.summary.dns_failure == "dns_nxdomain_error"


def test_a_list_without_the_web_is_refused(world: Loopback) -> None:
    listed = world.endpoint_list("telegram", [{"role": "datacenter", "host": "127.0.0.1", "ports": [80]}])
    with pytest.raises(ConfigError, match=r'no telegram endpoint with role "web"$'):
        run(telegram.measure(listed, context=CONTEXT))
