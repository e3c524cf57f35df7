"""OpenVPN's control-channel packets, as far as the hard-reset exchange (both sides).

A control packet (OpenVPN's ``ssl_pkt.h``, without ``tls-auth``/``tls-crypt``)::

    opcode << 3 | key_id        1 byte
    session id                  8 bytes
    ack count                   1 byte, then that many 4-byte packet ids (big-endian)
    remote session id           8 bytes, only when the ack count is not 0
    packet id                   4 bytes (big-endian), absent from P_ACK_V1
    payload                     the rest

Over TCP every packet is preceded by its length (2 bytes, big-endian). The exchange the test
performs (ts-040's step 2): the client sends ``P_CONTROL_HARD_RESET_CLIENT_V2`` (packet id 0,
no payload) and the server answers ``P_CONTROL_HARD_RESET_SERVER_V2`` acknowledging packet 0
of the client's session. Servers that require ``tls-auth`` or ``tls-crypt`` drop packets
without their HMAC: they cannot be measured this way.
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass
from typing import Final

P_CONTROL_V1: Final = 4
P_ACK_V1: Final = 5
P_CONTROL_HARD_RESET_CLIENT_V2: Final = 7
P_CONTROL_HARD_RESET_SERVER_V2: Final = 8
OPCODES: Final = {
    1: "P_CONTROL_HARD_RESET_CLIENT_V1",
    2: "P_CONTROL_HARD_RESET_SERVER_V1",
    3: "P_CONTROL_SOFT_RESET_V1",
    P_CONTROL_V1: "P_CONTROL_V1",
    P_ACK_V1: "P_ACK_V1",
    6: "P_DATA_V1",
    P_CONTROL_HARD_RESET_CLIENT_V2: "P_CONTROL_HARD_RESET_CLIENT_V2",
    P_CONTROL_HARD_RESET_SERVER_V2: "P_CONTROL_HARD_RESET_SERVER_V2",
    9: "P_DATA_V2",
    10: "P_CONTROL_HARD_RESET_CLIENT_V3",
    11: "P_CONTROL_WKC_V1",
}


class PacketError(ValueError):
    """Bytes that are not an OpenVPN control packet."""


@dataclass(frozen=True, slots=True)
class Packet:
    """One control packet."""

    opcode: int
    session_id: bytes
    acks: tuple[int, ...] = ()
    remote_session_id: bytes = b""
    packet_id: int | None = 0
    """``None`` for P_ACK_V1, which carries none."""
    payload: bytes = b""
    key_id: int = 0

    @property
    def opcode_name(self) -> str:
        """``P_CONTROL_HARD_RESET_CLIENT_V2`` …, or ``UNKNOWN_<n>``."""
        return OPCODES.get(self.opcode, f"UNKNOWN_{self.opcode}")

    def encode(self) -> bytes:
        """The packet's bytes (UDP framing: no length prefix)."""
        out = bytes([self.opcode << 3 | self.key_id]) + self.session_id + bytes([len(self.acks)])
        out += b"".join(struct.pack(">I", ack) for ack in self.acks)
        if self.acks:
            out += self.remote_session_id
        if self.packet_id is not None:
            out += struct.pack(">I", self.packet_id)
        return out + self.payload


def decode(data: bytes) -> Packet:
    """Parse one packet (UDP framing).

    Raises:
        PacketError: too short for the fields its header announces, or not a control opcode.
    """
    if len(data) < 10:
        raise PacketError("shorter than an OpenVPN header")
    opcode, key_id = data[0] >> 3, data[0] & 7
    if opcode not in OPCODES or opcode in (6, 9):
        raise PacketError(f"not a control packet (opcode {opcode})")
    session_id, count = data[1:9], data[9]
    offset = 10 + 4 * count
    if len(data) < offset + (8 if count else 0) + (0 if opcode == P_ACK_V1 else 4):
        raise PacketError("truncated")
    acks = tuple(struct.unpack_from(">I", data, 10 + 4 * i)[0] for i in range(count))
    remote = b""
    if count:
        remote, offset = data[offset : offset + 8], offset + 8
    packet_id: int | None = None
    if opcode != P_ACK_V1:
        (packet_id,) = struct.unpack_from(">I", data, offset)
        offset += 4
    return Packet(opcode, session_id, acks, remote, packet_id, data[offset:], key_id)


def frame(packet: bytes) -> bytes:
    """TCP framing: the packet preceded by its 2-byte length."""
    return struct.pack(">H", len(packet)) + packet


def new_session_id() -> bytes:
    """A random 8-byte session id."""
    return secrets.token_bytes(8)


def client_hard_reset(session_id: bytes) -> Packet:
    """The client's first packet: ``P_CONTROL_HARD_RESET_CLIENT_V2``, packet id 0, no payload."""
    return Packet(P_CONTROL_HARD_RESET_CLIENT_V2, session_id)


def is_server_hard_reset(packet: Packet, client_session_id: bytes) -> bool:
    """Whether *packet* is the server's answer to our hard reset (it acknowledges packet 0 of ours)."""
    return (
        packet.opcode == P_CONTROL_HARD_RESET_SERVER_V2
        and packet.remote_session_id == client_session_id
        and 0 in packet.acks
    )


def server_hard_reset(client: Packet, server_session_id: bytes) -> Packet:
    """A server's answer to *client*'s hard reset (what the lab's and the tests' server send)."""
    return Packet(
        P_CONTROL_HARD_RESET_SERVER_V2,
        server_session_id,
        acks=(client.packet_id or 0,),
        remote_session_id=client.session_id,
        packet_id=0,
    )


def ack(session_id: bytes, remote_session_id: bytes, packet_id: int = 0) -> Packet:
    """``P_ACK_V1`` of the server's *packet_id* (the client acknowledges the server's reset)."""
    return Packet(
        P_ACK_V1, session_id, acks=(packet_id,), remote_session_id=remote_session_id, packet_id=None
    )
