"""What people call the series of the tests beyond websites: ``telegram`` → ``Telegram``.

A measurement's target (its series: :attr:`probe.model.OONIMeasurement.target`) is a URL for
the web test, and for the other tests the test's name (``telegram``, ``tor``), its input
(``wireguard://example.corp/?address=203.0.113.7:51820``) or a prefixed URL
(``http3:https://www.youtube.com/``, ``throughput:https://…``). :func:`display_target` gives
the words a sentence uses for each; a web URL stays as it is, and so does anything this
version does not know (stored data may come from another).

Pure (stdlib only): the flags' sentences (:mod:`measurements.patterns.wording`), the report and
the dashboard use it.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import parse_qs, urlsplit

NAMES: Final = {
    "whatsapp": "WhatsApp",
    "telegram": "Telegram",
    "signal": "Signal",
    "facebook_messenger": "Facebook Messenger",
    "tor": "Tor",
    "psiphon": "Psiphon",
    "riseupvpn": "RiseupVPN",
    "sni_blocking": "SNI blocking",
    "vpn": "VPN",
}
"""Tests whose series is their name, and the family names of ``[tests]``."""

PREFIXED: Final = {
    "http3:": "{} over HTTP/3",
    "throughput:": "Downloads from {}",
}
"""Series that prefix a URL, and the words around the URL."""

VPN_SCHEMES: Final = {"wireguard": "WireGuard", "openvpn": "OpenVPN"}
"""OONI's VPN inputs (``<protocol>://<provider>.corp/?address=…``), by scheme."""

HANDSHAKES: Final = {"quic": "QUIC handshake", "vpn": "VPN handshake"}
"""Mechanism kinds that name no connection layer of their own, as a sentence says them."""


def display_target(target: str) -> str:
    """The words a sentence uses for the series *target*.

    ``Telegram``; ``https://www.youtube.com/ over HTTP/3``; ``WireGuard (example,
    203.0.113.7:51820)``; a web URL, or anything unknown, as it is.
    """
    if target in NAMES:
        return NAMES[target]
    for prefix, words in PREFIXED.items():
        if target.startswith(prefix) and len(target) > len(prefix):
            return words.format(target[len(prefix) :])
    scheme, sep, _ = target.partition("://")
    if sep and scheme in VPN_SCHEMES:
        return _vpn(VPN_SCHEMES[scheme], target)
    return target


def _vpn(protocol: str, target: str) -> str:
    parts = urlsplit(target)
    query = parse_qs(parts.query)
    provider = (parts.hostname or "").removesuffix(".corp")
    address = query.get("address", [""])[0]
    transport = query.get("transport", [""])[0]
    where = ", ".join(p for p in (provider, address + (f"/{transport}" if transport else "")) if p)
    return f"{protocol} ({where})" if where else protocol


def handshake_of(mechanism: str | None) -> str | None:
    """``QUIC handshake`` for a ``quic.*`` mechanism (a kind with no connection layer), else ``None``."""
    if mechanism is None:
        return None
    return HANDSHAKES.get(mechanism.partition(".")[0])
