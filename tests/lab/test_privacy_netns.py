"""The volunteer's address, echoed by pages, is in no output, database or export (real namespaces).

Three namespaces of our own, ``rpscrub-<pid>-{c,r,w}``::

    client 10.250.0.2/30 ── router 10.250.0.1/30 (NAT) 10.250.0.5/30 ── world 10.250.0.6/30
           fd00:250::2/64           fd00:250::1/64

The router masquerades the client to the world, as a home router does: the world (an echo page
and the test helper) sees the volunteer at 10.250.0.5, an address the client's interfaces do not
have, so only the helper's ``whoami`` can tell the probe. The router also serves the echo page
itself, on IPv4 and IPv6, where it sees the client's own interface addresses. Every page says
the client's address in its body, ``<title>``, ``X-Client-IP``, ``Set-Cookie`` and a 302
``Location`` (and so in the next hop's request URL).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import selectors
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from probe.lab.processes import child_env

pytestmark = pytest.mark.lab

PREFIX = f"rpscrub-{os.getpid()}"
CLIENT, ROUTER, WORLD = (f"{PREFIX}-{role}" for role in ("c", "r", "w"))
CLIENT_V4, CLIENT_V6, PUBLIC_V4 = "10.250.0.2", "fd00:250::2", "10.250.0.5"
ROUTER_V4, ROUTER_V6, WORLD_V4 = "10.250.0.1", "fd00:250::1", "10.250.0.6"
ECHO_PORT, HELPER_PORT = 8080, 9090
WORLD_PAGE = f"http://{WORLD_V4}:{ECHO_PORT}/"
ROUTER_PAGE = f"http://{ROUTER_V4}:{ECHO_PORT}/"
ROUTER_PAGE_V6 = f"http://[{ROUTER_V6}]:{ECHO_PORT}/"
HELPER = f"http://{WORLD_V4}:{HELPER_PORT}/"
REPO = Path(__file__).resolve().parents[2]


def _forms(address: str) -> list[str]:
    """The textual forms in which an address could leak (what the tests search for)."""
    ip = ipaddress.ip_address(address)
    return [address] if ip.version == 4 else [address, ip.exploded, ip.exploded.upper()]


def _count(data: bytes | str, address: str) -> int:
    blob = data.encode() if isinstance(data, str) else data
    # Count whole addresses: 10.250.0.2 must not count inside 10.250.0.21 (none exists here).
    return sum(blob.count(form.encode()) for form in _forms(address))


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def _in(namespace: str, *args: str) -> None:
    subprocess.run(["ip", "netns", "exec", namespace, *args], check=True, capture_output=True)


def _destroy() -> None:
    for namespace in (CLIENT, ROUTER, WORLD):
        pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout
        for pid in pids.split():  # only what this test started inside its own namespaces
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), 9)
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)


def _build() -> None:
    for namespace in (CLIENT, ROUTER, WORLD):
        _ip("netns", "add", namespace)
        _in(namespace, "ip", "link", "set", "lo", "up")
    tag = f"{os.getpid() % 100000:05d}"  # interface names: at most 15 characters
    for a, a_ns, b, b_ns in (
        (f"rps{tag}c", CLIENT, f"rps{tag}r", ROUTER),
        (f"rps{tag}x", ROUTER, f"rps{tag}w", WORLD),
    ):
        _ip("link", "add", a, "netns", a_ns, "type", "veth", "peer", "name", b, "netns", b_ns)
        _in(a_ns, "ip", "link", "set", a, "up")
        _in(b_ns, "ip", "link", "set", b, "up")
    _in(CLIENT, "ip", "addr", "add", f"{CLIENT_V4}/30", "dev", f"rps{tag}c")
    _in(CLIENT, "ip", "addr", "add", f"{CLIENT_V6}/64", "dev", f"rps{tag}c", "nodad")
    _in(CLIENT, "ip", "route", "add", "default", "via", ROUTER_V4)
    _in(ROUTER, "ip", "addr", "add", f"{ROUTER_V4}/30", "dev", f"rps{tag}r")
    _in(ROUTER, "ip", "addr", "add", f"{ROUTER_V6}/64", "dev", f"rps{tag}r", "nodad")
    _in(ROUTER, "ip", "addr", "add", f"{PUBLIC_V4}/30", "dev", f"rps{tag}x")
    _in(WORLD, "ip", "addr", "add", f"{WORLD_V4}/30", "dev", f"rps{tag}w")
    _in(ROUTER, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    _in(ROUTER, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", f"rps{tag}x", "-j", "MASQUERADE")


def _start(namespace: str, args: list[str], ready: str, stream: str) -> subprocess.Popen[bytes]:
    """Start *args* in *namespace*; wait (10 s at most) for a line containing *ready*."""
    proc = subprocess.Popen(
        ["ip", "netns", "exec", namespace, sys.executable, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        cwd=REPO,
    )
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    assert pipe is not None
    with selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        if not selector.select(10):
            raise RuntimeError(f"{args} not ready in 10 s")
        line = pipe.readline().decode(errors="replace")
    if ready not in line:
        raise RuntimeError(f"{args} failed: {line}")
    return proc


@dataclass(frozen=True)
class Network:
    tmp: Path

    def probe(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``probe ARGS`` in the client namespace, data directories under *tmp*."""
        env = child_env()
        for name in ("XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
            env[name] = str(self.tmp / name.lower())
        return subprocess.run(
            ["ip", "netns", "exec", CLIENT, sys.executable, "-m", "probe.cli", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            timeout=120,
            check=True,
        )

    def fetch(self, url: str) -> str:
        """The page as any client sees it (the witness that it does echo the address)."""
        code = f"import httpx; print(httpx.get({url!r}, follow_redirects=True, timeout=5).text)"
        result = subprocess.run(
            ["ip", "netns", "exec", CLIENT, sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=child_env(),
            check=True,
            timeout=30,
        )
        return result.stdout


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    tmp = tmp_path_factory.mktemp("privacy")
    servers: list[subprocess.Popen[bytes]] = []
    try:
        _build()
        echo = ["-m", "tests.servers.echo_server"]
        servers.append(_start(WORLD, [*echo, WORLD_V4, str(ECHO_PORT)], "ready", "stdout"))
        servers.append(_start(ROUTER, [*echo, ROUTER_V4, ROUTER_V6, str(ECHO_PORT)], "ready", "stdout"))
        helper = ["-m", "probe.cli", "helper", "serve", "--listen", f"{WORLD_V4}:{HELPER_PORT}"]
        helper += ["--allow", "10.250.0.0/24", "--allow", "fd00:250::/64", "--timeout", "3"]
        servers.append(_start(WORLD, helper, "serving on", "stderr"))
        yield Network(tmp)
    finally:
        for server in servers:
            if server.poll() is None:
                server.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                server.communicate(timeout=5)
        _destroy()


def _measure(network: Network, url: str, control: str) -> str:
    return network.probe("measure", url, "--control", control, "--json", "--timeout", "3").stdout


def test_behind_nat_only_whoami_knows_the_address_and_it_is_scrubbed(network: Network) -> None:
    assert _count(network.fetch(WORLD_PAGE), PUBLIC_V4) >= 3  # the page body does echo it
    # Without a control the probe cannot know the address the world sees: it leaks, which
    # shows what this test would catch ...
    blind = _measure(network, WORLD_PAGE, "none")
    assert _count(blind, PUBLIC_V4) >= 10
    # ... and with one, whoami tells it, and nothing carries it.
    scrubbed = _measure(network, WORLD_PAGE, HELPER)
    assert _count(scrubbed, PUBLIC_V4) == 0
    assert scrubbed.count("[scrubbed]") == _count(blind, PUBLIC_V4)
    document = json.loads(scrubbed)
    assert document["probe_ip"] == "127.0.0.1"
    assert document["test_keys"]["control_failure"] is None  # the helper did answer
    final, redirect = document["test_keys"]["requests"]
    assert final["request"]["url"] == f"{WORLD_PAGE}page?ip=[scrubbed]"
    assert redirect["response"]["headers"]["Location"] == "/page?ip=[scrubbed]"
    assert final["response"]["x_title"] == "Your address is [scrubbed]"
    assert final["response"]["headers"]["X-Client-IP"] == "[scrubbed]"
    assert final["response"]["headers"]["Set-Cookie"] == "client=[scrubbed]; Path=/"
    assert WORLD_V4 in scrubbed  # the site's own address is evidence: it stays


@pytest.mark.parametrize(("url", "address"), [(ROUTER_PAGE, CLIENT_V4), (ROUTER_PAGE_V6, CLIENT_V6)])
def test_without_a_control_the_interface_addresses_are_scrubbed(
    network: Network, url: str, address: str
) -> None:
    assert _count(network.fetch(url), address) >= 3  # the page body does echo it, in every form
    scrubbed = _measure(network, url, "none")
    assert _count(scrubbed, address) == 0
    response = json.loads(scrubbed)["test_keys"]["requests"][0]["response"]
    assert response["x_title"] == "Your address is [scrubbed]"
    assert scrubbed.count("[scrubbed]") >= 8


def test_a_stored_round_and_its_exports_hold_no_address(network: Network) -> None:
    tmp = network.tmp
    targets = [WORLD_PAGE, ROUTER_PAGE, ROUTER_PAGE_V6]
    (tmp / "targets.csv").write_text(
        "url,category_code,category_description,date_added,source,notes\n"
        + "".join(f"{url},GRP,Social Networking,2024-02-17,test,\n" for url in targets)
    )
    database = tmp / "round.sqlite3"
    (tmp / "settings.toml").write_text(
        "[measure]\nresolvers = []\nuse_system_resolver = false\ndns_timeout = 2\ntcp_timeout = 3\n"
        "tls_timeout = 3\nhttp_timeout = 3\n"
        "[tests]\nwhatsapp = false\ntelegram = false\nsignal = false\n"
        "facebook_messenger = false\nhttp3 = false\n"
        f'[control]\nurl = "{HELPER}"\n'
        '[targets]\nlists = ["targets.csv"]\n'
        f'[storage]\ndatabase_url = "sqlite:///{database}"\n'
        '[network]\npublic_networks = ["10.250.0.0/24", "fd00:250::/64"]\n'
    )
    run = network.probe("run", "--once", "--config", str(tmp / "settings.toml"), "--json")
    assert len(json.loads(run.stdout)["results"]) == 3
    jsonl = network.probe("export", "--format", "jsonl", "--db", f"sqlite:///{database}").stdout
    csv = network.probe("export", "--format", "csv", "--db", f"sqlite:///{database}").stdout
    files = [p for p in tmp.iterdir() if p.name.startswith("round.sqlite3")]  # with -wal, -shm
    stored = b"".join(p.read_bytes() for p in files)
    lines = jsonl.splitlines()
    assert len(lines) == 3 and "[scrubbed]" in jsonl
    for address in (PUBLIC_V4, CLIENT_V4, CLIENT_V6):
        assert _count(run.stdout + run.stderr, address) == 0
        assert _count(jsonl, address) == 0, address
        assert _count(csv, address) == 0, address
        assert _count(stored, address) == 0, address
    assert b"[scrubbed]" in stored
    titles = {
        json.loads(line)["input"]: json.loads(line)["test_keys"]["requests"][0]["response"]["x_title"]
        for line in lines
    }
    assert titles == dict.fromkeys(targets, "Your address is [scrubbed]")
