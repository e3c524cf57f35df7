"""WireGuard's handshake messages (Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s), both sides.

The whitepaper's §5.4 to the letter, with the ``cryptography`` package (X25519,
ChaCha20-Poly1305) and ``hashlib`` (BLAKE2s, HMAC-BLAKE2s):

- the initiator builds a *handshake initiation* (type 1, 148 bytes) with :func:`initiate`
  and checks the *handshake response* (type 2, 92 bytes) with :meth:`Initiation.accept`;
- a responder (the lab's and the tests' WireGuard server) checks an initiation with
  :func:`consume_initiation` — ``mac1``, the initiator's static key among its peers, the
  timestamp — and answers it with :func:`respond`.

A real WireGuard server answers only an initiation whose ``mac1`` is keyed with its public key
and whose static key is one of its peers': the probe needs the operator's client key pair
(the ``PrivateKey`` of a ``[Interface]`` the server knows) and the server's public key.
Cookie replies (type 3, under load) are recognised, not answered: one proves a WireGuard
server read the initiation. Keys are 32 raw bytes (base64 in WireGuard's files).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

CONSTRUCTION: Final = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER: Final = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1: Final = b"mac1----"
INITIATION: Final = 1
RESPONSE: Final = 2
COOKIE_REPLY: Final = 3
INITIATION_SIZE: Final = 148
RESPONSE_SIZE: Final = 92
COOKIE_REPLY_SIZE: Final = 64
TAI64_BASE: Final = 0x400000000000000A
"""TAI64N's label of 1970 (plus the ten leap seconds WireGuard's implementations add)."""
ZERO_KEY: Final = bytes(32)


class HandshakeError(ValueError):
    """A message that is not a valid step of the handshake (wrong size, MAC, key or tag)."""


def hash_(*parts: bytes) -> bytes:
    """HASH: BLAKE2s-256 of the concatenation."""
    return hashlib.blake2s(b"".join(parts)).digest()


def mac(key: bytes, data: bytes) -> bytes:
    """MAC: keyed BLAKE2s with a 16-byte digest."""
    return hashlib.blake2s(data, key=key, digest_size=16).digest()


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, hashlib.blake2s).digest()


def kdf(key: bytes, data: bytes, n: int) -> tuple[bytes, ...]:
    """KDF_n: HKDF over HMAC-BLAKE2s, *n* 32-byte outputs."""
    prk = _hmac(key, data)
    out, previous = [], b""
    for i in range(1, n + 1):
        previous = _hmac(prk, previous + bytes([i]))
        out.append(previous)
    return tuple(out)


def aead_encrypt(key: bytes, counter: int, plaintext: bytes, aad: bytes) -> bytes:
    """AEAD: ChaCha20-Poly1305 with the nonce ``0^32 || LE64(counter)``."""
    return ChaCha20Poly1305(key).encrypt(b"\0" * 4 + struct.pack("<Q", counter), plaintext, aad)


def aead_decrypt(key: bytes, counter: int, ciphertext: bytes, aad: bytes) -> bytes:
    """The inverse of :func:`aead_encrypt`.

    Raises:
        HandshakeError: the tag does not verify.
    """
    from cryptography.exceptions import InvalidTag

    try:
        return ChaCha20Poly1305(key).decrypt(b"\0" * 4 + struct.pack("<Q", counter), ciphertext, aad)
    except InvalidTag:
        raise HandshakeError("AEAD tag does not verify") from None


def public_bytes(private: X25519PrivateKey) -> bytes:
    """The 32 raw bytes of *private*'s public key."""
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def dh(private: X25519PrivateKey, public: bytes) -> bytes:
    """DH: X25519 of *private* and the raw *public* key."""
    return private.exchange(X25519PublicKey.from_public_bytes(public))


def tai64n(now: float | None = None) -> bytes:
    """TIMESTAMP: 12 bytes of TAI64N (big-endian seconds, then nanoseconds)."""
    ns = time.time_ns() if now is None else int(now * 1e9)
    return struct.pack(">QI", TAI64_BASE + ns // 1_000_000_000, ns % 1_000_000_000)


def _initial(responder_public: bytes) -> tuple[bytes, bytes]:
    chaining = hash_(CONSTRUCTION)
    return chaining, hash_(hash_(chaining, IDENTIFIER), responder_public)


def _mac1(message: bytes, receiver_public: bytes) -> bytes:
    return mac(hash_(LABEL_MAC1, receiver_public), message)


@dataclass(frozen=True, slots=True)
class Initiation:
    """A handshake initiation sent, with the state needed to check its response."""

    message: bytes
    sender_index: int
    ephemeral: X25519PrivateKey
    static: X25519PrivateKey
    chaining_key: bytes
    hash: bytes
    preshared_key: bytes

    def accept(self, response: bytes) -> None:
        """Check *response*: a handshake response to this initiation, from the holder of the key.

        Raises:
            HandshakeError: it is not one (size, type, index, ``mac1`` or the empty payload's tag).
        """
        if len(response) != RESPONSE_SIZE or response[0] != RESPONSE or response[1:4] != b"\0\0\0":
            raise HandshakeError("not a handshake response")
        (receiver,) = struct.unpack_from("<I", response, 8)
        if receiver != self.sender_index:
            raise HandshakeError("a response to another initiation")
        if not hmac.compare_digest(response[60:76], _mac1(response[:60], public_bytes(self.static))):
            raise HandshakeError("mac1 does not verify")
        ephemeral = response[12:44]
        (chaining,) = kdf(self.chaining_key, ephemeral, 1)
        h = hash_(self.hash, ephemeral)
        (chaining,) = kdf(chaining, dh(self.ephemeral, ephemeral), 1)
        (chaining,) = kdf(chaining, dh(self.static, ephemeral), 1)
        _, tau, key = kdf(chaining, self.preshared_key, 3)
        h = hash_(h, tau)
        aead_decrypt(key, 0, response[44:60], h)


def initiate(
    *,
    static: X25519PrivateKey,
    responder_public: bytes,
    preshared_key: bytes = ZERO_KEY,
    sender_index: int | None = None,
    now: float | None = None,
) -> Initiation:
    """Build a handshake initiation from *static* to the server whose public key is *responder_public*."""
    index = secrets.randbits(32) if sender_index is None else sender_index
    ephemeral = X25519PrivateKey.generate()
    chaining, h = _initial(responder_public)
    ephemeral_public = public_bytes(ephemeral)
    (chaining,) = kdf(chaining, ephemeral_public, 1)
    h = hash_(h, ephemeral_public)
    chaining, key = kdf(chaining, dh(ephemeral, responder_public), 2)
    encrypted_static = aead_encrypt(key, 0, public_bytes(static), h)
    h = hash_(h, encrypted_static)
    chaining, key = kdf(chaining, dh(static, responder_public), 2)
    encrypted_timestamp = aead_encrypt(key, 0, tai64n(now), h)
    h = hash_(h, encrypted_timestamp)
    body = struct.pack("<B3xI", INITIATION, index) + ephemeral_public + encrypted_static + encrypted_timestamp
    message = body + _mac1(body, responder_public) + bytes(16)
    return Initiation(message, index, ephemeral, static, chaining, h, preshared_key)


@dataclass(frozen=True, slots=True)
class Consumed:
    """What a responder learnt from a valid initiation."""

    sender_index: int
    initiator_public: bytes
    timestamp: bytes
    chaining_key: bytes
    hash: bytes
    ephemeral_public: bytes


def consume_initiation(message: bytes, *, static: X25519PrivateKey, peers: Mapping[bytes, bytes]) -> Consumed:
    """Check an initiation the way a WireGuard server does before it answers.

    Args:
        message: the datagram.
        static: the responder's private key.
        peers: the initiators' public keys it knows → their preshared keys.

    Raises:
        HandshakeError: wrong size or type, ``mac1`` not keyed with our key, undecryptable
            static key or timestamp, or a static key that is not a peer's.
    """
    if len(message) != INITIATION_SIZE or message[0] != INITIATION or message[1:4] != b"\0\0\0":
        raise HandshakeError("not a handshake initiation")
    own_public = public_bytes(static)
    if not hmac.compare_digest(message[116:132], _mac1(message[:116], own_public)):
        raise HandshakeError("mac1 does not verify")
    (index,) = struct.unpack_from("<I", message, 4)
    chaining, h = _initial(own_public)
    ephemeral = message[8:40]
    (chaining,) = kdf(chaining, ephemeral, 1)
    h = hash_(h, ephemeral)
    chaining, key = kdf(chaining, dh(static, ephemeral), 2)
    initiator = aead_decrypt(key, 0, message[40:88], h)
    if initiator not in peers:
        raise HandshakeError("the initiator's static key is not a peer's")
    h = hash_(h, message[40:88])
    chaining, key = kdf(chaining, dh(static, initiator), 2)
    timestamp = aead_decrypt(key, 0, message[88:116], h)
    h = hash_(h, message[88:116])
    return Consumed(index, initiator, timestamp, chaining, h, ephemeral)


def respond(
    consumed: Consumed,
    *,
    preshared_key: bytes = ZERO_KEY,
    sender_index: int | None = None,
    keygen: Callable[[], X25519PrivateKey] = X25519PrivateKey.generate,
) -> bytes:
    """The handshake response to a consumed initiation."""
    index = secrets.randbits(32) if sender_index is None else sender_index
    ephemeral = keygen()
    ephemeral_public = public_bytes(ephemeral)
    (chaining,) = kdf(consumed.chaining_key, ephemeral_public, 1)
    h = hash_(consumed.hash, ephemeral_public)
    (chaining,) = kdf(chaining, dh(ephemeral, consumed.ephemeral_public), 1)
    (chaining,) = kdf(chaining, dh(ephemeral, consumed.initiator_public), 1)
    _, tau, key = kdf(chaining, preshared_key, 3)
    h = hash_(h, tau)
    empty = aead_encrypt(key, 0, b"", h)
    body = struct.pack("<B3xII", RESPONSE, index, consumed.sender_index) + ephemeral_public + empty
    return body + _mac1(body, consumed.initiator_public) + bytes(16)


def is_cookie_reply(message: bytes, sender_index: int) -> bool:
    """Whether *message* is a cookie reply addressed to our initiation (the server is loaded)."""
    return (
        len(message) == COOKIE_REPLY_SIZE
        and message[0] == COOKIE_REPLY
        and struct.unpack_from("<I", message, 4)[0] == sender_index
    )
