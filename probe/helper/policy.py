"""Which addresses the helper may connect to: the SSRF guard.

A helper on the open Internet makes connections for strangers. Without a guard, a request
naming ``127.0.0.1:6379`` or ``169.254.169.254`` (a cloud's metadata service) would turn it
into a way into the operator's own machine and network. So every address the helper would
dial — endpoints the probe names, the URL's host if it is an IP literal, every address a name
resolves to (at every redirect hop) — is checked here first. Networks the operator allows
explicitly (``--allow``; the lab's 10.x world) are exempt.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from probe.ipinfo import IPNetwork, is_bogon, parse_networks


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """The helper's rule for destinations: public addresses only, plus *allowed* networks."""

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, networks: Iterable[str | IPNetwork]) -> AddressPolicy:
        """A policy that also allows *networks* (CIDR strings).

        Raises:
            ConfigError: a value is not a network.
        """
        return cls(parse_networks(networks, where="--allow"))

    def refusal(self, ip: str) -> str | None:
        """Why *ip* may not be dialled (``"loopback"``, ``"private"``…), ``None`` if it may."""
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return "not an IP address"
        if any(address in network for network in self.allowed):
            return None
        mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        checked = mapped or address
        if checked.is_loopback:
            return "loopback"
        if checked.is_link_local:
            return "link-local"
        if checked.is_unspecified:
            return "unspecified"
        if checked.is_multicast:
            return "multicast"
        if checked.is_private:
            return "private"
        if is_bogon(ip) or checked.is_reserved:
            return "bogon"
        return None

    def is_allowed(self, ip: str) -> bool:
        """True when *ip* may be dialled."""
        return self.refusal(ip) is None

    def is_public(self, ip: str) -> bool:
        """True when *ip* is not a bogon here (an allowed network counts as public)."""
        return not is_bogon(ip, public=self.allowed)
