"""The lab pieces of the Tor, VPN and SNI-blocking scenarios: the OpenVPN DPI rules, the VPN
server kinds, and the scenario set (each scenario file runs in tests/lab/test_scenarios.py)."""

from __future__ import annotations

from probe.lab import censor, world
from probe.lab.censor import Censorship
from probe.lab.plan import LabPlan
from probe.lab.scenario import load_scenario, scenario_paths

SCENARIOS = {
    "pk-tor-or-ports-dropped", "pk-wireguard-udp-drop", "pk-openvpn-dpi", "pk-sni-decoy", "pk-sni-decoy-ip",
}  # fmt: skip


def test_openvpn_dpi_matches_the_client_hard_reset_by_u32() -> None:
    plan = LabPlan("rp000001")
    rules = censor.iptables_ruleset(plan, [Censorship("vpn.reset.openvpn", "203.0.113.9")])
    access = plan.isp_access_if
    assert (
        f'-A FORWARD -i {access} -d 203.0.113.9 -p tcp -m u32 --u32 "0>>22&0x3C@12>>26&0x3C@0>>8=0xE38" '
        f'-m comment --comment "vpn.reset.openvpn 203.0.113.9" -j REJECT --reject-with tcp-reset'
    ) in rules.splitlines()
    assert (
        f'-A FORWARD -i {access} -d 203.0.113.9 -p udp -m u32 --u32 "0>>22&0x3C@8>>24=0x38" '
        f'-m comment --comment "vpn.reset.openvpn 203.0.113.9" -j DROP'
    ) in rules.splitlines()


def test_the_vpn_servers_are_service_kinds() -> None:
    kinds = {
        kind: (spec.transport, spec.module)
        for kind, spec in world.SERVICE_KINDS.items()
        if spec.module == "probe.lab.vpnserver"
    }
    assert kinds == {
        "wireguard": ("udp", "probe.lab.vpnserver"),
        "openvpn_udp": ("udp", "probe.lab.vpnserver"),
        "openvpn_tcp": ("tcp", "probe.lab.vpnserver"),
    }


def test_the_circumvention_scenarios_ship() -> None:
    by_name = {load_scenario(path).name: load_scenario(path) for path in scenario_paths()}
    assert set(by_name) >= SCENARIOS
    commands = {name: [spec.command for spec in by_name[name].nettests] for name in SCENARIOS}
    assert commands == {
        "pk-tor-or-ports-dropped": ["tor"],
        "pk-wireguard-udp-drop": ["vpn", "vpn"],
        "pk-openvpn-dpi": ["vpn", "vpn", "vpn"],
        "pk-sni-decoy": ["sni-blocking", "sni-blocking"],
        "pk-sni-decoy-ip": ["sni-blocking"],
    }
