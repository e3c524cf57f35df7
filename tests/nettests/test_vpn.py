"""WireGuard and OpenVPN handshakes against real loopback responders (probe.lab.vpnserver)."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from probe import serialize
from probe.errors import ConfigError
from probe.lab import vpnserver
from probe.mechanism import Mechanism
from probe.model import OONIMeasurement
from probe.nettests import endpoints, openvpn, ovpnproto, vpn, wgnoise, wireguard
from probe.nettests.base import Context
from tests.servers.tcp_server import closed_port, connection_server, rst_close, tcp_server

TIMEOUT = 1.5
CONTEXT = Context(probe_cc="PK", probe_asn="AS17557")


def raw(private: X25519PrivateKey) -> bytes:
    return private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


SERVER, CLIENT, STRANGER = (X25519PrivateKey.generate() for _ in range(3))
PSK = bytes(range(32))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serving(*services: dict[str, Any]) -> Iterator[None]:
    """Run probe.lab.vpnserver's services on 127.0.0.1 in a thread of their own."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    listeners: list[Any] = []

    async def main() -> None:
        listeners.extend(
            await vpnserver.start({"services": [{"address": "127.0.0.1", **s} for s in services]})
        )
        started.set()

    thread = threading.Thread(
        target=lambda: (loop.run_until_complete(main()), loop.run_forever()), daemon=True
    )
    thread.start()
    assert started.wait(5)
    try:
        yield
    finally:

        def stop() -> None:
            for listener in listeners:
                listener.close()
            loop.stop()

        loop.call_soon_threadsafe(stop)
        thread.join(5)
        loop.run_until_complete(asyncio.sleep(0.01))  # the transports' close callbacks
        loop.close()


def wg_service(
    port: int, *, peers: tuple[X25519PrivateKey, ...] = (CLIENT,), psk: bytes = PSK
) -> dict[str, Any]:
    return {
        "kind": "wireguard",
        "port": port,
        "params": {
            "wireguard_private_key": base64.b64encode(raw(SERVER)).decode(),
            "wireguard_peers": [base64.b64encode(wgnoise.public_bytes(p)).decode() for p in peers],
            "wireguard_preshared_key": base64.b64encode(psk).decode(),
        },
    }


def wg_target(
    port: int, *, client: X25519PrivateKey = CLIENT, server_public: bytes | None = None, psk: bytes = PSK
) -> wireguard.WireGuardEndpoint:
    return wireguard.WireGuardEndpoint(
        "127.0.0.1", port, public_key=server_public or wgnoise.public_bytes(SERVER), private_key=raw(client),
        preshared_key=psk,
    )  # fmt: skip


def keys_of(m: OONIMeasurement) -> dict[str, Any]:
    return dict(json.loads(serialize.to_json(m))["test_keys"])


# --- the Noise messages ------------------------------------------------------------------------


def test_the_initiation_and_response_have_wireguards_sizes_and_check_each_other() -> None:
    initiation = wgnoise.initiate(
        static=CLIENT, responder_public=wgnoise.public_bytes(SERVER), sender_index=7
    )
    assert len(initiation.message) == 148 and initiation.message[:8] == b"\x01\0\0\0\x07\0\0\0"
    assert initiation.message[132:] == bytes(16)  # no cookie: mac2 is zero
    consumed = wgnoise.consume_initiation(
        initiation.message, static=SERVER, peers={wgnoise.public_bytes(CLIENT): b"\0" * 32}
    )
    assert consumed.initiator_public == wgnoise.public_bytes(CLIENT) and consumed.sender_index == 7
    response = wgnoise.respond(consumed, sender_index=9)
    assert len(response) == 92 and response[:12] == b"\x02\0\0\0\x09\0\0\0\x07\0\0\0"
    initiation.accept(response)
    tampered = response[:50] + bytes([response[50] ^ 1]) + response[51:]
    with pytest.raises(wgnoise.HandshakeError, match="mac1"):
        initiation.accept(tampered)


def test_the_responder_refuses_strangers_bad_macs_and_replays() -> None:
    responder = vpnserver.WireGuardResponder(raw(SERVER), [wgnoise.public_bytes(CLIENT)], PSK)
    good = wgnoise.initiate(static=CLIENT, responder_public=wgnoise.public_bytes(SERVER), preshared_key=PSK)
    assert responder.handle(good.message) is not None
    assert responder.handle(good.message) is None  # a replay: its timestamp is not newer
    stranger = wgnoise.initiate(static=STRANGER, responder_public=wgnoise.public_bytes(SERVER))
    assert responder.handle(stranger.message) is None  # not a peer
    wrong_key = wgnoise.initiate(static=CLIENT, responder_public=wgnoise.public_bytes(STRANGER))
    assert responder.handle(wrong_key.message) is None  # mac1 keyed for another server
    assert responder.handle(b"\x01" + bytes(147)) is None and responder.refused == 4


# --- WireGuard over loopback UDP -----------------------------------------------------------------


def test_wireguard_handshake_answered() -> None:
    port = free_udp_port()
    with serving(wg_service(port)):
        m = asyncio.run(wireguard.measure(wg_target(port), context=CONTEXT, timeout=TIMEOUT))
    keys = keys_of(m)
    assert m.document["input"] == f"wireguard://unknown.corp/?address=127.0.0.1:{port}"
    assert m.test_name == "wireguard" and m.target == m.document["input"]
    names = ("success", "failure", "urlget", "x_endpoint", "x_transport", "x_response")
    assert {k: keys[k] for k in names} == {
        "success": True, "failure": None, "urlget": [], "x_endpoint": f"127.0.0.1:{port}",
        "x_transport": "udp",
        "x_response": "handshake_response",
    }  # fmt: skip
    # One initiation answered (a loaded machine may have sent a second before the answer came).
    events = [(e["operation"], e["x_num_bytes"]) for e in keys["network_events"]]
    assert events == [("SEND_HANDSHAKE_INIT", 148)] * keys["x_attempts"] + [("RECV_HANDSHAKE_RESP", 92)]
    assert "private_key" not in json.dumps(m.document) and base64.b64encode(
        raw(CLIENT)
    ).decode() not in json.dumps(m.document)
    assert (m.summary.blocking, m.summary.accessible, m.summary.mechanism) == (False, True, Mechanism.OK)


@pytest.mark.parametrize(
    ("case", "failure", "mechanism", "blocking"),
    [
        ("unknown client key", "generic_timeout_error", Mechanism.VPN_TIMEOUT, "tcp_ip"),
        ("wrong server key", "generic_timeout_error", Mechanism.VPN_TIMEOUT, "tcp_ip"),
        ("wrong preshared key", "unexpected_response", Mechanism.VPN_BAD_RESPONSE, "http-failure"),
        ("closed port", "connection_refused", Mechanism.VPN_REFUSED, "tcp_ip"),
        ("echo", "unexpected_response", Mechanism.VPN_BAD_RESPONSE, "http-failure"),
    ],
)
def test_wireguard_handshake_not_answered(
    case: str, failure: str, mechanism: Mechanism, blocking: str
) -> None:
    port = free_udp_port()
    target = {
        "unknown client key": wg_target(port, client=STRANGER),
        "wrong server key": wg_target(port, server_public=wgnoise.public_bytes(STRANGER)),
        "wrong preshared key": wg_target(port, psk=bytes(32)),
        "closed port": wg_target(port),
        "echo": wg_target(port),
    }[case]
    if case == "closed port":
        m = asyncio.run(wireguard.measure(target, context=CONTEXT, timeout=TIMEOUT))
    elif case == "echo":
        with echo_udp(port):
            m = asyncio.run(wireguard.measure(target, context=CONTEXT, timeout=TIMEOUT))
    else:
        with serving(wg_service(port)):
            m = asyncio.run(wireguard.measure(target, context=CONTEXT, timeout=TIMEOUT))
    keys = keys_of(m)
    assert (keys["success"], keys["failure"], keys["x_response"]) == (False, failure, None)
    operations = [e["operation"] for e in keys["network_events"]]
    assert (
        set(operations) <= {"SEND_HANDSHAKE_INIT", "packet_dropped"}
        and operations[0] == "SEND_HANDSHAKE_INIT"
    )
    if failure != "connection_refused":
        # One a second until the timeout (1.5 s): two, unless a loaded machine delayed the second.
        assert keys["x_attempts"] in (1, 2) and operations.count("SEND_HANDSHAKE_INIT") == keys["x_attempts"]
    assert ("packet_dropped" in operations) is (failure == "unexpected_response")
    assert (m.summary.blocking, m.summary.accessible, m.summary.mechanism) == (blocking, False, mechanism)
    summary_keys = [keys[k] for k in ("x_blocking", "x_accessible", "x_mechanism")]
    assert summary_keys == [blocking, False, mechanism.value]


@pytest.mark.parametrize(("index_offset", "failure"), [(0, None), (1, "unexpected_response")])
def test_a_cookie_reply_to_our_initiation_means_a_loaded_server_read_it(
    index_offset: int, failure: str | None
) -> None:
    port = free_udp_port()

    def cookie_reply(datagram: bytes) -> bytes:
        (sender,) = struct.unpack_from("<I", datagram, 4)  # the initiation's sender index
        return struct.pack("<B3xI", 3, sender + index_offset) + secrets.token_bytes(24 + 32)

    with echo_udp(port, answer=cookie_reply):
        m = asyncio.run(wireguard.measure(wg_target(port), context=CONTEXT, timeout=TIMEOUT))
    keys = keys_of(m)
    assert keys["failure"] == failure
    if failure is None:
        assert keys["x_response"] == "cookie_reply"
        assert [e["operation"] for e in keys["network_events"]][-1] == "RECV_COOKIE_REPLY"
    else:  # a cookie reply for another initiation is not ours
        assert "packet_dropped" in [e["operation"] for e in keys["network_events"]]


@contextmanager
def echo_udp(port: int, answer: Callable[[bytes], bytes] = bytes) -> Iterator[None]:
    """Send every datagram back, or *answer*'s reply to it (a UDP service that is not WireGuard)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.settimeout(0.05)
        stop = threading.Event()

        def run() -> None:
            while not stop.is_set():
                try:
                    data, peer = sock.recvfrom(2048)
                except TimeoutError:
                    continue
                sock.sendto(answer(data), peer)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)


# --- OpenVPN -------------------------------------------------------------------------------------


def test_the_hard_reset_packets_are_openvpns() -> None:
    session = bytes.fromhex("0102030405060708")
    client = ovpnproto.client_hard_reset(session)
    assert client.encode() == bytes.fromhex("38 0102030405060708 00 00000000")
    server = ovpnproto.server_hard_reset(client, bytes.fromhex("1112131415161718"))
    assert server.encode() == bytes.fromhex("40 1112131415161718 01 00000000 0102030405060708 00000000")
    assert ovpnproto.decode(server.encode()) == server
    assert ovpnproto.is_server_hard_reset(server, session) and not ovpnproto.is_server_hard_reset(
        server, bytes(8)
    )
    assert ovpnproto.ack(session, server.session_id).encode() == bytes.fromhex(
        "28 0102030405060708 01 00000000 1112131415161718"
    )
    with pytest.raises(ovpnproto.PacketError):
        ovpnproto.decode(b"GET / HTTP/1.1\r\n\r\n")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_openvpn_hard_reset_answered(transport: str) -> None:
    if transport == "udp":
        port = free_udp_port()
        with serving({"kind": "openvpn_udp", "port": port}):
            m = asyncio.run(
                openvpn.measure(
                    openvpn.OpenVPNEndpoint("127.0.0.1", port, "udp", "lab"), context=CONTEXT, timeout=TIMEOUT
                )
            )
    else:
        with tcp_port() as port, serving({"kind": "openvpn_tcp", "port": port}):
            m = asyncio.run(
                openvpn.measure(
                    openvpn.OpenVPNEndpoint("127.0.0.1", port, "tcp", "lab"), context=CONTEXT, timeout=TIMEOUT
                )
            )
    keys = keys_of(m)
    assert m.document["input"] == f"openvpn://lab.corp/?address=127.0.0.1:{port}&transport={transport}"
    assert (keys["success"], keys["failure"], keys["tunnel"], keys["x_stage"]) == (
        True,
        None,
        "openvpn",
        "hard_reset",
    )
    [handshake] = keys["openvpn_handshake"]
    names = ("endpoint", "failure", "ip", "port", "transport", "provider", "openvpn_options", "tags")
    assert {k: handshake[k] for k in (*names, "transaction_id")} == {
        "endpoint": f"openvpn://127.0.0.1:{port}/{transport}", "failure": None, "ip": "127.0.0.1",
        "port": port,
        "transport": transport, "provider": "lab", "openvpn_options": {}, "tags": [], "transaction_id": 1,
    }  # fmt: skip
    assert handshake["handshake_time"] == pytest.approx(handshake["t"] - handshake["t0"], abs=1e-5)
    assert [
        (e["operation"], e["stage"], e["packet"] and e["packet"]["opcode"]) for e in keys["network_events"]
    ] == [
        ("state", "PRE_START", None),
        ("packet_out", "PRE_START", "P_CONTROL_HARD_RESET_CLIENT_V2"),
        ("state", "START", None),
        ("packet_in", "START", "P_CONTROL_HARD_RESET_SERVER_V2"),
        ("packet_out", "START", "P_ACK_V1"),
    ]
    assert keys["network_events"][3]["packet"] == {
        "operation": "read", "opcode": "P_CONTROL_HARD_RESET_SERVER_V2", "id": 0, "acks": [0],
        "payload_size": 0, "send_attempts": None,
    }  # fmt: skip
    if transport == "tcp":
        assert [c["status"] for c in keys["tcp_connect"]] == [{"failure": None, "success": True}]
    else:
        assert keys["tcp_connect"] == []
    assert (m.summary.blocking, m.summary.mechanism) == (False, Mechanism.OK)


@contextmanager
def tcp_port() -> Iterator[int]:
    """A free TCP port on 127.0.0.1 (bound then released for the server to take)."""
    port = closed_port()
    yield port


def _reset_after_packet(conn: socket.socket) -> None:
    (length,) = struct.unpack(">H", conn.recv(2))
    conn.recv(length)
    rst_close(conn)


def _garbage_after_packet(conn: socket.socket) -> None:
    (length,) = struct.unpack(">H", conn.recv(2))
    conn.recv(length)
    conn.sendall(ovpnproto.frame(b"HTTP/1.1 400 Bad Request\r\n\r\n"))


@pytest.mark.parametrize(
    ("server", "connect_failure", "failure", "mechanism", "blocking"),
    [
        ("refused", "connection_refused", "connection_refused", Mechanism.TCP_REFUSED, "tcp_ip"),
        ("reset", None, "connection_reset", Mechanism.VPN_RESET, "http-failure"),
        ("garbage", None, "unexpected_response", Mechanism.VPN_BAD_RESPONSE, "http-failure"),
        ("silent", None, "generic_timeout_error", Mechanism.VPN_TIMEOUT, "http-failure"),
    ],
)
def test_openvpn_over_tcp_blocked(
    server: str, connect_failure: str | None, failure: str, mechanism: Mechanism, blocking: str
) -> None:
    def run(port: int) -> OONIMeasurement:
        return asyncio.run(
            openvpn.measure(
                openvpn.OpenVPNEndpoint("127.0.0.1", port, "tcp"), context=CONTEXT, timeout=TIMEOUT
            )
        )

    if server == "refused":
        m = run(closed_port())
    elif server == "silent":
        with tcp_server("accept") as port:
            m = run(port)
    else:
        with connection_server(_reset_after_packet if server == "reset" else _garbage_after_packet) as port:
            m = run(port)
    keys = keys_of(m)
    assert (keys["success"], keys["failure"]) == (False, failure)
    assert keys["tcp_connect"][0]["status"] == {
        "failure": connect_failure,
        "success": connect_failure is None,
    }
    assert len(keys["openvpn_handshake"]) == (0 if connect_failure else 1)
    if server == "garbage":
        assert keys["network_events"][-1]["operation"] == "packet_dropped"
    assert (m.summary.blocking, m.summary.accessible, m.summary.mechanism) == (blocking, False, mechanism)


@pytest.mark.parametrize(
    ("server", "failure"), [("silent", "generic_timeout_error"), ("closed", "connection_refused")]
)
def test_openvpn_over_udp_not_answered(server: str, failure: str) -> None:
    port = free_udp_port()
    target = openvpn.OpenVPNEndpoint("127.0.0.1", port, "udp")
    if server == "silent":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", port))  # reads nothing, answers nothing
            m = asyncio.run(openvpn.measure(target, context=CONTEXT, timeout=TIMEOUT))
    else:
        m = asyncio.run(openvpn.measure(target, context=CONTEXT, timeout=TIMEOUT))
    keys = keys_of(m)
    assert (keys["success"], keys["failure"]) == (False, failure)
    sends = [e["packet"]["send_attempts"] for e in keys["network_events"] if e["operation"] == "packet_out"]
    # Resent once a second until the timeout (1.5 s): twice, unless a loaded machine delayed it.
    assert sends in ([[1, 2], [1]] if server == "silent" else [[1]])
    assert m.summary.mechanism == (Mechanism.VPN_TIMEOUT if server == "silent" else Mechanism.VPN_REFUSED)


# --- the operator's list ------------------------------------------------------------------------


def _list(tmp_path: Path, text: str) -> endpoints.EndpointList:
    path = tmp_path / "vpn.toml"
    path.write_text(text)
    return endpoints.load("vpn", path, fallback=False)


WG = 'role = "wireguard"\nhost = "192.0.2.1"\nports = [51820]\n'
OVPN = 'role = "openvpn"\nhost = "192.0.2.1"\nports = [1194, 443]\n'


def test_the_list_names_its_bad_entries(tmp_path: Path) -> None:
    key = base64.b64encode(raw(CLIENT)).decode()
    good = _list(
        tmp_path,
        f'[[vpn]]\n{WG}params = {{ public_key = "{key}", private_key = "{key}" }}\n'
        f'[[vpn]]\n{OVPN}params = {{ transport = "tcp", provider = "riseup" }}\n',
    )
    parsed = vpn.endpoints_from(good)
    assert [type(e).__name__ for e in parsed] == ["WireGuardEndpoint", "OpenVPNEndpoint", "OpenVPNEndpoint"]
    last = parsed[2]
    assert isinstance(last, openvpn.OpenVPNEndpoint)
    assert (last.port, last.transport, last.provider) == (443, "tcp", "riseup")
    cases = {
        '[[vpn]]\nrole = "ipsec"\nhost = "192.0.2.1"\nports = [500]\n':
            r"vpn.toml:1: vpn.role: 'ipsec' is not one of wireguard, openvpn",
        f'[[vpn]]\n{OVPN}params = {{ transport = "sctp" }}\n':
            r"vpn.params.transport: 'sctp' is not udp or tcp",
        f'[[vpn]]\n{WG}params = {{ public_key = "abc" }}\n': r"vpn.params.public_key: not a WireGuard key",
        f'[[vpn]]\n{WG}params = {{ public_key = "{key}" }}\n':
            r"vpn.params.private_key: required for wireguard",
    }  # fmt: skip
    for text, message in cases.items():
        with pytest.raises(ConfigError, match=message):
            vpn.endpoints_from(_list(tmp_path, text))


def test_wireguard_dropped_while_openvpn_over_tcp_to_the_same_host_passes() -> None:
    udp_port = free_udp_port()
    # Nothing reads the WireGuard port: silent UDP, as a DROP looks to the probe.
    with (
        tcp_port() as tcp,
        serving({"kind": "openvpn_tcp", "port": tcp}),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink,
    ):
        sink.bind(("127.0.0.1", udp_port))
        wg_endpoint, tcp_endpoint = wg_target(udp_port), openvpn.OpenVPNEndpoint("127.0.0.1", tcp, "tcp")
        targets: list[vpn.VPNEndpoint] = [wg_endpoint, tcp_endpoint]
        measured = asyncio.run(vpn.measure_all(targets, context=CONTEXT, timeout=TIMEOUT))
    wg, ovpn = (keys_of(m) for m in measured)
    assert (wg["failure"], wg["x_same_host_reachable"]) == ("generic_timeout_error", True)
    assert ovpn["success"] is True and "x_same_host_reachable" not in ovpn
    assert measured[0].summary.mechanism == Mechanism.VPN_TIMEOUT


def test_probe_vpn_measures_each_listed_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from probe.cli import main

    port = free_udp_port()
    server_public = base64.b64encode(wgnoise.public_bytes(SERVER)).decode()
    client = base64.b64encode(raw(CLIENT)).decode()
    psk = base64.b64encode(PSK).decode()
    listed = tmp_path / "vpn.toml"
    with tcp_port() as tcp, serving(wg_service(port), {"kind": "openvpn_tcp", "port": tcp}):
        listed.write_text(
            f'[[vpn]]\nrole = "wireguard"\nhost = "127.0.0.1"\nports = [{port}]\n'
            f'params = {{ public_key = "{server_public}", private_key = "{client}", '
            f'preshared_key = "{psk}" }}\n'
            f'[[vpn]]\nrole = "openvpn"\nhost = "127.0.0.1"\nports = [{tcp}]\n'
            'params = { transport = "tcp" }\n'
        )
        assert main(["vpn", "--endpoints", str(listed), "--timeout", "1.5", "--json"]) == 0
        docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [(d["test_name"], d["test_keys"]["success"], d["test_keys"]["x_mechanism"]) for d in docs] == [
            ("wireguard", True, "ok"), ("openvpn", True, "ok"),
        ]  # fmt: skip
        assert client not in json.dumps(docs)  # the operator's private key never leaves
        assert main(["vpn", "--endpoints", str(listed), "--timeout", "1.5"]) == 0
    out = capsys.readouterr().out
    assert f"wireguard://unknown.corp/?address=127.0.0.1:{port}" in out
    assert (
        "SEND_HANDSHAKE_INIT" in out
        and "RECV_HANDSHAKE_RESP" in out
        and "P_CONTROL_HARD_RESET_SERVER_V2" in out
    )
    assert out.count("handshake: ok") == 2
    assert main(["vpn"]) == 2
    assert "--endpoints FILE is required" in capsys.readouterr().err


def test_endpoints_listed_by_name_are_looked_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # The C library refuses a name itself under AI_NUMERICHOST, with the EAI_NONAME that
    # NXDOMAIN gives: no question goes to the machine's name server (tests/offnet.py).
    real = socket.getaddrinfo

    def numeric_only(host: str, port: object, *args: object, **kwargs: object) -> object:
        if host == "localhost":
            return real(host, port, *args, **kwargs)  # type: ignore[arg-type]  # as called
        return real(host, port, *args, **{**kwargs, "flags": socket.AI_NUMERICHOST})  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
    port = free_udp_port()
    with serving(wg_service(port)):
        by_name = wireguard.WireGuardEndpoint(
            "localhost",
            port,
            public_key=wgnoise.public_bytes(SERVER),
            private_key=raw(CLIENT),
            preshared_key=PSK,
        )
        m = asyncio.run(wireguard.measure(by_name, context=CONTEXT, timeout=TIMEOUT))
    keys = keys_of(m)
    assert m.document["input"] == f"wireguard://unknown.corp/?address=localhost:{port}"
    assert keys["success"] is True and keys["x_endpoint"] in (f"127.0.0.1:{port}", f"[::1]:{port}")
    [query] = keys["queries"]
    assert (query["hostname"], query["engine"], query["failure"]) == ("localhost", "getaddrinfo", None)
    nowhere = openvpn.OpenVPNEndpoint("nx.invalid", 1194, "udp")
    m = asyncio.run(openvpn.measure(nowhere, context=CONTEXT, timeout=TIMEOUT))
    keys = keys_of(m)
    assert (keys["success"], keys["failure"], keys["openvpn_handshake"]) == (False, "dns_nxdomain_error", [])
    assert keys["queries"][0]["failure"] == "dns_nxdomain_error"
    assert (m.summary.blocking, m.summary.mechanism, m.summary.dns_failure) == (
        "dns", Mechanism.DNS_NXDOMAIN, "dns_nxdomain_error",
    )  # fmt: skip


def test_nothing_is_shipped_the_list_is_the_operators() -> None:
    with pytest.raises(ConfigError, match=r"vpn.toml: no \[\[vpn\]\] entries"):
        endpoints.load("vpn")


# --- tls-auth and tls-crypt ------------------------------------------------------------------


STATIC_KEY = secrets.token_bytes(256)
KEY_TEXT = (
    "#\n# 2048 bit OpenVPN static key\n#\n-----BEGIN OpenVPN Static key V1-----\n"
    + "\n".join(STATIC_KEY.hex()[i : i + 32] for i in range(0, 512, 32))
    + "\n-----END OpenVPN Static key V1-----\n"
)


def test_static_keys_parse_as_openvpn_writes_them() -> None:
    assert ovpnproto.parse_static_key(KEY_TEXT) == STATIC_KEY == ovpnproto.parse_static_key(STATIC_KEY.hex())
    with pytest.raises(ovpnproto.PacketError, match="256 bytes, not 4"):
        ovpnproto.parse_static_key("00112233")


@pytest.mark.parametrize(
    ("server_params", "client_wrapping"),
    [
        (
            {"openvpn_tls_auth": KEY_TEXT, "openvpn_key_direction": 0},
            ovpnproto.TLSAuth(STATIC_KEY, direction=1),
        ),
        (
            {"openvpn_tls_auth": KEY_TEXT, "openvpn_auth": "SHA256"},
            ovpnproto.TLSAuth(STATIC_KEY, None, "SHA256"),
        ),
        ({"openvpn_tls_crypt": KEY_TEXT}, ovpnproto.TLSCrypt(STATIC_KEY)),
    ],
    ids=["tls-auth direction 1", "tls-auth sha256 bidirectional", "tls-crypt"],
)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_server_requiring_a_static_key_answers_only_packets_that_carry_it(
    server_params: dict[str, Any], client_wrapping: ovpnproto.TLSAuth | ovpnproto.TLSCrypt, transport: str
) -> None:
    wrong = replace(client_wrapping, key=secrets.token_bytes(256))
    port = free_udp_port() if transport == "udp" else closed_port()
    service = {"kind": f"openvpn_{transport}", "port": port, "params": server_params}
    with serving(service):
        results = {
            name: asyncio.run(
                openvpn.measure(
                    openvpn.OpenVPNEndpoint("127.0.0.1", port, transport, wrapping=wrapping),  # type: ignore[arg-type]
                    context=CONTEXT, timeout=TIMEOUT,
                )
            )
            for name, wrapping in (
                ("keyed", client_wrapping),
                ("bare", None),
                ("wrong key", wrong),
            )
        }  # fmt: skip
    keyed = keys_of(results["keyed"])
    assert (keyed["success"], keyed["failure"]) == (True, None)
    assert (
        keyed["openvpn_handshake"][0]["openvpn_options"]
        == openvpn.OpenVPNEndpoint("127.0.0.1", port, "udp", wrapping=client_wrapping).options
    )
    for name in ("bare", "wrong key"):
        # The server drops what lacks its HMAC, as a real one: silence over UDP, a close over TCP.
        expected = "generic_timeout_error" if transport == "udp" else "eof_error"
        assert keys_of(results[name])["failure"] == expected, name


def test_the_list_takes_the_static_key(tmp_path: Path) -> None:
    listed = _list(
        tmp_path,
        f'[[vpn]]\nrole = "openvpn"\nhost = "192.0.2.1"\nports = [1194]\n'
        f'[vpn.params]\nkey_direction = 1\nauth = "sha512"\ntls_auth = """\n{KEY_TEXT}"""\n',
    )
    [endpoint] = vpn.endpoints_from(listed)
    assert isinstance(endpoint, openvpn.OpenVPNEndpoint)
    assert endpoint.wrapping == ovpnproto.TLSAuth(STATIC_KEY, 1, "SHA512")
    assert endpoint.options == {"auth": "SHA512", "tls-auth": "true", "key-direction": "1"}
    bad = _list(tmp_path, f'[[vpn]]\n{OVPN}[vpn.params]\ntls_crypt = "abcd"\n')
    with pytest.raises(
        ConfigError, match=r"vpn.params.tls_crypt: an OpenVPN static key has 256 bytes, not 2"
    ):
        vpn.endpoints_from(bad)
