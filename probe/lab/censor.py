"""The censor: scenario censorship entries → iptables rules, tc commands and server rules.

Pure functions of a :class:`~probe.lab.plan.LabPlan` and the entries; nothing here touches the
system (the topology applies the results), so the unit tests check the exact rules.

Every kind works on any lab domain or address. Where the censor sits: the ISP namespace, which
forwards between the access link (client side) and the transit link (world side). Rules match
traffic coming in from the access link, so the ISP's own resolver and proxy are not censored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from probe.lab.plan import BOGON_ADDRESS, LOCALHOST, PROXY_PORT, LabPlan
from probe.lab.sites import BLOCKPAGE_DOMAIN, HELPER_DOMAIN, SITE_BY_DOMAIN

TargetType = Literal["domain", "address", "name"]
"""``domain``: a lab domain; ``address``: a lab domain or an IPv4 address; ``name``: any host
name, matched as bytes on the wire (SNI, Host)."""


@dataclass(frozen=True, slots=True)
class Kind:
    """What one censorship kind needs and does."""

    doc: str
    target: TargetType | None
    """``None``: the kind takes no target."""
    params: tuple[str, ...] = ()

    @property
    def needs_target(self) -> bool:
        return self.target is not None


# Kind names follow the mechanism labels' grammar (layer.action[.what it matched], see
# probe.analysis.mechanism): where the probe reports the censor's action as such, the kind has
# the mechanism's own name (dns.nxdomain, tls.reset.sni, http.blockpage), so a scenario's
# summary and the measurement it produced read in one vocabulary.
KINDS: Final[dict[str, Kind]] = {
    "dns.nxdomain": Kind("the ISP resolver answers NXDOMAIN", "domain"),
    "dns.bogon": Kind(
        "the ISP resolver answers a bogon (address, default 10.10.34.35)", "domain", ("address",)
    ),
    "dns.blockpage": Kind("the ISP resolver answers the ISP block-page server's address", "domain"),
    "dns.localhost": Kind("the ISP resolver answers 127.0.0.1", "domain"),
    "dns.drop": Kind("the ISP resolver never answers (timeout)", "domain"),
    "dns.servfail": Kind("the ISP resolver answers SERVFAIL", "domain"),
    "dns.refused": Kind("the ISP resolver answers REFUSED", "domain"),
    "dns.intercept": Kind("all client DNS (UDP and TCP port 53) is DNATed to the ISP resolver", None),
    "ip.drop": Kind(
        "every packet to the address (to its port, when given: TCP and UDP) is dropped (timeout)",
        "address",
        ("port",),
    ),
    "tcp.reset": Kind(
        "every SYN to the address (to its port, when given) is answered with a RST", "address", ("port",)
    ),
    "udp.drop": Kind(
        "every UDP datagram to the address (to its port, when given) is dropped; TCP passes",
        "address",
        ("port",),
    ),
    "vpn.reset.openvpn": Kind(
        "DPI on OpenVPN's client hard reset to the address: over TCP (opcode 7 after the length) "
        "RST, over UDP (its first byte) dropped",
        "address",
    ),
    "tls.reset.sni": Kind("RST after a ClientHello whose bytes contain the name (SNI)", "name"),
    "tls.drop.sni": Kind("a ClientHello whose bytes contain the name is dropped (timeout)", "name"),
    "http.reset.host": Kind("RST after an HTTP request with 'Host: <name>'", "name"),
    "http.blockpage": Kind("the transparent proxy answers the 'Surf Safely' page for the host", "domain"),
    "http.redirect": Kind("the transparent proxy answers 302 to the ISP block URL", "domain"),
    "throttle": Kind(
        "traffic from the address to the client shaped to rate (default 64kbit)", "address", ("rate",)
    ),
    "shutdown": Kind("everything beyond the ISP is dropped (the ISP's own servers still answer)", None),
    "control.block": Kind("the test helper's address is unreachable (dropped)", None),
}

DEFAULT_RATE: Final = "64kbit"
THROTTLE_QUEUE_PACKETS: Final = 8
_LAB_NAMES: Final = frozenset({*SITE_BY_DOMAIN, HELPER_DOMAIN, BLOCKPAGE_DOMAIN, "helper", "public-resolver"})


@dataclass(frozen=True, slots=True)
class Censorship:
    """One validated ``[[censorship]]`` entry of a scenario."""

    kind: str
    target: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """``kind target`` for tables and rule comments."""
        return f"{self.kind} {self.target}" if self.target else self.kind


def target_problem(
    kind: str, target: str, *, domains: frozenset[str] = frozenset(), endpoints: frozenset[str] = frozenset()
) -> str | None:
    """Why *target* does not suit *kind*, or ``None`` when it does.

    *domains* and *endpoints* are the scenario's extra world endpoints' DNS names and names
    (:mod:`probe.lab.world`): a domain kind takes their DNS names, an address kind both.
    """
    wanted = KINDS[kind].target
    if (
        wanted == "domain"
        and target not in SITE_BY_DOMAIN
        and target not in (HELPER_DOMAIN, BLOCKPAGE_DOMAIN)
        and target not in domains
    ):
        return f"{kind} needs a lab domain (one of {', '.join(sorted({*SITE_BY_DOMAIN, *domains}))})"
    if wanted == "address" and target not in _LAB_NAMES and target not in domains | endpoints:
        try:
            ipaddress.IPv4Address(target)
        except ValueError:
            return f"{kind} needs a lab domain or an IPv4 address"
    return None


# --- iptables ---------------------------------------------------------------------------------


def iptables_ruleset(plan: LabPlan, entries: Iterable[Censorship]) -> str:
    """The ISP's whole ruleset in ``iptables-restore`` format (filter and nat tables)."""
    forward: list[str] = []
    output: list[str] = []
    prerouting: list[str] = []
    access, transit = plan.isp_access_if, plan.isp_transit_if
    for entry in entries:
        note = f'-m comment --comment "{entry.describe()}"'
        kind, target = entry.kind, entry.target or ""
        port = entry.params.get("port")
        to_port = f" --dport {port}" if port is not None else ""
        if kind == "ip.drop" and port is None:
            forward.append(f"-i {access} -d {plan.resolve_target(target)} {note} -j DROP")
        elif kind == "ip.drop":
            for proto in ("tcp", "udp"):
                forward.append(
                    f"-i {access} -d {plan.resolve_target(target)} -p {proto}{to_port} {note} -j DROP"
                )
        elif kind == "udp.drop":
            forward.append(f"-i {access} -d {plan.resolve_target(target)} -p udp{to_port} {note} -j DROP")
        elif kind == "tcp.reset":
            forward.append(
                f"-i {access} -d {plan.resolve_target(target)} -p tcp{to_port} --syn {note} {_RST}"
            )
        elif kind == "vpn.reset.openvpn":
            address = plan.resolve_target(target)
            forward.append(f"-i {access} -d {address} -p tcp {_OPENVPN_TCP} {note} {_RST}")
            forward.append(f"-i {access} -d {address} -p udp {_OPENVPN_UDP} {note} -j DROP")
        elif kind in ("tls.reset.sni", "tls.drop.sni"):
            verdict = _RST if kind == "tls.reset.sni" else "-j DROP"
            forward.append(f"-i {access} -p tcp --dport 443 {_string(target.encode())} {note} {verdict}")
        elif kind == "http.reset.host":
            pattern = _string(b"\r\nHost: " + target.encode() + b"\r\n", icase=True)
            forward.append(f"-i {access} -p tcp --dport 80 {pattern} {note} {_RST}")
        elif kind in ("http.blockpage", "http.redirect"):
            prerouting.append(
                f"-i {access} -p tcp -d {plan.resolve_target(target)} --dport 80 {note} "
                f"-j REDIRECT --to-ports {PROXY_PORT}"
            )
        elif kind == "dns.intercept":
            for proto in ("udp", "tcp"):
                destination = f"{plan.isp_resolver_ip}:53"
                prerouting.append(
                    f"-i {access} -p {proto} --dport 53 {note} -j DNAT --to-destination {destination}"
                )
        elif kind == "shutdown":
            forward.append(f"-i {access} -o {transit} {note} -j DROP")
            output.append(f"-o {transit} {note} -j DROP")
        elif kind == "control.block":
            forward.append(f"-i {access} -d {plan.helper_ip} {note} -j DROP")
    lines = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]"]
    lines += [f"-A FORWARD {rule}" for rule in forward] + [f"-A OUTPUT {rule}" for rule in output]
    lines += ["COMMIT", "*nat", *(f":{chain} ACCEPT [0:0]" for chain in _NAT_CHAINS)]
    lines += [f"-A PREROUTING {rule}" for rule in prerouting]
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


_RST: Final = "-j REJECT --reject-with tcp-reset"
# u32 reads 4 bytes at an offset: past the IP header (0>>22&0x3C), then past the TCP header
# (12>>26&0x3C) to the payload's first 3 bytes: length 14 (0x000E) and P_CONTROL_HARD_RESET_CLIENT_V2
# with key id 0 (7 << 3 = 0x38); for UDP, the payload's first byte after the 8-byte header.
_OPENVPN_TCP: Final = '-m u32 --u32 "0>>22&0x3C@12>>26&0x3C@0>>8=0xE38"'
_OPENVPN_UDP: Final = '-m u32 --u32 "0>>22&0x3C@8>>24=0x38"'
_NAT_CHAINS: Final = ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING")


def _string(pattern: bytes, *, icase: bool = False) -> str:
    """A string match on *pattern*, written as hex so no byte needs quoting."""
    return f'-m string --algo bm{" --icase" if icase else ""} --hex-string "|{pattern.hex()}|"'


# --- tc (throttling) --------------------------------------------------------------------------


def tc_batch(plan: LabPlan, entries: Iterable[Censorship]) -> list[str]:
    """``tc -batch`` lines shaping throttled addresses on the ISP's link towards the client.

    One htb class per throttled address (rate = ceil, so it never borrows) with a short pfifo,
    a u32 filter on the source address, and a default class that does not limit. Empty when
    nothing is throttled.
    """
    throttled = [entry for entry in entries if entry.kind == "throttle"]
    if not throttled:
        return []
    dev = plan.isp_access_if
    lines = [
        f"qdisc add dev {dev} root handle 1: htb default 1",
        f"class add dev {dev} parent 1: classid 1:1 htb rate 10gbit quantum 200000",
    ]
    for index, entry in enumerate(throttled, start=10):
        rate = str(entry.params.get("rate", DEFAULT_RATE))
        address = plan.resolve_target(entry.target or "")
        lines += [
            f"class add dev {dev} parent 1: classid 1:{index} htb rate {rate} ceil {rate} quantum 1514",
            # A short queue: the shaper drops like a policer instead of buffering seconds of
            # backlog that would stall every later connection to the same host.
            f"qdisc add dev {dev} parent 1:{index} handle {index}: pfifo limit {THROTTLE_QUEUE_PACKETS}",
            f"filter add dev {dev} parent 1: protocol ip prio 1 u32 match ip src {address}/32 "
            f"flowid 1:{index}",
        ]
    return lines


# --- server rules -----------------------------------------------------------------------------

_DNS_ACTIONS: Final = {
    "dns.nxdomain": "nxdomain",
    "dns.drop": "drop",
    "dns.servfail": "servfail",
    "dns.refused": "refused",
}


def resolver_rules(plan: LabPlan, entries: Iterable[Censorship]) -> dict[str, dict[str, Any]]:
    """What the lying ISP resolver does per name: ``{name: {"action": …, "addresses": […]}}``.

    Actions: ``answer`` (with *addresses*), ``nxdomain``, ``drop``, ``servfail``, ``refused``.
    Names absent from the map are forwarded to the public resolver (answered honestly).
    """
    rules: dict[str, dict[str, Any]] = {}
    for entry in entries:
        name = entry.target or ""
        if entry.kind in _DNS_ACTIONS:
            rules[name] = {"action": _DNS_ACTIONS[entry.kind]}
        elif entry.kind == "dns.bogon":
            rules[name] = {"action": "answer", "addresses": [str(entry.params.get("address", BOGON_ADDRESS))]}
        elif entry.kind == "dns.blockpage":
            rules[name] = {"action": "answer", "addresses": [plan.blockpage_ip]}
        elif entry.kind == "dns.localhost":
            rules[name] = {"action": "answer", "addresses": [LOCALHOST]}
    return rules


def proxy_rules(entries: Iterable[Censorship]) -> dict[str, dict[str, str]]:
    """What the transparent proxy does per Host: ``{host: {"action": "blockpage"|"redirect"}}``.

    Hosts absent from the map are forwarded to the original destination.
    """
    rules: dict[str, dict[str, str]] = {}
    for entry in entries:
        if entry.kind == "http.blockpage":
            rules[entry.target or ""] = {"action": "blockpage"}
        elif entry.kind == "http.redirect":
            rules[entry.target or ""] = {
                "action": "redirect",
                "location": f"http://{BLOCKPAGE_DOMAIN}/blocked",
            }
    return rules
