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
without their HMAC: with the server's static key (:class:`TLSAuth`, :class:`TLSCrypt`) the
packets carry it, as OpenVPN's own (``ssl_pkt.c``: the HMAC over ``pid | time | op | sid |
rest``; tls-crypt's HMAC-SHA256 tag, whose first 16 bytes are the AES-256-CTR IV).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

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


# --- tls-auth and tls-crypt: the control channel's wrapping -----------------------------------

STATIC_KEY_SIZE: Final = 256
DIGESTS: Final = {"SHA1": "sha1", "SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}
TLS_CRYPT_TAG: Final = 32


def parse_static_key(text: str) -> bytes:
    """The 256 bytes of an OpenVPN static key (``openvpn --genkey``): its file's text or bare hex.

    Raises:
        PacketError: not 256 bytes of hex (between the ``-----BEGIN/END OpenVPN Static key
            V1-----`` lines, if any).
    """
    lines = [line.strip() for line in text.strip().splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]  # the file's comments
    if lines and lines[0].startswith("-----BEGIN"):
        lines = lines[
            1 : next((i for i, line in enumerate(lines) if line.startswith("-----END")), len(lines))
        ]
    body = "".join(lines)
    try:
        key = bytes.fromhex(body)
    except ValueError:
        raise PacketError("not an OpenVPN static key (hex)") from None
    if len(key) != STATIC_KEY_SIZE:
        raise PacketError(f"an OpenVPN static key has 256 bytes, not {len(key)}")
    return key


def _slot(key: bytes, index: int) -> tuple[bytes, bytes]:
    """``(cipher, hmac)`` key material of one of the static key's two 128-byte slots."""
    return key[index * 128 : index * 128 + 64], key[index * 128 + 64 : index * 128 + 128]


def _directions(direction: int | None) -> tuple[int, int]:
    """``(out, in)`` slots: OpenVPN's key-direction (``None``: both ways slot 0)."""
    return (0, 0) if direction is None else ((0, 1) if direction == 0 else (1, 0))


@dataclass(frozen=True, slots=True)
class TLSAuth:
    """``--tls-auth``: every control packet carries an HMAC and a replay id (long form)."""

    key: bytes = field(repr=False)
    direction: int | None = None
    """OpenVPN's ``key-direction``: a client's is usually 1, its server's 0; ``None``: none set."""
    digest: str = "SHA1"

    def _hmac(self, slot: int, data: bytes) -> bytes:
        name = DIGESTS[self.digest.upper()]
        size = hashlib.new(name).digest_size
        return hmac.new(_slot(self.key, slot)[1][:size], data, name).digest()

    def wrap(self, packet: bytes, packet_id: int, now: int) -> bytes:
        """*packet* (``op | sid | rest``) as sent: ``op | sid | hmac | pid | time | rest``."""
        replay = struct.pack(">II", packet_id, now)
        mac = self._hmac(_directions(self.direction)[0], replay + packet)
        return packet[:9] + mac + replay + packet[9:]

    def unwrap(self, data: bytes, *, incoming: bool = True) -> bytes:
        """The packet inside *data*, its HMAC checked (with the receiving slot when *incoming*).

        Raises:
            PacketError: too short, or the HMAC does not verify.
        """
        size = hashlib.new(DIGESTS[self.digest.upper()]).digest_size
        if len(data) < 9 + size + 8:
            raise PacketError("shorter than a tls-auth header")
        mac, replay = data[9 : 9 + size], data[9 + size : 17 + size]
        packet = data[:9] + data[17 + size :]
        slot = _directions(self.direction)[1 if incoming else 0]
        if not hmac.compare_digest(mac, self._hmac(slot, replay + packet)):
            raise PacketError("tls-auth HMAC does not verify")
        return packet


@dataclass(frozen=True, slots=True)
class TLSCrypt:
    """``--tls-crypt`` (v1): control packets encrypted (AES-256-CTR) and authenticated (HMAC-SHA256)."""

    key: bytes = field(repr=False)
    server: bool = False
    """Whose side this is: a client sends with slot 1 and receives with slot 0 (a server, the reverse)."""

    def _keys(self, slot: int) -> tuple[bytes, bytes]:
        cipher, mac = _slot(self.key, slot)
        return cipher[:32], mac[:32]

    def wrap(self, packet: bytes, packet_id: int, now: int) -> bytes:
        """*packet* (``op | sid | rest``) as sent: ``op | sid | pid | time | tag | AES-CTR(rest)``."""
        cipher_key, mac_key = self._keys(0 if self.server else 1)
        header = packet[:9] + struct.pack(">II", packet_id, now)
        tag = hmac.new(mac_key, header + packet[9:], "sha256").digest()
        encryptor = Cipher(algorithms.AES(cipher_key), modes.CTR(tag[:16])).encryptor()
        return header + tag + encryptor.update(packet[9:]) + encryptor.finalize()

    def unwrap(self, data: bytes) -> bytes:
        """The packet inside *data* (sent by the other side), decrypted and its tag checked.

        Raises:
            PacketError: too short, or the tag does not verify.
        """
        if len(data) < 17 + TLS_CRYPT_TAG:
            raise PacketError("shorter than a tls-crypt header")
        cipher_key, mac_key = self._keys(1 if self.server else 0)
        header, tag = data[:17], data[17 : 17 + TLS_CRYPT_TAG]
        decryptor = Cipher(algorithms.AES(cipher_key), modes.CTR(tag[:16])).decryptor()
        plain = decryptor.update(data[17 + TLS_CRYPT_TAG :]) + decryptor.finalize()
        if not hmac.compare_digest(tag, hmac.new(mac_key, header + plain, "sha256").digest()):
            raise PacketError("tls-crypt tag does not verify")
        return data[:9] + plain


Wrapping = TLSAuth | TLSCrypt | None
"""How control packets are wrapped: ``None`` for a server without tls-auth or tls-crypt."""


def seal(packet: bytes, wrapping: Wrapping, packet_id: int, now: int) -> bytes:
    """*packet* as it goes on the wire (*packet_id*: the wrapping's replay id, from 1)."""
    return packet if wrapping is None else wrapping.wrap(packet, packet_id, now)


def open_(data: bytes, wrapping: Wrapping) -> Packet:
    """The packet that came (unwrapped and checked), parsed.

    Raises:
        PacketError: not a (valid) control packet.
    """
    return decode(data if wrapping is None else wrapping.unwrap(data))
