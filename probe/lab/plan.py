"""Names and addresses of one lab run: pure data, computed from a random prefix.

Every run gets a prefix ``rp`` + 6 hex digits; its namespaces are ``<prefix>-client``,
``<prefix>-isp`` and ``<prefix>-world``, so two runs coexist and leftovers are recognisable.
Addresses come from ``10.<octet>.0.0/16``, the octet derived from the prefix and chosen
distinct from live runs'::

    10.N.1.0/24    access link      isp .1, client .2
    10.N.2.0/24    transit link     isp .1, world .2
    10.N.3.53      ISP resolver     (isp, on lo)
    10.N.3.80      ISP block-page server (blockpage.isp.lab)
    10.N.64.0/18   the "public Internet" (world, on lo):
      10.N.64.10+i   one address per site, in :data:`probe.lab.sites.SITES` order
      10.N.65.53     the public resolver
      10.N.66.1      reserved for the test helper (th.reachprobe.lab)
      10.N.67.10+i   one address per extra world endpoint of the scenario, in file order
                     (:mod:`probe.lab.world`), its DNS names in the lab zone

The namespaces have no link to the host namespace, so nothing can be routed outside them.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from probe.lab.sites import BLOCKPAGE_DOMAIN, HELPER_DOMAIN, SITES

PREFIX_RE: Final = re.compile(r"rp[0-9a-f]{6}")
NAMESPACE_RE: Final = re.compile(r"(rp[0-9a-f]{6})-(client|isp|world)")
ROLES: Final = ("client", "isp", "world")
BOGON_ADDRESS: Final = "10.10.34.35"
"""The default bogon a lying resolver answers (Iran's well-known 10.10.34.35); never assigned."""
LOCALHOST: Final = "127.0.0.1"
ISP_ASN: Final = 64500
HELPER_ASN: Final = 64501
PUBLIC_DNS_ASN: Final = 15169
PROXY_PORT: Final = 3128
"""Where the ISP's transparent proxy listens; port 80 traffic is REDIRECTed to it."""


def octet_of(prefix: str) -> int:
    """The second octet of *prefix*'s address block (20..219; 10 is avoided for the bogon)."""
    return 20 + int(prefix[2:], 16) % 200


@dataclass(frozen=True, slots=True)
class LabPlan:
    """The names and addresses of one run."""

    prefix: str
    endpoints: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """The scenario's extra world endpoints: ``(name, DNS names)`` in file order."""

    def __post_init__(self) -> None:
        if not PREFIX_RE.fullmatch(self.prefix):
            raise ValueError(f"invalid lab prefix {self.prefix!r}")
        if len(self.endpoints) > 240:
            raise ValueError("at most 240 world endpoints")

    @property
    def octet(self) -> int:
        return octet_of(self.prefix)

    def _ip(self, third: int, fourth: int) -> str:
        return f"10.{self.octet}.{third}.{fourth}"

    # --- namespaces and interfaces ----------------------------------------------------------
    def ns(self, role: str) -> str:
        """The namespace name for *role* (``client``, ``isp`` or ``world``)."""
        return f"{self.prefix}-{role}"

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(self.ns(role) for role in ROLES)

    @property
    def client_if(self) -> str:
        return f"{self.prefix}-c"

    @property
    def isp_access_if(self) -> str:
        """The ISP's side of the access link: traffic towards the client leaves here."""
        return f"{self.prefix}-ia"

    @property
    def isp_transit_if(self) -> str:
        return f"{self.prefix}-it"

    @property
    def world_if(self) -> str:
        return f"{self.prefix}-w"

    # --- addresses --------------------------------------------------------------------------
    @property
    def block(self) -> str:
        return f"10.{self.octet}.0.0/16"

    @property
    def client_ip(self) -> str:
        return self._ip(1, 2)

    @property
    def isp_access_ip(self) -> str:
        return self._ip(1, 1)

    @property
    def isp_transit_ip(self) -> str:
        return self._ip(2, 1)

    @property
    def world_transit_ip(self) -> str:
        return self._ip(2, 2)

    @property
    def isp_resolver_ip(self) -> str:
        return self._ip(3, 53)

    @property
    def blockpage_ip(self) -> str:
        return self._ip(3, 80)

    @property
    def isp_space(self) -> str:
        return f"10.{self.octet}.0.0/18"

    @property
    def world_space(self) -> str:
        """The lab's "public Internet": the probe must treat it as public, not as a bogon."""
        return f"10.{self.octet}.64.0/18"

    @property
    def public_resolver_ip(self) -> str:
        return self._ip(65, 53)

    @property
    def helper_ip(self) -> str:
        return self._ip(66, 1)

    def site_ip(self, domain: str) -> str:
        """The world address of *domain*'s web server.

        Raises:
            KeyError: *domain* is not a lab site.
        """
        for index, site in enumerate(SITES):
            if site.domain == domain:
                return self._ip(64, 10 + index)
        raise KeyError(domain)

    @property
    def site_ips(self) -> dict[str, str]:
        return {site.domain: self.site_ip(site.domain) for site in SITES}

    def endpoint_ip(self, name: str) -> str:
        """The world address of the extra endpoint *name*.

        Raises:
            KeyError: *name* is not an endpoint of this run.
        """
        for index, (endpoint, _) in enumerate(self.endpoints):
            if endpoint == name:
                return self._ip(67, 10 + index)
        raise KeyError(name)

    @property
    def endpoint_ips(self) -> dict[str, str]:
        """Endpoint name → its world address."""
        return {name: self.endpoint_ip(name) for name, _ in self.endpoints}

    @property
    def world_ips(self) -> tuple[str, ...]:
        """Every address the world namespace holds on its loopback."""
        return (*self.site_ips.values(), self.public_resolver_ip, self.helper_ip, *self.endpoint_ips.values())

    def zone(self) -> dict[str, str]:
        """The lab's DNS zone as the public resolver serves it: name → IPv4 address."""
        endpoints = {dns: self.endpoint_ip(name) for name, names in self.endpoints for dns in names}
        return {
            **self.site_ips,
            HELPER_DOMAIN: self.helper_ip,
            BLOCKPAGE_DOMAIN: self.blockpage_ip,
            **endpoints,
        }

    def resolve_target(self, target: str) -> str:
        """An IP address for a censorship target: a lab name, a role name, or an IP literal.

        Raises:
            ValueError: *target* is none of those.
        """
        named = {
            **self.zone(),
            **self.endpoint_ips,
            "helper": self.helper_ip,
            "public-resolver": self.public_resolver_ip,
        }
        if target in named:
            return named[target]
        try:
            return str(ipaddress.IPv4Address(target))
        except ValueError:
            raise ValueError(f"unknown target {target!r}: not a lab domain nor an IPv4 address") from None

    def describe(self) -> dict[str, object]:
        """The run's names and addresses, for reports (measurements carry raw addresses)."""
        return {
            "prefix": self.prefix,
            "block": self.block,
            "namespaces": list(self.namespaces),
            "public_networks": [self.world_space],
            "isp_resolver": self.isp_resolver_ip,
            "public_resolver": self.public_resolver_ip,
            "blockpage": self.blockpage_ip,
            "helper": self.helper_ip,
            "zone": self.zone(),
            **({"endpoints": self.endpoint_ips} if self.endpoints else {}),
        }

    def label(self, ip: str, host: str) -> str:
        """A symbolic name for *ip* as seen when resolving *host* (``site``, ``blockpage``…)."""
        if host in self.zone() and self.zone()[host] == ip:
            return "site"
        names = {
            self.blockpage_ip: "blockpage",
            BOGON_ADDRESS: "bogon",
            LOCALHOST: "localhost",
            self.helper_ip: "helper",
        }
        if ip in names:
            return names[ip]
        domain = next((name for name, address in self.site_ips.items() if address == ip), None)
        if domain:
            return f"site:{domain}"
        endpoint = next((name for name, address in self.endpoint_ips.items() if address == ip), None)
        return f"endpoint:{endpoint}" if endpoint else ip


def new_plan(
    live_prefixes: Iterable[str], endpoints: tuple[tuple[str, tuple[str, ...]], ...] = ()
) -> LabPlan:
    """A plan whose prefix and address block differ from every live run's, with *endpoints*.

    Raises:
        RuntimeError: all 200 address blocks are taken by live runs.
    """
    live = set(live_prefixes)
    taken = {octet_of(prefix) for prefix in live}
    for _ in range(10_000):
        prefix = f"rp{secrets.token_hex(3)}"
        if prefix not in live and octet_of(prefix) not in taken:
            return LabPlan(prefix, endpoints)
    raise RuntimeError(f"no free lab address block: {len(live)} runs are live (probe lab down --all)")
