"""Two volunteers on two ISPs of one country, uploading to one collector in the lab's world.

::

    with Fleet.create(workdir, censorship) as fleet:   # both ISPs censor alike
        fleet.start()
        fleet.probe(0, "run", "--input", url, ...)     # python -m probe.cli … in client 0
        fleet.probe(1, "upload", ...)                  # … in client 1
    # everything is gone here

ISP 0 is an ordinary :class:`~probe.lab.network.Lab` (client, ISP with the censor, world with the
sites, resolvers and test helper). ISP 1 is a second lab plan's client and ISP namespaces,
whose ISP is linked straight to ISP 0's world (a second transit link)::

    client0 ── isp0 (AS64500) ──┐
                                 world (sites, resolver, helper, collector 10.N.66.2:80)
    client1 ── isp1 (AS64510) ──┘

The helper's IP → ASN and country maps name both ISPs' address spaces, so each probe learns
its own network from ``whoami``, as volunteers do; the censorship entries are applied in both
ISPs (the kinds that match on what a packet carries: SNI, Host, DNS; not the ones aimed at an
address of ISP 1's plan). ``probe collector serve`` runs in the world namespace on a SQLite
file in *workdir* (:attr:`collector_db`); the probes' settings (:attr:`settings`) are the lab's
plus ``[upload] collector_url``. The second plan's namespaces are torn down like any lab run's
(:func:`probe.lab.topology.destroy` by prefix), the link between them with them.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from probe.lab import censor
from probe.lab.censor import Censorship
from probe.lab.network import PROBE_COUNTRY, Lab
from probe.lab.plan import ISP_ASN, LabPlan, new_plan
from probe.lab.processes import child_env
from probe.lab.topology import LabError, Topology, live_prefixes, run
from probe.lab.world import World

SECOND_ISP_ASN: Final = 64510
COLLECTOR_PORT: Final = 80
ADDRESS_KINDS: Final = frozenset({"ip.drop", "udp.drop", "tcp.reset", "vpn.reset.openvpn", "http.blockpage",
                                  "http.redirect", "control.block", "throttle"})  # fmt: skip
"""Kinds aimed at an address computed from a plan: applied in ISP 0 only (ISP 1's plan has its own)."""


class _FirstISP(Lab):
    """ISP 0's lab, whose helper also knows ISP 1's address space."""

    second: LabPlan | None = None

    def write_probe_settings(self) -> Path:
        path = super().write_probe_settings()
        if self.second is not None:
            with (self.workdir / "lab-asn.toml").open("a", encoding="utf-8") as f:
                f.write(f'"{self.second.isp_space}" = {SECOND_ISP_ASN}\n')
            with (self.workdir / "lab-cc.csv").open("a", encoding="utf-8") as f:
                f.write(f"{self.second.isp_space},{PROBE_COUNTRY}\n")
        return path


class Fleet:
    """Two ISPs, their clients, one world and a collector in it. Use :meth:`create`."""

    def __init__(self, first: _FirstISP, second: LabPlan, entries: tuple[Censorship, ...]) -> None:
        self.first = first
        self.second = second
        self.entries = entries
        self.second_topology = Topology(second)
        self.collector: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, workdir: Path, entries: Iterable[Censorship] = (), world: World | None = None) -> Fleet:
        """A fleet with two fresh address blocks no live run uses."""
        lab_dir = workdir / "lab"
        lab_dir.mkdir(parents=True, exist_ok=True)
        first = _FirstISP.create(lab_dir, world)
        assert isinstance(first, _FirstISP)
        second = new_plan(live_prefixes() | {first.plan.prefix})
        first.second = second
        return cls(first, second, tuple(entries))

    @property
    def workdir(self) -> Path:
        return self.first.workdir

    @property
    def collector_ip(self) -> str:
        """The collector's address in the world (beside the helper's)."""
        return f"10.{self.first.plan.octet}.66.2"

    @property
    def collector_url(self) -> str:
        return f"http://{self.collector_ip}:{COLLECTOR_PORT}/"

    @property
    def collector_db(self) -> str:
        return f"sqlite:///{self.workdir / 'collector.sqlite3'}"

    @property
    def settings(self) -> Path:
        return self.workdir / "fleet-settings.toml"

    @property
    def asns(self) -> tuple[str, str]:
        return (f"AS{ISP_ASN}", f"AS{SECOND_ISP_ASN}")

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Build both ISPs, link ISP 1 to the world, censor both, start the collector.

        Raises:
            LabError: a setup step failed (everything is torn down first).
        """
        try:
            self.first.start(self.entries)
            self.second_topology.up()
            self._link_second_isp()
            moved = [e for e in self.entries if e.kind not in ADDRESS_KINDS]
            self.second_topology.apply(censor.iptables_ruleset(self.second, moved), [])
            self._write_settings()
            self._start_collector()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the collector and tear down both ISPs and the world (idempotent)."""
        if self.collector is not None:
            with contextlib.suppress(ProcessLookupError):
                self.collector.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.collector.wait(10)
            if self.collector.poll() is None:
                self.collector.kill()
                self.collector.wait(10)
            self.collector = None
        self.second_topology.down()
        self.first.stop()

    def client(self, index: int) -> str:
        """The namespace of volunteer *index* (0 or 1)."""
        return (self.first.plan, self.second)[index].ns("client")

    def probe_command(self, index: int, *args: str) -> list[str]:
        """``python -m probe.cli ARGS`` in volunteer *index*'s namespace."""
        return _in(self.client(index), *args)

    def probe(
        self, index: int, *args: str, home: Path, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``probe ARGS`` as volunteer *index*, whose data directory is *home*."""
        env = {**child_env(), "XDG_DATA_HOME": str(home)}
        return subprocess.run(
            self.probe_command(index, *args),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def _link_second_isp(self) -> None:
        """A transit link from ISP 1 to the world: ``10.M.4.1`` (ISP) ↔ ``10.M.4.2`` (world)."""
        second, world = self.second, self.first.plan.ns("world")
        isp_if, world_if = f"{second.prefix}-ix", f"{second.prefix}-wx"
        isp_ip, world_ip = f"10.{second.octet}.4.1", f"10.{second.octet}.4.2"
        run(["ip", "link", "add", isp_if, "netns", second.ns("isp"), "type", "veth",
             "peer", "name", world_if, "netns", world])  # fmt: skip
        for ns, lines in (
            (second.ns("isp"), [f"link set {isp_if} up", f"addr add {isp_ip}/24 dev {isp_if}",
                                f"route add {self.first.plan.world_space} via {world_ip}"]),
            (world, [f"link set {world_if} up", f"addr add {world_ip}/24 dev {world_if}",
                     f"route add {second.isp_space} via {isp_ip}",
                     f"addr add {self.collector_ip}/32 dev lo"]),
        ):  # fmt: skip
            run(["ip", "-n", ns, "-batch", "-"], stdin="\n".join(lines) + "\n")
        # ISP 1 has no resolver of its own: its volunteer asks the world's public resolver.
        resolv = Path("/etc/netns") / second.ns("client") / "resolv.conf"
        resolv.write_text(f"nameserver {self.first.plan.public_resolver_ip}\noptions timeout:1 attempts:1\n")

    def _write_settings(self) -> None:
        """The lab's probe settings (no test beyond websites: :meth:`Lab.write_probe_settings`
        switches them off), uploading to the collector."""
        text = (self.workdir / "settings.toml").read_text(encoding="utf-8")
        text += f'\n[upload]\ncollector_url = "{self.collector_url}"\nretry_min_minutes = 0.01\n'
        self.settings.write_text(text, encoding="utf-8")

    def _start_collector(self, timeout: float = 30.0) -> None:
        listen = f"{self.collector_ip}:{COLLECTOR_PORT}"
        args = _in(
            self.first.plan.ns("world"), "collector", "serve", "--listen", listen, "--db", self.collector_db
        )
        log = (self.workdir / "collector.log").open("ab")
        env = {**child_env(), "XDG_DATA_HOME": str(self.workdir / "collector-home")}
        with log:
            self.collector = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.collector.poll() is not None:
                raise LabError(f"the collector exited: {(self.workdir / 'collector.log').read_text()[-600:]}")
            if _listening(self.first.plan.ns("world"), self.collector_ip, COLLECTOR_PORT):
                return
            time.sleep(0.1)
        raise LabError(f"the collector did not listen within {timeout:g} s")


def _in(namespace: str, *args: str) -> list[str]:
    """``python -m probe.cli ARGS`` inside *namespace*."""
    return ["ip", "netns", "exec", namespace, sys.executable, "-m", "probe.cli", *args]


def _listening(namespace: str, host: str, port: int) -> bool:
    """Whether something accepts on *host*:*port* inside *namespace* (``ss`` there)."""
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, "ss", "-Hltn", "src", f"{host}:{port}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return bool(done.stdout.strip())


__all__ = ["COLLECTOR_PORT", "SECOND_ISP_ASN", "Fleet"]
