"""The VPN handshakes against the real implementations: wireguard-go and OpenVPN, in a namespace.

The loopback responders (probe.lab.vpnserver) are ours; these tests show the messages are the
real protocols': wireguard-go answers our handshake initiation with a response our checks
accept, and OpenVPN 2.x answers our client hard reset over UDP and TCP. They need root and the
programs (Debian: wireguard-go, wireguard-tools, openvpn); without them they skip, saying why.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

pytestmark = pytest.mark.lab

CLIENT = """
import asyncio, base64, json, sys
from pathlib import Path
from probe.nettests import openvpn, ovpnproto, wireguard
from probe.nettests.base import Context
from probe.serialize import to_json
kind, port = sys.argv[1], int(sys.argv[2])
if kind == "wireguard":
    server, client = base64.b64decode(sys.argv[3]), base64.b64decode(sys.argv[4])
    target = wireguard.WireGuardEndpoint("127.0.0.1", port, public_key=server, private_key=client)
    m = asyncio.run(wireguard.measure(target, context=Context(), timeout=5))
else:
    wrapping = None
    if len(sys.argv) > 3:
        key = ovpnproto.parse_static_key(Path(sys.argv[4]).read_text())
        wrapping = ovpnproto.TLSAuth(key, 1) if sys.argv[3] == "tls-auth" else ovpnproto.TLSCrypt(key)
    target = openvpn.OpenVPNEndpoint("127.0.0.1", port, kind, wrapping=wrapping)
    m = asyncio.run(openvpn.measure(target, context=Context(), timeout=5))
print(to_json(m))
"""


def _missing(*programs: str) -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    absent = [p for p in programs if shutil.which(p) is None]
    return f"not installed: {', '.join(absent)}" if absent else None


@pytest.fixture
def namespace() -> Iterator[str]:
    name = f"rpvpn{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    try:
        yield name
    finally:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            subprocess.run(["kill", pid], check=False)
        time.sleep(0.3)
        subprocess.run(["ip", "netns", "del", name], check=False)


def _measure(namespace: str, *args: str) -> dict[str, object]:
    run = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", CLIENT, *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    return dict(json.loads(run.stdout)["test_keys"])


def _wait_for(predicate: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if callable(predicate) and predicate():
            return
        time.sleep(0.1)
    pytest.fail(f"{what} did not start")


def test_wireguard_go_answers_our_initiation(namespace: str, tmp_path: Path) -> None:
    reason = _missing("wireguard-go", "wg")
    if reason:
        pytest.skip(reason)
    keys = {}
    for who in ("server", "client"):
        private = subprocess.run(["wg", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
        public = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, check=True)
        keys[who] = (private, public.stdout.strip())
    (tmp_path / "server.key").write_text(keys["server"][0])
    env = {**os.environ, "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD": "1"}
    subprocess.run(["ip", "netns", "exec", namespace, "wireguard-go", "wg0"], env=env, check=True)
    subprocess.run(
        ["ip", "netns", "exec", namespace, "wg", "set", "wg0", "private-key", str(tmp_path / "server.key"),
         "listen-port", "51820", "peer", keys["client"][1], "allowed-ips", "10.7.0.2/32"],
        check=True,
    )  # fmt: skip
    subprocess.run(["ip", "-n", namespace, "link", "set", "wg0", "up"], check=True)
    result = _measure(namespace, "wireguard", "51820", keys["server"][1], keys["client"][0])
    assert (result["success"], result["failure"], result["x_response"]) == (True, None, "handshake_response")
    # A stranger's key draws nothing: the server checked who we are, it does not echo.
    stranger = base64.b64encode(secrets.token_bytes(32)).decode()
    refused = _measure(namespace, "wireguard", "51820", keys["server"][1], stranger)
    assert (refused["success"], refused["failure"]) == (False, "generic_timeout_error")


@pytest.mark.parametrize("wrapping", ["none", "tls-auth", "tls-crypt"])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_openvpn_answers_our_hard_reset(
    namespace: str, tmp_path: Path, transport: str, wrapping: str
) -> None:
    reason = _missing("openvpn")
    if reason:
        pytest.skip(reason)
    ca = trustme.CA()
    leaf = ca.issue_cert("server.lab")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    proto = "udp4" if transport == "udp" else "tcp4-server"
    keyed: list[str] = []
    client: list[str] = []
    if wrapping != "none":
        key = tmp_path / "static.key"
        subprocess.run(["openvpn", "--genkey", "secret", str(key)], check=True, capture_output=True)
        keyed = ["--tls-auth", str(key), "0"] if wrapping == "tls-auth" else ["--tls-crypt", str(key)]
        client = [wrapping, str(key)]
    log = tmp_path / "openvpn.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            ["ip", "netns", "exec", namespace, "openvpn", "--mode", "server", "--tls-server", "--dev", "tun",
             "--topology", "subnet", "--server", "10.99.0.0", "255.255.255.0",
             "--ca", str(tmp_path / "ca.pem"), "--cert", str(tmp_path / "cert.pem"),
             "--key", str(tmp_path / "key.pem"), "--dh", "none",
             "--proto", proto, "--local", "127.0.0.1", "--port", "1194", "--verb", "3", *keyed],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_for(lambda: "Initialization Sequence Completed" in log.read_text(), "openvpn")
        result = _measure(namespace, transport, "1194", *client)
        if wrapping != "none":  # without the key: dropped (silence over UDP, a close over TCP)
            bare = _measure(namespace, transport, "1194")
            expected = "generic_timeout_error" if transport == "udp" else "eof_error"
            assert bare["failure"] == expected, log.read_text()[-2000:]
    finally:
        server.terminate()
        server.wait(10)
    assert (result["success"], result["failure"]) == (True, None), log.read_text()[-2000:]
    events = result["network_events"]
    assert isinstance(events, list)
    received = [e["packet"]["opcode"] for e in events if e["operation"] == "packet_in"]
    assert received == ["P_CONTROL_HARD_RESET_SERVER_V2"]
