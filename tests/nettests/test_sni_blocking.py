"""The SNI blocking test (ts-024) against loopback TLS servers that filter by name or by address."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import pytest
import trustme

from probe import serialize
from probe.analysis import sni
from probe.mechanism import Mechanism
from probe.nettests import sni_blocking
from probe.nettests.base import Context
from probe.steps import failures
from probe.steps.clock import relative_clock
from tests.servers.tcp_server import closed_port, connection_server, rst_close, tcp_server

TIMEOUT = 1.0
BLOCKED = "blocked.test"
DECOY = "decoy.test"
CONTEXT = Context(probe_cc="PK", probe_asn="AS9541")
Action = Literal["reset", "drop", "close"]


@pytest.fixture(scope="module")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    """The test helper's certificate: it serves the decoy name only (the usual case)."""
    return ca.issue_cert(DECOY)


@pytest.fixture
def verifying(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@contextmanager
def sni_filter(cert: trustme.LeafCert, action: Action, *, name: str = BLOCKED) -> Iterator[int]:
    """A TLS server behind a censor that acts on ClientHellos carrying *name* (a string match)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    wrapped: list[ssl.SSLSocket] = []

    def handle(conn: socket.socket) -> None:
        hello = b""
        while len(hello) < 5 or len(hello) < 5 + int.from_bytes(hello[3:5], "big"):
            hello = conn.recv(16384, socket.MSG_PEEK)
        if name.encode() not in hello:
            wrapped.append(context.wrap_socket(conn, server_side=True))
        elif action == "reset":
            conn.recv(16384)
            rst_close(conn)
        elif action == "close":
            conn.recv(16384)
            conn.close()
        # drop: read nothing more, answer nothing (the server's connection is held)

    try:
        with connection_server(handle, threaded=True) as port:
            yield port
    finally:
        for sock in wrapped:
            sock.close()


def run(port: int, verifying: ssl.SSLContext, *, testhelper: str | None = None) -> tuple[dict[str, Any], Any]:
    m = asyncio.run(
        sni_blocking.measure(
            f"https://{BLOCKED}/path",
            context=CONTEXT,
            control_sni=DECOY,
            testhelper=testhelper or f"127.0.0.1:{port}",
            ssl_context=verifying,
            timeout=TIMEOUT,
        )
    )
    doc = json.loads(serialize.to_json(m))
    assert (doc["test_name"], doc["test_version"], doc["input"]) == ("sni_blocking", "0.3.0", BLOCKED)
    return doc["test_keys"], m.summary


def test_a_name_that_passes_draws_the_servers_certificate(
    server_cert: trustme.LeafCert, verifying: ssl.SSLContext
) -> None:
    with sni_filter(server_cert, "reset", name="nothing.blocked") as port:
        keys, summary = run(port, verifying)
    assert set(keys) == {"control", "result", "target", "x_blocking", "x_accessible", "x_mechanism"}
    assert set(keys["target"]) == {
        "failure", "network_events", "queries", "requests", "sni", "tcp_connect", "th_address",
        "tls_handshakes",
    }  # fmt: skip
    assert (keys["target"]["sni"], keys["control"]["sni"]) == (BLOCKED, DECOY)
    assert keys["target"]["th_address"] == keys["control"]["th_address"] == f"127.0.0.1:{port}"
    assert keys["target"]["failure"] == "ssl_invalid_hostname"  # a certificate for the decoy: it got through
    assert keys["control"]["failure"] is None
    assert keys["target"]["queries"] is None and keys["target"]["requests"] is None
    assert keys["target"]["tls_handshakes"][0]["server_name"] == BLOCKED
    assert keys["result"] == "success.got_server_hello"
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == (False, True, "ok")
    assert (summary.blocking, summary.mechanism) == (False, Mechanism.OK)


@pytest.mark.parametrize(
    ("action", "failure", "result", "mechanism"),
    [
        ("reset", "connection_reset", "interference.reset", Mechanism.TLS_RESET_SNI),
        ("close", "eof_error", "interference.closed", Mechanism.TLS_EOF_SNI),
        ("drop", "generic_timeout_error", "anomaly.timeout", Mechanism.TLS_TIMEOUT_SNI),
    ],
)
def test_a_filtered_name_fails_where_the_decoy_passes(
    server_cert: trustme.LeafCert, verifying: ssl.SSLContext, action: Action, failure: str, result: str,
    mechanism: Mechanism,
) -> None:  # fmt: skip
    with sni_filter(server_cert, action) as port:
        keys, summary = run(port, verifying)
    assert (keys["target"]["failure"], keys["control"]["failure"]) == (failure, None)
    assert keys["target"]["tcp_connect"][0]["status"] == {"failure": None, "success": True}
    assert keys["target"]["tls_handshakes"][0]["failure"] == failure
    assert keys["result"] == result
    assert (keys["x_blocking"], keys["x_accessible"], keys["x_mechanism"]) == (
        "http-failure",
        False,
        mechanism.value,
    )
    assert (summary.tls_failure, summary.control_failure) == (failure, None)


def test_every_handshake_to_the_address_reset_is_not_the_name(verifying: ssl.SSLContext) -> None:
    with tcp_server("reset_after_hello") as port:
        keys, summary = run(port, verifying)
    assert (keys["target"]["failure"], keys["control"]["failure"]) == ("connection_reset", "connection_reset")
    assert keys["result"] == "interference.reset"  # probe-cli's class reads the target alone
    assert (summary.blocking, summary.mechanism) == ("http-failure", Mechanism.TLS_RESET)


def test_an_unreachable_address_is_ip_level(verifying: ssl.SSLContext) -> None:
    keys, summary = run(closed_port(), verifying)
    assert (keys["target"]["failure"], keys["control"]["failure"]) == (
        "connection_refused",
        "connection_refused",
    )
    assert keys["target"]["tls_handshakes"] is None
    assert keys["result"] == "anomaly.test_helper_unreachable"
    assert (summary.blocking, summary.mechanism, summary.tcp_failure) == (
        "tcp_ip",
        Mechanism.TCP_REFUSED,
        "connection_refused",
    )


def test_a_named_test_helper_is_resolved_and_recorded(
    server_cert: trustme.LeafCert, verifying: ssl.SSLContext
) -> None:
    with sni_filter(server_cert, "reset") as port:
        keys, summary = run(port, verifying, testhelper=f"localhost:{port}")
    [query] = keys["target"]["queries"]
    assert (query["hostname"], query["engine"], query["failure"]) == ("localhost", "getaddrinfo", None)
    assert keys["target"]["th_address"] == f"localhost:{port}"
    assert keys["target"]["tcp_connect"][0]["ip"] == "127.0.0.1"
    assert summary.mechanism == Mechanism.TLS_RESET_SNI


def test_the_decoy_check_alone(server_cert: trustme.LeafCert, verifying: ssl.SSLContext) -> None:
    with sni_filter(server_cert, "reset") as port:
        check = asyncio.run(
            sni_blocking.decoy_check(
                "127.0.0.1",
                port,
                target_sni=BLOCKED,
                control_sni=DECOY,
                ssl_context=verifying,
                timeout=TIMEOUT,
                clock=relative_clock(),
            )
        )
    assert (check.target.failure, check.target.failed_operation) == ("connection_reset", "tls_handshake")
    assert (check.control.failure, check.control.failed_operation) == (None, None)
    assert check.verdict.sni_filtering and check.verdict.mechanism == Mechanism.TLS_RESET_SNI


def test_inputs() -> None:
    assert sni_blocking.target_name("https://Example.COM:8443/x?y") == "example.com"
    assert sni_blocking.target_name("bücher.example") == "xn--bcher-kva.example"
    assert sni_blocking.split_testhelper("[::1]:443") == ("::1", 443)
    assert sni_blocking.split_testhelper("ps.ooni.io:443") == ("ps.ooni.io", 443)
    with pytest.raises(Exception, match="expected ip:port"):
        sni_blocking.split_testhelper("ps.ooni.io")


T, C = "tls_handshake", "connect"
OK = sni.Handshake(None)
RESET, TIMEOUT_T = sni.Handshake(failures.CONNECTION_RESET, T), sni.Handshake(failures.GENERIC_TIMEOUT, T)
HF = "http-failure"


@pytest.mark.parametrize(
    ("target", "control", "blocking", "mechanism"),
    [
        (OK, OK, False, Mechanism.OK),
        (sni.Handshake(failures.SSL_INVALID_HOSTNAME, T), OK, False, Mechanism.OK),
        (RESET, OK, HF, Mechanism.TLS_RESET_SNI),
        (RESET, sni.Handshake(failures.SSL_INVALID_HOSTNAME, T), HF, Mechanism.TLS_RESET_SNI),
        (TIMEOUT_T, OK, HF, Mechanism.TLS_TIMEOUT_SNI),
        (sni.Handshake(failures.EOF_ERROR, T), OK, HF, Mechanism.TLS_EOF_SNI),
        (sni.Handshake(failures.SSL_FAILED_HANDSHAKE, T), OK, HF, Mechanism.TLS_EOF_SNI),
        (sni.Handshake(failures.SSL_UNKNOWN_AUTHORITY, T), OK, HF, Mechanism.TLS_MITM),
        (RESET, RESET, HF, Mechanism.TLS_RESET),
        (TIMEOUT_T, TIMEOUT_T, HF, Mechanism.TLS_TIMEOUT),
        (
            sni.Handshake(failures.GENERIC_TIMEOUT, C),
            sni.Handshake(failures.GENERIC_TIMEOUT, C),
            "tcp_ip",
            Mechanism.TCP_TIMEOUT,
        ),
        (sni.Handshake(failures.CONNECTION_REFUSED, C), OK, "tcp_ip", Mechanism.TCP_REFUSED),
    ],
)
def test_the_decision(
    target: sni.Handshake, control: sni.Handshake, blocking: object, mechanism: Mechanism
) -> None:
    verdict = sni.decide(target, control)
    assert (verdict.blocking, verdict.mechanism) == (blocking, mechanism)
    assert verdict.accessible is (blocking is False)
    assert verdict.sni_filtering is (mechanism in sni.SNI_MECHANISMS)


def test_probe_sni_blocking_from_the_command_line_and_the_list(
    server_cert: trustme.LeafCert, ca_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from probe.cli import main

    with sni_filter(server_cert, "reset") as port:
        args = ["--testhelper", f"127.0.0.1:{port}", "--control-sni", DECOY, "--ca-file", str(ca_file)]
        assert main(["sni-blocking", BLOCKED, "fine.test", *args, "--timeout", "1", "--json"]) == 0
        docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(d["input"], d["test_keys"]["result"], d["test_keys"]["x_mechanism"]) for d in docs] == [
            (BLOCKED, "interference.reset", "tls.reset.sni"), ("fine.test", "success.got_server_hello", "ok"),
        ]  # fmt: skip
        listed = tmp_path / "sni.toml"
        listed.write_text(
            f'[[sni_blocking]]\nrole = "target"\nhost = "{BLOCKED}"\n'
            f'[[sni_blocking]]\nrole = "testhelper"\nhost = "127.0.0.1"\nports = [{port}]\n'
            f'server_name = "{DECOY}"\n'
        )
        assert (
            main(["sni-blocking", "--endpoints", str(listed), "--ca-file", str(ca_file), "--timeout", "1"])
            == 0
        )
    out = capsys.readouterr().out
    assert f"target sni={BLOCKED} at 127.0.0.1:{port}: connection_reset" in out
    assert f"control sni={DECOY} at 127.0.0.1:{port}: ok" in out
    assert "result: interference.reset" in out and "mechanism=tls.reset.sni → blocked (anomaly)" in out
    listed.write_text('[[sni_blocking]]\nrole = "testhelper"\nhost = "127.0.0.1"\nports = [443]\n')
    assert main(["sni-blocking", "--endpoints", str(listed)]) == 2
    assert f"no TARGET, and {listed} lists no target" in capsys.readouterr().err


# --- the web measurement's follow-up ------------------------------------------------------------


def web_keys(port: int, resolver: Any, ca_file: Path) -> Any:
    from probe import webconnectivity
    from probe.steps.dns import ResolverSpec

    config = webconnectivity.MeasureConfig(
        resolvers=(ResolverSpec("udp", resolver.host, resolver.port),), use_system_resolver=False,
        allow_loopback=True, ca_file=ca_file,
    ).with_timeout(TIMEOUT)  # fmt: skip
    return asyncio.run(webconnectivity.measure(f"https://{BLOCKED}:{port}/", config=config)).test_keys


@pytest.mark.parametrize(
    ("server", "before", "after", "decoy_failure"),
    [
        ("reset", Mechanism.TLS_RESET, Mechanism.TLS_RESET_SNI, None),
        ("drop", Mechanism.TLS_TIMEOUT, Mechanism.TLS_TIMEOUT_SNI, None),
        ("every hello reset", Mechanism.TLS_RESET, Mechanism.TLS_RESET, "connection_reset"),
    ],
)
def test_a_failed_web_handshake_is_settled_by_a_decoy_to_its_address(
    server: str, before: Mechanism, after: Mechanism, decoy_failure: str | None,
    server_cert: trustme.LeafCert, verifying: ssl.SSLContext, ca_file: Path,
) -> None:  # fmt: skip
    from tests.servers.dns_server import Reply, ScriptedDNSServer

    with ScriptedDNSServer({BLOCKED: Reply(a=("127.0.0.1",))}) as resolver:
        if server == "every hello reset":
            with tcp_server("reset_after_hello") as port:
                keys = web_keys(port, resolver, ca_file)
                settled = asyncio.run(follow_up(keys, verifying))
        else:
            with sni_filter(server_cert, server) as port:  # type: ignore[arg-type]  # an Action
                keys = web_keys(port, resolver, ca_file)
                settled = asyncio.run(follow_up(keys, verifying))
    assert (keys.blocking, keys.mechanism) == (None, before)  # no control: what the probe saw
    assert settled.mechanism == after
    assert (settled.blocking, settled.accessible) == (keys.blocking, keys.accessible)  # OONI's keys stay
    decoy_connect = settled.tcp_connect[-1]
    assert (decoy_connect.ip, decoy_connect.port, decoy_connect.tags) == ("127.0.0.1", port, ("x_decoy_sni",))
    decoy = settled.tls_handshakes[-1]
    assert (decoy.server_name, decoy.failure, decoy.tags) == (DECOY, decoy_failure, ("x_decoy_sni",))
    assert settled.tls_handshakes[:-1] == keys.tls_handshakes and settled.tcp_connect[:-1] == keys.tcp_connect
    assert decoy.transaction_id > max(c.transaction_id for c in keys.tcp_connect)


async def follow_up(keys: Any, context: ssl.SSLContext) -> Any:
    return await sni_blocking.follow_up(
        keys, decoy_sni=DECOY, ssl_context=context, timeout=TIMEOUT, clock=relative_clock()
    )


def test_a_measurement_without_a_failed_handshake_is_not_followed_up(
    server_cert: trustme.LeafCert, verifying: ssl.SSLContext, ca_file: Path
) -> None:
    from tests.servers.dns_server import Reply, ScriptedDNSServer

    with ScriptedDNSServer({BLOCKED: Reply(a=("127.0.0.1",))}) as resolver:
        keys = web_keys(closed_port(), resolver, ca_file)  # refused: a TCP mechanism
        assert asyncio.run(follow_up(keys, verifying)) is keys
    assert keys.mechanism == Mechanism.TCP_REFUSED


def test_the_shipped_list() -> None:
    from probe.nettests import endpoints

    listed = endpoints.load("sni_blocking")
    helper = listed.one("testhelper")
    assert (helper.host, helper.ports, helper.sni) == ("example.org", (443,), "example.org")
    targets = [e.host for e in listed.role("target")]
    assert targets == ["insaf.pk", "pticandidates.com", "factfocus.com", "x.com"]


@pytest.mark.parametrize(
    ("decoy_sni", "mechanism"), [(None, Mechanism.TLS_RESET), (DECOY, Mechanism.TLS_RESET_SNI)]
)
def test_the_web_measurement_follows_up_when_given_a_decoy(
    decoy_sni: str | None, mechanism: Mechanism, server_cert: trustme.LeafCert, ca_file: Path
) -> None:
    from probe import webconnectivity
    from probe.steps.dns import ResolverSpec
    from tests.servers.dns_server import Reply, ScriptedDNSServer

    with (
        ScriptedDNSServer({BLOCKED: Reply(a=("127.0.0.1",))}) as resolver,
        sni_filter(server_cert, "reset") as port,
    ):
        config = webconnectivity.MeasureConfig(
            resolvers=(ResolverSpec("udp", resolver.host, resolver.port),), use_system_resolver=False,
            allow_loopback=True, ca_file=ca_file, decoy_sni=decoy_sni,
        ).with_timeout(TIMEOUT)  # fmt: skip
        m = asyncio.run(webconnectivity.measure(f"https://{BLOCKED}:{port}/", config=config))
    keys = json.loads(serialize.to_json(m))["test_keys"]
    assert keys["x_mechanism"] == mechanism.value
    decoys = [h for h in keys["tls_handshakes"] if "x_decoy_sni" in h["tags"]]
    assert [(h["server_name"], h["failure"]) for h in decoys] == ([(DECOY, None)] if decoy_sni else [])


@pytest.mark.parametrize("via", ["flag", "settings"])
def test_probe_measure_takes_the_decoy_from_its_flag_or_the_settings(
    via: str, server_cert: trustme.LeafCert, ca_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from probe.cli import main
    from tests.servers.dns_server import Reply, ScriptedDNSServer

    with (
        ScriptedDNSServer({BLOCKED: Reply(a=("127.0.0.1",))}) as resolver,
        sni_filter(server_cert, "reset") as port,
    ):
        args = ["measure", f"https://{BLOCKED}:{port}/", "--resolver", f"{resolver.host}:{resolver.port}",
                "--no-system-resolver", "--allow-loopback", "--ca-file", str(ca_file), "--control", "none",
                "--timeout", str(TIMEOUT), "--json"]  # fmt: skip
        if via == "flag":
            args += ["--decoy-sni", DECOY.upper()]
        else:
            settings = tmp_path / "settings.toml"
            settings.write_text(f'[measure]\ndecoy_sni = "{DECOY}"\n')
            args += ["--config", str(settings)]
        assert main(args) == 0
    keys = json.loads(capsys.readouterr().out)["test_keys"]
    assert keys["x_mechanism"] == "tls.reset.sni"
    decoys = [h for h in keys["tls_handshakes"] if "x_decoy_sni" in h["tags"]]
    assert [(h["server_name"], h["failure"]) for h in decoys] == [(DECOY, None)]


def test_a_decoy_that_is_not_a_host_name_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from probe.cli import main

    assert main(["measure", "https://x.test/", "--decoy-sni", "a b"]) == 2
    assert "--decoy-sni" in capsys.readouterr().err
    settings = tmp_path / "settings.toml"
    settings.write_text('[measure]\ndecoy_sni = "a..b"\n')
    assert main(["measure", "https://x.test/", "--config", str(settings)]) == 2
    assert f"{settings}: measure.decoy_sni: " in capsys.readouterr().err
