"""The lab's VPN servers: a WireGuard responder and an OpenVPN hard-reset responder.

Both answer only what their real counterparts answer, so the probe's checks are exercised:

- ``wireguard`` (UDP): :class:`WireGuardResponder` validates each handshake initiation as a
  WireGuard server does (:func:`probe.nettests.wgnoise.consume_initiation`: ``mac1`` keyed with
  its public key, the initiator's static key one of its peers', a timestamp newer than that
  peer's last) and answers with a handshake response; anything else gets no answer. Params:
  ``wireguard_private_key`` (base64) and ``wireguard_peers`` (a list of base64 public keys),
  optionally ``wireguard_preshared_key``.
- ``openvpn_udp`` / ``openvpn_tcp``: :class:`OpenVPNResponder` answers a client's
  ``P_CONTROL_HARD_RESET_CLIENT_V2`` with ``P_CONTROL_HARD_RESET_SERVER_V2`` acknowledging it
  (over TCP in 2-byte length framing); other packets are read and ignored. Params, for a
  server requiring a static key: ``openvpn_tls_auth`` (the key; ``openvpn_key_direction``, the
  server's, and ``openvpn_auth``, the digest) or ``openvpn_tls_crypt``.

Run as ``python -m probe.lab.vpnserver CONFIG.json`` (see :mod:`probe.lab.serving`), or start
:func:`start` in a test's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import struct
import time
from collections.abc import Iterable
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from probe.lab import serving
from probe.nettests import ovpnproto, wgnoise

HOLD_S = 30.0


class WireGuardResponder:
    """Answers valid handshake initiations from known peers, and nothing else."""

    def __init__(
        self, private_key: bytes, peers: Iterable[bytes], preshared_key: bytes = wgnoise.ZERO_KEY
    ) -> None:
        self.static = X25519PrivateKey.from_private_bytes(private_key)
        self.peers = {peer: preshared_key for peer in peers}
        self.last_timestamp: dict[bytes, bytes] = {}
        self.refused = 0
        """Datagrams not answered (invalid, unknown peer, replayed): for tests."""

    def handle(self, datagram: bytes) -> bytes | None:
        """The response to *datagram*, or ``None`` when a WireGuard server would stay silent."""
        try:
            consumed = wgnoise.consume_initiation(datagram, static=self.static, peers=self.peers)
        except wgnoise.HandshakeError:
            self.refused += 1
            return None
        last = self.last_timestamp.get(consumed.initiator_public)
        if last is not None and consumed.timestamp <= last:
            self.refused += 1
            return None
        self.last_timestamp[consumed.initiator_public] = consumed.timestamp
        return wgnoise.respond(consumed, preshared_key=self.peers[consumed.initiator_public])


class OpenVPNResponder:
    """Answers a client's hard reset with the server's, as an OpenVPN server's first step.

    With a *wrapping* (the server's side of tls-auth or tls-crypt), a packet without the
    key's HMAC gets no answer, as from OpenVPN, and :attr:`rejected` is set: over TCP,
    OpenVPN then closes the connection ("cannot locate HMAC in incoming packet").
    """

    def __init__(self, wrapping: ovpnproto.Wrapping = None) -> None:
        self.session_id = ovpnproto.new_session_id()
        self.wrapping = wrapping
        self.sent = 0
        self.rejected = False

    def handle(self, packet: bytes) -> bytes | None:
        """The server hard reset answering *packet*, or ``None`` for anything else."""
        try:
            client = ovpnproto.open_(packet, self.wrapping)
        except ovpnproto.PacketError:
            self.rejected = self.wrapping is not None
            return None
        if client.opcode != ovpnproto.P_CONTROL_HARD_RESET_CLIENT_V2:
            return None
        self.sent += 1
        answer = ovpnproto.server_hard_reset(client, self.session_id).encode()
        return ovpnproto.seal(answer, self.wrapping, self.sent, int(time.time()))


def _server_wrapping(params: dict[str, Any]) -> ovpnproto.Wrapping:
    """``openvpn_tls_auth`` (with ``openvpn_key_direction``, the server's) or ``openvpn_tls_crypt``."""
    if "openvpn_tls_crypt" in params:
        return ovpnproto.TLSCrypt(ovpnproto.parse_static_key(params["openvpn_tls_crypt"]), server=True)
    if "openvpn_tls_auth" in params:
        key = ovpnproto.parse_static_key(params["openvpn_tls_auth"])
        return ovpnproto.TLSAuth(key, params.get("openvpn_key_direction"), params.get("openvpn_auth", "SHA1"))
    return None


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, responder: WireGuardResponder | OpenVPNResponder) -> None:
        self.responder = responder
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        answer = self.responder.handle(data)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


async def _openvpn_tcp(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, wrapping: ovpnproto.Wrapping
) -> None:
    responder = OpenVPNResponder(wrapping)
    with contextlib.suppress(OSError, TimeoutError, asyncio.IncompleteReadError):
        async with asyncio.timeout(HOLD_S):
            while True:
                (length,) = struct.unpack(">H", await reader.readexactly(2))
                answer = responder.handle(await reader.readexactly(length))
                if responder.rejected:
                    break
                if answer is not None:
                    writer.write(ovpnproto.frame(answer))
                    await writer.drain()
    writer.close()


def _key(text: str) -> bytes:
    return base64.b64decode(text)


async def start(config: dict[str, Any]) -> list[serving.Closable]:
    """Bind every service of *config* (``{"services": [{"kind", "address", "port", "params"}]}``)."""
    listeners: list[serving.Closable] = []
    loop = asyncio.get_running_loop()
    for service in config["services"]:
        kind, address, port = service["kind"], service["address"], int(service["port"])
        params = service.get("params") or {}
        if kind == "openvpn_tcp":
            handler = functools.partial(_openvpn_tcp, wrapping=_server_wrapping(params))
            listeners.append(await asyncio.start_server(handler, address, port))
            continue
        responder: WireGuardResponder | OpenVPNResponder
        if kind == "wireguard":
            responder = WireGuardResponder(
                _key(params["wireguard_private_key"]),
                [_key(peer) for peer in params["wireguard_peers"]],
                _key(params["wireguard_preshared_key"])
                if "wireguard_preshared_key" in params
                else wgnoise.ZERO_KEY,
            )
        elif kind == "openvpn_udp":
            responder = OpenVPNResponder(_server_wrapping(params))
        else:
            raise ValueError(f"vpnserver: unknown kind {kind!r}")
        transport, _ = await loop.create_datagram_endpoint(
            functools.partial(_Datagrams, responder), local_addr=(address, port)
        )
        listeners.append(transport)
    return listeners


if __name__ == "__main__":
    serving.main(start)
