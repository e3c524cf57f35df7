"""Namespaces, veth pairs, addresses and routes of one lab run; teardown; leftovers.

Setup is four ``ip`` invocations (one ``ip -batch`` creating the namespaces and links, then one
``ip -n NS -batch`` per namespace, run in parallel) and one ``sysctl`` — well under a second.
Teardown kills whatever still runs inside the run's namespaces, deletes them (which destroys
their veths and their iptables rules and qdiscs), and removes ``/etc/netns/<client>/``.

Every live :class:`Topology` is registered; an ``atexit`` hook tears down what is left, and
:func:`install_signal_handlers` turns SIGTERM/SIGHUP into ``SystemExit`` so ``finally`` blocks
run. ``probe lab down --all`` (:func:`down_all`) cleans up after a SIGKILL.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import FrameType
from typing import Final

from probe.errors import ProbeError
from probe.lab.plan import NAMESPACE_RE, PREFIX_RE, ROLES, LabPlan

NETNS_ETC: Final = Path("/etc/netns")
RESOLV_OPTIONS: Final = "options timeout:1 attempts:1"
"""The client's stub resolver gives up after 1 s, so a silent resolver costs one short timeout."""
CLIENT_NSSWITCH: Final = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nservices: files\n"


class LabError(ProbeError):
    """The lab cannot run here (not root, a tool missing) or a setup command failed."""


def require_tools() -> None:
    """Check that the lab can run on this machine.

    Raises:
        LabError: not root, or ``ip``/``iptables-restore``/``tc`` missing (the message says which).
    """
    if os.geteuid() != 0:
        raise LabError("the lab needs root (network namespaces, iptables)")
    missing = [tool for tool in ("ip", "iptables-restore", "tc") if shutil.which(tool) is None]
    if missing:
        raise LabError(f"the lab needs {', '.join(missing)} (apt-get install iproute2 iptables)")


def run(args: list[str], *, stdin: str | None = None) -> None:
    """Run one command; raise :class:`LabError` with its stderr when it fails."""
    done = subprocess.run(args, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = " ".join((done.stderr or done.stdout).split())[:400]
        raise LabError(f"{' '.join(args[:5])} failed ({done.returncode}): {detail}")


def _batch(namespace: str | None, lines: list[str]) -> subprocess.Popen[str]:
    args = ["ip", *(["-n", namespace] if namespace else []), "-batch", "-"]
    proc = subprocess.Popen(
        args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None
    proc.stdin.write("\n".join(lines) + "\n")
    proc.stdin.close()
    return proc


def _wait(proc: subprocess.Popen[str], what: str) -> None:
    assert proc.stderr is not None
    with proc.stderr:
        error = proc.stderr.read()
    if proc.wait() != 0:
        raise LabError(f"{what} failed: {' '.join(error.split())[:400]}")


def link_commands(plan: LabPlan) -> list[str]:
    """The root ``ip -batch``: the namespaces and the two veth pairs, created inside them."""
    client, isp, world = plan.namespaces
    return [
        *(f"netns add {ns}" for ns in plan.namespaces),
        f"link add {plan.client_if} netns {client} type veth peer name {plan.isp_access_if} netns {isp}",
        f"link add {plan.isp_transit_if} netns {isp} type veth peer name {plan.world_if} netns {world}",
    ]


def namespace_commands(plan: LabPlan) -> dict[str, list[str]]:
    """``ip -n NS -batch`` lines per namespace: links up, addresses, routes."""
    return {
        plan.ns("client"): [
            "link set lo up",
            f"link set {plan.client_if} up",
            f"addr add {plan.client_ip}/24 dev {plan.client_if}",
            f"route add default via {plan.isp_access_ip}",
        ],
        plan.ns("isp"): [
            "link set lo up",
            f"link set {plan.isp_access_if} up",
            f"link set {plan.isp_transit_if} up",
            f"addr add {plan.isp_access_ip}/24 dev {plan.isp_access_if}",
            f"addr add {plan.isp_transit_ip}/24 dev {plan.isp_transit_if}",
            f"addr add {plan.isp_resolver_ip}/32 dev lo",
            f"addr add {plan.blockpage_ip}/32 dev lo",
            f"route add {plan.world_space} via {plan.world_transit_ip}",
            # Anything else is unreachable: no lab packet can ever look for a way out.
            "route add unreachable default",
        ],
        plan.ns("world"): [
            "link set lo up",
            f"link set {plan.world_if} up",
            f"addr add {plan.world_transit_ip}/24 dev {plan.world_if}",
            *(f"addr add {ip}/32 dev lo" for ip in plan.world_ips),
            f"route add default via {plan.isp_transit_ip}",
        ],
    }


class Topology:
    """The namespaces of one run. ``up()`` builds them, ``down()`` removes every trace."""

    def __init__(self, plan: LabPlan) -> None:
        self.plan = plan
        self.is_up = False

    def __enter__(self) -> Topology:
        self.up()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.down()

    def up(self) -> float:
        """Build the topology; return the seconds it took.

        Raises:
            LabError: a command failed (what was built is torn down first).
        """
        started = time.monotonic()
        clash = set(self.plan.namespaces) & set(_netns_names())
        if clash:
            # Another run owns these names: fail without touching them.
            raise LabError(f"lab prefix {self.plan.prefix} is in use ({', '.join(sorted(clash))})")
        _LIVE[self.plan.prefix] = self
        self.is_up = True
        try:
            _wait(_batch(None, link_commands(self.plan)), "ip -batch (namespaces, links)")
            procs = [(ns, _batch(ns, lines)) for ns, lines in namespace_commands(self.plan).items()]
            for ns, proc in procs:
                _wait(proc, f"ip -n {ns} -batch")
            run(["ip", "netns", "exec", self.plan.ns("isp"), "sysctl", "-qw", "net.ipv4.ip_forward=1"])
            self._write_client_etc()
        except BaseException:
            self.down()
            raise
        return time.monotonic() - started

    def _write_client_etc(self) -> None:
        """The client's resolver configuration, bind-mounted over /etc by ``ip netns exec``.

        Besides resolv.conf, a plain nsswitch.conf and hosts file: a host whose NSS asks
        systemd-resolved (a unix socket, outside the namespace) would otherwise resolve lab
        names through the host's own network.
        """
        files = {
            "resolv.conf": f"nameserver {self.plan.isp_resolver_ip}\n{RESOLV_OPTIONS}\n",
            "nsswitch.conf": CLIENT_NSSWITCH,
            "hosts": "127.0.0.1 localhost\n::1 localhost\n",
        }
        directory = NETNS_ETC / self.plan.ns("client")
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            # ip netns exec can only bind a file over one that exists.
            if name == "resolv.conf" or (Path("/etc") / name).exists():
                (directory / name).write_text(text, encoding="utf-8")

    def apply(self, ruleset: str, tc_lines: list[str]) -> None:
        """Load the censor's iptables ruleset and tc commands into the ISP namespace."""
        isp = self.plan.ns("isp")
        run(["ip", "netns", "exec", isp, "iptables-restore"], stdin=ruleset)
        if tc_lines:
            run(["tc", "-n", isp, "-batch", "-"], stdin="\n".join(tc_lines) + "\n")

    def down(self) -> float:
        """Remove the run's namespaces and files (idempotent); return the seconds it took."""
        started = time.monotonic()
        destroy(self.plan.prefix)
        self.is_up = False
        _LIVE.pop(self.plan.prefix, None)
        return time.monotonic() - started


def _netns_names() -> list[str]:
    """Names from ``ip netns list`` (whose lines may end with ``(id: N)``)."""
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False).stdout
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


def live_prefixes() -> set[str]:
    """Prefixes of every lab run with a namespace or an ``/etc/netns`` entry on this machine."""
    names = _netns_names()
    if NETNS_ETC.is_dir():
        names += [entry.name for entry in NETNS_ETC.iterdir()]
    return {match.group(1) for name in names if (match := NAMESPACE_RE.fullmatch(name))}


def destroy(prefix: str) -> None:
    """Kill the processes in *prefix*'s namespaces, delete them, remove their ``/etc/netns`` files.

    Only processes inside the run's own namespaces are signalled: the lab started them all.
    """
    if not PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"invalid lab prefix {prefix!r}")
    namespaces = [f"{prefix}-{role}" for role in ROLES]
    existing = set(_netns_names())
    for ns in namespaces:
        if ns not in existing:
            continue
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
    present = [ns for ns in namespaces if ns in existing]
    if present:
        subprocess.run(
            ["ip", "-force", "-batch", "-"],
            input="".join(f"netns del {ns}\n" for ns in present),
            capture_output=True,
            text=True,
            check=False,
        )
    for ns in namespaces:
        shutil.rmtree(NETNS_ETC / ns, ignore_errors=True)


def down_all() -> list[str]:
    """Tear down every lab run on this machine; return the prefixes removed."""
    prefixes = sorted(live_prefixes())
    for prefix in prefixes:
        destroy(prefix)
    return prefixes


_LIVE: dict[str, Topology] = {}


@atexit.register
def _teardown_live() -> None:
    for topology in list(_LIVE.values()):
        topology.down()


def install_signal_handlers() -> None:
    """Make SIGTERM and SIGHUP raise ``SystemExit`` so that teardown in ``finally`` runs."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)
