"""The OpenVPN test (OONI ts-040, ``openvpn``), as far as the hard-reset exchange.

One endpoint per measurement, over UDP or TCP: the client's ``P_CONTROL_HARD_RESET_CLIENT_V2``
must draw the server's ``P_CONTROL_HARD_RESET_SERVER_V2`` acknowledging it
(:mod:`probe.nettests.ovpnproto`). That is step 2 of the spec's tunnel initialisation: the
packet a DPI box recognises an OpenVPN connection by, and the one Pakistan's 2024 VPN blocking
stopped. reachprobe goes no further (no TLS over the control channel, no credentials), and its
keys say so: ``success`` is the exchange's, ``x_stage`` is ``"hard_reset"``. A server that
requires ``tls-auth`` or ``tls-crypt`` answers only packets carrying its static key's HMAC:
with the key (:class:`~probe.nettests.ovpnproto.TLSAuth`, :class:`~probe.nettests.ovpnproto.TLSCrypt`)
the packets carry it and the answer is checked with it; without it such a server stays silent
over UDP and closes the connection over TCP, which reads as blocking.

Over UDP the hard reset is sent again every second (the same packet, as OpenVPN retransmits)
until the timeout; over TCP once, after a connect recorded in ``tcp_connect``. The keys are the
spec's where they apply: ``success``, ``failure``, ``tunnel``, ``openvpn_handshake`` (one
entry: ``endpoint``, ``ip``, ``port``, ``transport``, ``provider``, ``openvpn_options``,
``t0``, ``t``, ``handshake_time``, ``failure``, ``tags``, ``transaction_id``),
``tcp_connect`` and ``network_events`` (``state``, ``packet_out``, ``packet_in``,
``packet_dropped``, each with its ``stage`` and parsed ``packet``); then our summary
(``x_blocking``, ``x_accessible``, ``x_mechanism``: :mod:`probe.nettests.vpnverdict`). The ``input`` is the
spec's URI, ``openvpn://<provider>.corp/?address=<ip:port>&transport=<udp|tcp>`` (the host as
listed: an endpoint given by name is looked up first, its query in ``queries``).
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from probe import serialize
from probe.model import OONIMeasurement, TCPConnect
from probe.nettests import ovpnproto, udpexchange, vpnverdict
from probe.nettests.base import Clock, Context, finish
from probe.nettests.ovpnproto import Packet
from probe.nettests.urlgetter import summary_keys
from probe.steps import failures, tcp
from probe.steps.urls import endpoint

TEST_NAME: Final = "openvpn"
TEST_VERSION: Final = "0.1.0"
STAGE: Final = "hard_reset"
RETRANSMIT_S: Final = 1.0
TRANSACTION_ID: Final = 1


@dataclass(frozen=True, slots=True)
class OpenVPNEndpoint:
    """An OpenVPN server an operator listed."""

    host: str
    """An IP address, or a name (looked up when measured)."""
    port: int
    transport: Literal["udp", "tcp"]
    provider: str = "unknown"
    wrapping: ovpnproto.Wrapping = field(default=None, repr=False)
    """The server's ``tls-auth`` or ``tls-crypt`` key, when it requires one."""

    @property
    def options(self) -> dict[str, str]:
        """ts-040's ``openvpn_options``: what of the configuration shaped the packets."""
        if isinstance(self.wrapping, ovpnproto.TLSAuth):
            direction = "" if self.wrapping.direction is None else str(self.wrapping.direction)
            return {"auth": self.wrapping.digest.upper(), "tls-auth": "true", "key-direction": direction}
        if isinstance(self.wrapping, ovpnproto.TLSCrypt):
            return {"tls-crypt": "true"}
        return {}

    @property
    def input(self) -> str:
        """ts-040's input URI."""
        address = endpoint(self.host, self.port)
        return f"openvpn://{self.provider}.corp/?address={address}&transport={self.transport}"


async def measure(target: OpenVPNEndpoint, *, context: Context, timeout: float = 10.0) -> OONIMeasurement:
    """Run the hard-reset exchange with *target* and build the measurement."""
    clock = Clock()
    session = ovpnproto.new_session_id()
    events = _Events(clock)
    connects: list[TCPConnect] = []
    ip, queries, dns_failure = await vpnverdict.resolve(target.host, timeout=timeout, clock=clock.elapsed)
    t0, failure = clock.elapsed(), dns_failure
    if ip is not None and target.transport == "udp":
        t0, failure = await _over_udp(ip, target.port, session, events, timeout, target.wrapping)
    elif ip is not None:
        t0, failure = await _over_tcp(ip, target.port, session, events, timeout, connects, target.wrapping)
    t = clock.elapsed()
    connect_failure = connects[0].status.failure if connects else None
    handshake: dict[str, Any] = {
        "endpoint": f"openvpn://{endpoint(ip or target.host, target.port)}/{target.transport}",
        "failure": failure,
        "handshake_time": round(t - t0, 6),
        "ip": ip or "",
        "port": target.port,
        "transport": target.transport,
        "provider": target.provider,
        "openvpn_options": target.options,
        "t0": t0,
        "t": t,
        "tags": [],
        "transaction_id": TRANSACTION_ID,
    }
    test_keys = {
        "success": failure is None,
        "failure": failure,
        "tunnel": "openvpn",
        "openvpn_handshake": [handshake] if ip is not None and connect_failure is None else [],
        "queries": queries,
        "tcp_connect": serialize.as_dict(connects),
        "network_events": events.events,
        "x_stage": STAGE,
    }
    summary = vpnverdict.summary(
        transport=target.transport, connect_failure=connect_failure, failure=failure, dns_failure=dns_failure
    )
    test_keys.update(summary_keys(summary))
    return finish(
        test_name=TEST_NAME, test_version=TEST_VERSION, input=target.input, test_keys=test_keys,
        summary=summary, clock=clock, context=context,
    )  # fmt: skip


class _Events:
    """ts-040's ``network_events``, in the order they happened."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.stage = "INITIAL"
        self.events: list[dict[str, Any]] = []

    def state(self, stage: str, t: float | None = None) -> None:
        self.stage = stage
        self._add("state", None, t)

    def packet(
        self, operation: str, packet: Packet | None, size: int, t: float, attempts: int | None = None
    ) -> None:
        described = None
        if packet is not None:
            described = {
                "operation": "write" if operation == "packet_out" else "read",
                "opcode": packet.opcode_name,
                "id": packet.packet_id or 0,
                "acks": list(packet.acks) or None,
                "payload_size": len(packet.payload),
                "send_attempts": attempts,
            }
        self._add(operation, described, t, size)

    def _add(
        self, operation: str, packet: dict[str, Any] | None, t: float | None, size: int | None = None
    ) -> None:
        event: dict[str, Any] = {
            "operation": operation, "stage": self.stage, "t": self.clock.elapsed() if t is None else t,
            "tags": [], "packet": packet, "transaction_id": TRANSACTION_ID,
        }  # fmt: skip
        if size is not None:
            event["x_num_bytes"] = size
        self.events.append(event)


def _opened(data: bytes, wrapping: ovpnproto.Wrapping) -> Packet | None:
    """The control packet in *data* (unwrapped and checked), or ``None`` when it is not one."""
    try:
        return ovpnproto.open_(data, wrapping)
    except ovpnproto.PacketError:
        return None


async def _over_udp(
    ip: str, port: int, session: bytes, events: _Events, timeout: float, wrapping: ovpnproto.Wrapping
) -> tuple[float, str | None]:
    hard_reset = ovpnproto.client_hard_reset(session)
    t0 = events.clock.elapsed()
    events.state("PRE_START", t0)
    sent: list[Packet] = []

    def build(attempt: int) -> bytes:
        # The same packet again, as OpenVPN resends it; wrapped, it takes the next replay id.
        sent.append(hard_reset)
        return ovpnproto.seal(hard_reset.encode(), wrapping, attempt, int(time.time()))

    def check(data: bytes) -> bool:
        server = _opened(data, wrapping)
        return server is not None and ovpnproto.is_server_hard_reset(server, session)

    def ack(data: bytes) -> bytes:
        """Acknowledge the server's reset from the same socket, as a client does."""
        server = ovpnproto.open_(data, wrapping)
        packet = ovpnproto.ack(session, server.session_id, server.packet_id or 0)
        sent.append(packet)
        return ovpnproto.seal(packet.encode(), wrapping, len(sent), int(time.time()))

    exchange = await udpexchange.exchange(
        ip, port, build=build, check=check, timeout=timeout, retransmit=RETRANSMIT_S,
        clock=events.clock.elapsed, reply=ack,
    )  # fmt: skip
    outgoing = iter(sent)
    for datagram in exchange.datagrams:
        if datagram.direction == "out":
            events.packet("packet_out", next(outgoing), datagram.size, datagram.t, max(datagram.attempt, 1))
            continue
        if not datagram.dropped:
            events.state("START", datagram.t)
        operation = "packet_dropped" if datagram.dropped else "packet_in"
        events.packet(operation, _opened(datagram.data, wrapping), datagram.size, datagram.t)
    return t0, exchange.failure


async def _over_tcp(
    ip: str,
    port: int,
    session: bytes,
    events: _Events,
    timeout: float,
    connects: list[TCPConnect],
    wrapping: ovpnproto.Wrapping,
) -> tuple[float, str | None]:
    record, connection = await tcp.connect(
        ip, port, timeout=timeout, clock=events.clock.elapsed, transaction_id=TRANSACTION_ID
    )
    connects.append(record)
    t0 = events.clock.elapsed()
    if connection is None:
        return t0, record.status.failure
    hard_reset = ovpnproto.client_hard_reset(session)
    events.state("PRE_START", t0)
    try:
        async with asyncio.timeout(timeout):
            wire = ovpnproto.frame(ovpnproto.seal(hard_reset.encode(), wrapping, 1, int(time.time())))
            connection.writer.write(wire)
            await connection.writer.drain()
            events.packet("packet_out", hard_reset, len(wire), events.clock.elapsed(), 1)
            (length,) = struct.unpack(">H", await connection.reader.readexactly(2))
            data = await connection.reader.readexactly(length)
        t = events.clock.elapsed()
        server = _opened(data, wrapping)
        if server is None or not ovpnproto.is_server_hard_reset(server, session):
            events.packet("packet_dropped", server, length + 2, t)
            return t0, failures.UNEXPECTED_RESPONSE
        events.state("START", t)
        events.packet("packet_in", server, length + 2, t)
        ack = ovpnproto.ack(session, server.session_id, server.packet_id or 0)
        wire = ovpnproto.frame(ovpnproto.seal(ack.encode(), wrapping, 2, int(time.time())))
        connection.writer.write(wire)
        events.packet("packet_out", ack, len(wire), events.clock.elapsed(), 1)
        return t0, None
    except failures.NETWORK_EXCEPTIONS as exc:
        return t0, failures.classify(exc, "read")
    finally:
        await connection.close()
