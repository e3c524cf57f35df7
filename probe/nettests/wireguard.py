"""The WireGuard test: does a handshake initiation to an endpoint draw the server's response?

One endpoint per measurement (``wireguard``, probe-cli's name). WireGuard runs over UDP and
answers nothing it cannot authenticate: the probe sends a real handshake initiation
(:mod:`probe.nettests.wgnoise`) built with the operator's client key pair for that server, and
the endpoint is reachable when a *handshake response* comes back that checks out (our index,
``mac1`` keyed with our public key, the empty payload's tag under the keys both sides
derived) — proof that a WireGuard server holding the server key read our initiation. A
*cookie reply* (the server is under load) proves the same and counts too. Each retry is a new
initiation (a replayed one is refused by the server's timestamp check), once a second until
the timeout. No data goes through a tunnel.

``test_keys``: probe-cli's ``success``, ``failure``, ``network_events`` (``operation``
``SEND_HANDSHAKE_INIT``, ``RECV_HANDSHAKE_RESP``, ``RECV_COOKIE_REPLY``, ``packet_dropped``,
with ``t`` and our ``x_num_bytes``) and ``urlget`` (always empty: no tunnel is used); ours:
``x_endpoint``, ``x_transport`` (``udp``), ``x_attempts``, ``x_response``
(``handshake_response``, ``cookie_reply`` or ``null``), ``x_t0``, ``x_t`` and the summary
(``x_blocking``, ``x_accessible``, ``x_mechanism``: :mod:`probe.nettests.vpnverdict`). ``input``:
``wireguard://<provider>.corp/?address=<host:port>`` (the host as listed: an endpoint given by
name is looked up first, its query in ``queries``).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from probe.model import OONIMeasurement
from probe.nettests import udpexchange, vpnverdict, wgnoise
from probe.nettests.base import Clock, Context, finish
from probe.nettests.urlgetter import summary_keys
from probe.steps.urls import endpoint

TEST_NAME: Final = "wireguard"
TEST_VERSION: Final = "0.1.1"
RETRANSMIT_S: Final = 1.0


def decode_key(text: str, what: str) -> bytes:
    """A WireGuard key as its files write it (base64 of 32 bytes).

    Raises:
        ValueError: not base64 of 32 bytes (the message names *what*).
    """
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"{what}: not a WireGuard key (base64 of 32 bytes)")
    return raw


@dataclass(frozen=True, slots=True)
class WireGuardEndpoint:
    """A WireGuard server an operator listed, with the client keys it knows."""

    host: str
    """An IP address, or a name (looked up when measured)."""
    port: int
    public_key: bytes
    """The server's public key."""
    private_key: bytes = field(repr=False)
    """The client's private key (a peer the server lists); never written to the output."""
    preshared_key: bytes = field(default=wgnoise.ZERO_KEY, repr=False)
    provider: str = "unknown"

    @property
    def input(self) -> str:
        """The measurement's ``input`` URI (ts-040's form, for WireGuard)."""
        return f"wireguard://{self.provider}.corp/?address={endpoint(self.host, self.port)}"


async def measure(target: WireGuardEndpoint, *, context: Context, timeout: float = 10.0) -> OONIMeasurement:
    """Send handshake initiations to *target* until one draws a valid response or *timeout*."""
    clock = Clock()
    static = X25519PrivateKey.from_private_bytes(target.private_key)
    sent: list[wgnoise.Initiation] = []
    answers: dict[int, str] = {}

    def build(_: int) -> bytes:
        initiation = wgnoise.initiate(
            static=static, responder_public=target.public_key, preshared_key=target.preshared_key
        )
        sent.append(initiation)
        return initiation.message

    def check(data: bytes) -> bool:
        for initiation in sent:
            if wgnoise.is_cookie_reply(data, initiation.sender_index):
                answers[len(answers)] = "cookie_reply"
                return True
            try:
                initiation.accept(data)
            except wgnoise.HandshakeError:
                continue
            answers[len(answers)] = "handshake_response"
            return True
        return False

    ip, queries, dns_failure = await vpnverdict.resolve(target.host, timeout=timeout, clock=clock.elapsed)
    if ip is None:
        t = clock.elapsed()
        exchange = udpexchange.Exchange(t, t, (), None, dns_failure)
    else:
        exchange = await udpexchange.exchange(
            ip, target.port, build=build, check=check, timeout=timeout, retransmit=RETRANSMIT_S,
            clock=clock.elapsed,
        )  # fmt: skip
    response = next(iter(answers.values()), None)
    test_keys: dict[str, Any] = {
        "success": exchange.failure is None,
        "failure": exchange.failure,
        "network_events": [_event(d, response) for d in exchange.datagrams],
        "queries": queries,
        "urlget": [],
        "x_endpoint": endpoint(ip or target.host, target.port),
        "x_transport": "udp",
        "x_attempts": exchange.attempts,
        "x_response": response,
        "x_t0": exchange.t0,
        "x_t": exchange.t,
    }
    summary = vpnverdict.summary(
        transport="udp", connect_failure=None, failure=exchange.failure, dns_failure=dns_failure
    )
    test_keys.update(summary_keys(summary))
    return finish(
        test_name=TEST_NAME, test_version=TEST_VERSION, input=target.input, test_keys=test_keys,
        summary=summary, clock=clock, context=context,
    )  # fmt: skip


def _event(datagram: udpexchange.Datagram, response: str | None) -> dict[str, Any]:
    if datagram.direction == "out":
        operation = "SEND_HANDSHAKE_INIT"
    elif datagram.dropped:
        operation = "packet_dropped"
    else:
        operation = "RECV_COOKIE_REPLY" if response == "cookie_reply" else "RECV_HANDSHAKE_RESP"
    return {"operation": operation, "t": datagram.t, "x_num_bytes": datagram.size}
