"""The lab's own machinery against the kernel: setup, teardown, coexistence, no leaks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from probe.cli import main
from probe.lab import censor
from probe.lab.censor import Censorship
from probe.lab.network import Lab
from probe.lab.outcome import observe
from probe.lab.processes import child_env
from probe.lab.topology import NETNS_ETC, LabError, Topology
from tests.lab.conftest import lab_namespaces

pytestmark = pytest.mark.lab


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited: only its parent's wait() is missing.
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    return state != "Z"


def _measure(lab: Lab, url: str) -> dict[str, Any]:
    args = lab.client_command(
        "probe.cli", "measure", url, "--json", "--timeout", "2",
        "--ca-file", str(lab.ca_file), "--resolver", f"{lab.plan.public_resolver_ip}:53",
    )  # fmt: skip
    done = subprocess.run(args, capture_output=True, text=True, env=child_env(), timeout=60, check=True)
    return observe(json.loads(done.stdout), lab.plan)


def test_setup_and_teardown_leave_nothing_behind(tmp_path: Path, no_new_namespaces: None) -> None:
    lab = Lab.create(tmp_path)
    timings = lab.start()
    plan = lab.plan
    pids = [server.proc.pid for server in lab.servers]
    try:
        assert set(plan.namespaces) <= lab_namespaces()
        resolv = (NETNS_ETC / plan.ns("client") / "resolv.conf").read_text()
        assert resolv.startswith(f"nameserver {plan.isp_resolver_ip}\n")
        assert all(_alive(pid) for pid in pids)
        assert (tmp_path / "lab-ca.pem").is_file()
        assert f'public_networks = ["{plan.world_space}"]' in (tmp_path / "settings.toml").read_text()
    finally:
        timings = lab.stop()
    print(f"\ntopology up {timings['topology_up_s']:.3f} s, down {timings['topology_down_s']:.3f} s")
    assert not set(plan.namespaces) & lab_namespaces()
    assert not (NETNS_ETC / plan.ns("client")).exists()
    assert not any(_alive(pid) for pid in pids)
    lab.stop()  # idempotent


def test_two_labs_coexist(tmp_path: Path, no_new_namespaces: None) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with Lab.create(tmp_path / "a") as censored:
        censored.start([Censorship("tcp.reset", "example.com")])
        with Lab.create(tmp_path / "b") as clean:
            clean.start()
            assert censored.plan.prefix != clean.plan.prefix
            assert censored.plan.octet != clean.plan.octet
            assert _measure(censored, "http://example.com/")["failure"] == "connection_refused"
            assert _measure(clean, "http://example.com/")["title"] == "Example Domain"
        assert _measure(censored, "https://example.org/")["status"] == 200


def test_a_prefix_in_use_is_refused_and_left_alone(tmp_path: Path, no_new_namespaces: None) -> None:
    with Lab.create(tmp_path) as first:
        first.start()
        with pytest.raises(LabError, match=f"lab prefix {first.plan.prefix} is in use"):
            Topology(first.plan).up()
        assert set(first.plan.namespaces) <= lab_namespaces()
        assert _measure(first, "https://example.com/")["status"] == 200


def test_teardown_on_exception(tmp_path: Path, no_new_namespaces: None) -> None:
    with pytest.raises(RuntimeError, match="boom"), Lab.create(tmp_path) as lab:
        lab.start()
        pids = [server.proc.pid for server in lab.servers]
        raise RuntimeError("boom")
    assert not set(lab.plan.namespaces) & lab_namespaces()
    assert not any(_alive(pid) for pid in pids)


def test_failed_setup_tears_down(
    tmp_path: Path, no_new_namespaces: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(censor, "iptables_ruleset", lambda plan, entries: "*filter\n-A NOPE\nCOMMIT\n")
    lab = Lab.create(tmp_path)
    with pytest.raises(LabError, match="iptables-restore"):
        lab.start()
    assert not set(lab.plan.namespaces) & lab_namespaces()
    assert not lab.servers


_ORPHAN = """
import sys, time
from pathlib import Path
from probe.lab.network import Lab
lab = Lab.create(Path(sys.argv[1]))
lab.start()
print(lab.plan.prefix, *(server.proc.pid for server in lab.servers), flush=True)
time.sleep(600)
"""


def test_servers_die_with_their_parent_and_down_removes_the_rest(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN, str(tmp_path)], stdout=subprocess.PIPE, text=True, env=child_env()
    )
    try:
        assert parent.stdout is not None
        prefix, *pids = parent.stdout.readline().split()
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 10
    while any(_alive(int(pid)) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(int(pid)) for pid in pids), "servers outlived their parent"
    assert {f"{prefix}-client", f"{prefix}-isp", f"{prefix}-world"} <= lab_namespaces()
    assert main(["lab", "down", prefix]) == 0
    assert not {name for name in lab_namespaces() if name.startswith(prefix)}
    assert not (NETNS_ETC / f"{prefix}-client").exists()


def test_proxy_forwards_hosts_it_does_not_block(tmp_path: Path, no_new_namespaces: None) -> None:
    with Lab.create(tmp_path) as lab:
        lab.start([Censorship("http.blockpage", "x.com")])
        address = lab.plan.site_ip("x.com")
        script = (
            "import socket, sys\n"
            f"s = socket.create_connection(('{address}', 80), timeout=5)\n"
            "s.sendall(f'GET / HTTP/1.1\\r\\nHost: {sys.argv[1]}\\r\\n\\r\\n'.encode())\n"
            "print(b''.join(iter(lambda: s.recv(65536), b'')).decode())\n"
        )
        answers = {}
        for host in ("x.com", "twitter.com"):
            command = ["ip", "netns", "exec", lab.plan.ns("client"), sys.executable, "-c", script, host]
            answers[host] = subprocess.run(command, capture_output=True, text=True, timeout=30).stdout
    assert "<title>Surf Safely</title>" in answers["x.com"]
    # Same address, another Host: relayed to the real server, which redirects to x.com.
    assert answers["twitter.com"].startswith("HTTP/1.1 301")
    assert "Location: https://x.com/" in answers["twitter.com"]
