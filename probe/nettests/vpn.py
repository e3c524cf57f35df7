"""The VPN endpoints an operator lists: one WireGuard or OpenVPN measurement per endpoint.

The list is the ``vpn`` family of an endpoint file (:mod:`probe.nettests.endpoints`; nothing
ships: VPN endpoints and their keys are the operator's)::

    [[vpn]]
    role = "wireguard"
    host = "203.0.113.7"            # an IP address, or a name (looked up when measured)
    ports = [51820]
    params = { public_key = "<server's, base64>", private_key = "<client's, base64>",
               preshared_key = "<optional, base64>", provider = "example" }

    [[vpn]]
    role = "openvpn"
    host = "203.0.113.7"
    ports = [1194]
    params = { transport = "udp", provider = "example" }      # transport: udp (default) or tcp

An OpenVPN server that requires ``tls-auth`` or ``tls-crypt`` answers only packets carrying
its static key's HMAC: give the key (the ``<tls-auth>``/``<tls-crypt>`` block of the
``.ovpn`` file, or its hex) as ``params.tls_auth`` (with ``key_direction``, the client's —
usually 1 —, and ``auth``, the digest, SHA1 by default) or ``params.tls_crypt``; a
multi-line key fits a ``[vpn.params]`` table under the ``[[vpn]]`` entry.

Each endpoint and port is measured by :mod:`probe.nettests.wireguard` or
:mod:`probe.nettests.openvpn`. Then the one comparison a list allows: a measurement whose
handshake failed gets ``x_same_host_reachable`` — ``true`` when another endpoint of the same
host answered (the host is reachable, this protocol or port is not: WireGuard's UDP dropped
while OpenVPN over TCP to the same server passes), ``false`` when none did, absent when the
host has no other endpoint.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Literal

from probe import serialize
from probe.errors import ConfigError
from probe.model import OONIMeasurement
from probe.nettests import openvpn, ovpnproto, wgnoise, wireguard
from probe.nettests.base import Context
from probe.nettests.endpoints import EndpointList

FAMILY: Final = "vpn"
ROLES: Final = ("wireguard", "openvpn")
TRANSPORTS: Final[dict[object, Literal["udp", "tcp"]]] = {"udp": "udp", "tcp": "tcp"}

VPNEndpoint = wireguard.WireGuardEndpoint | openvpn.OpenVPNEndpoint


def endpoints_from(listed: EndpointList) -> list[VPNEndpoint]:
    """The endpoints of a ``[[vpn]]`` list, one per entry and port.

    Raises:
        ConfigError: naming the entry's file:line and field — no port, an unknown role or
            transport, a missing or malformed key.
    """
    out: list[VPNEndpoint] = []
    for entry in listed.endpoints:

        def bad(name: str, problem: str, where: str = entry.where) -> ConfigError:
            return ConfigError(f"{where}: vpn.{name}: {problem}")

        if entry.role not in ROLES:
            raise bad("role", f"{entry.role!r} is not one of {', '.join(ROLES)}")
        if not entry.ports:
            raise bad("ports", "at least one port is needed")
        provider = str(entry.params.get("provider", "unknown"))
        for port in entry.ports:
            if entry.role == "openvpn":
                transport = entry.params.get("transport", "udp")
                if transport not in TRANSPORTS:
                    raise bad("params.transport", f"{transport!r} is not udp or tcp")
                wrapping = _wrapping(entry.params, bad)
                out.append(
                    openvpn.OpenVPNEndpoint(entry.host, port, TRANSPORTS[transport], provider, wrapping)
                )
                continue
            keys = {}
            for name in ("public_key", "private_key", "preshared_key"):
                text = entry.params.get(name)
                if text is None and name != "preshared_key":
                    raise bad(f"params.{name}", "required for wireguard (base64, as in WireGuard's files)")
                try:
                    keys[name] = wireguard.decode_key(str(text), name) if text is not None else None
                except ValueError as exc:
                    raise bad(f"params.{name}", str(exc).split(": ", 1)[1]) from None
            out.append(
                wireguard.WireGuardEndpoint(
                    entry.host,
                    port,
                    public_key=keys["public_key"] or b"",
                    private_key=keys["private_key"] or b"",
                    preshared_key=keys["preshared_key"] or wgnoise.ZERO_KEY,
                    provider=provider,
                )
            )
    return out


def _wrapping(params: Mapping[str, object], bad: Callable[[str, str], ConfigError]) -> ovpnproto.Wrapping:
    """An OpenVPN entry's ``tls_auth`` (with ``key_direction``, ``auth``) or ``tls_crypt`` key."""
    if "tls_auth" in params and "tls_crypt" in params:
        raise bad("params.tls_crypt", "a server uses tls-auth or tls-crypt, not both")
    try:
        if "tls_crypt" in params:
            return ovpnproto.TLSCrypt(ovpnproto.parse_static_key(str(params["tls_crypt"])))
        if "tls_auth" in params:
            key = ovpnproto.parse_static_key(str(params["tls_auth"]))
            direction = params.get("key_direction")
            if direction not in (None, 0, 1):
                raise bad("params.key_direction", "0, 1, or absent (as the server's configuration says)")
            digest = str(params.get("auth", "SHA1")).upper()
            if digest not in ovpnproto.DIGESTS:
                raise bad("params.auth", f"{digest!r} is not one of {', '.join(ovpnproto.DIGESTS)}")
            return ovpnproto.TLSAuth(key, direction if isinstance(direction, int) else None, digest)
    except ovpnproto.PacketError as exc:
        raise bad("params.tls_crypt" if "tls_crypt" in params else "params.tls_auth", str(exc)) from None
    return None


async def measure_all(
    targets: Sequence[VPNEndpoint], *, context: Context, timeout: float = 10.0, parallelism: int = 4
) -> list[OONIMeasurement]:
    """Measure every endpoint (at most *parallelism* at a time); the measurements in list order."""
    gate = asyncio.Semaphore(max(1, parallelism))

    async def one(target: VPNEndpoint) -> OONIMeasurement:
        async with gate:
            if isinstance(target, wireguard.WireGuardEndpoint):
                return await wireguard.measure(target, context=context, timeout=timeout)
            return await openvpn.measure(target, context=context, timeout=timeout)

    measured = await asyncio.gather(*(one(t) for t in targets))
    return [
        _compared(
            m, [o for t, o in zip(targets, measured, strict=True) if t.host == target.host and o is not m]
        )
        for target, m in zip(targets, measured, strict=True)
    ]


def _compared(m: OONIMeasurement, others: list[OONIMeasurement]) -> OONIMeasurement:
    """*m* with ``x_same_host_reachable`` when its handshake failed and its host has other endpoints."""
    if m.summary.accessible is not False or not others:
        return m
    document = dict(m.document)
    document["test_keys"] = {
        **document["test_keys"],
        "x_same_host_reachable": any(o.summary.accessible is True for o in others),
    }
    return serialize.ooni_measurement(document, target=m.target, summary=m.summary)
