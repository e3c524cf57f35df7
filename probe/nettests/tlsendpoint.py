"""One TCP connect and one TLS handshake to one endpoint, as OONI's per-target records.

The Tor test (an OR port) and the SNI blocking test (a test helper, with two SNIs) both
measure an endpoint the same way: connect, hand the connection to the TLS step, record both
steps, close. :func:`attempt` does that once, with the steps of :mod:`probe.steps`, and
:func:`records` writes OONI's ``tcp_connect``, ``tls_handshakes`` and ``network_events``
(df-005, df-006, df-008) of one attempt.
"""

from __future__ import annotations

import dataclasses
import secrets
import ssl
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from probe import serialize
from probe.model import HTTPTransaction, TCPConnect, TLSHandshake, WebConnectivityTestKeys
from probe.steps import tcp, tls
from probe.steps.clock import Clock
from probe.steps.urls import endpoint


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one connect-and-handshake recorded; ``handshake`` is ``None`` when the connect failed."""

    connect: TCPConnect
    handshake: TLSHandshake | None

    @property
    def failure(self) -> str | None:
        """The first failure (the connect's, else the handshake's); ``None``: both succeeded."""
        if self.connect.status.failure is not None:
            return self.connect.status.failure
        return self.handshake.failure if self.handshake is not None else None

    @property
    def failed_operation(self) -> str | None:
        """OONI's name of the step that failed (``connect``, ``tls_handshake``), or ``None``."""
        if self.connect.status.failure is not None:
            return "connect"
        if self.handshake is not None and self.handshake.failure is not None:
            return "tls_handshake"
        return None


def unverified_context() -> ssl.SSLContext:
    """A client context that checks no certificate and offers no ALPN, as a Tor client's.

    Tor relays present self-signed certificates with made-up names: the handshake completing
    is what says the OR port is usable (ts-023), not who signed it.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def random_hostname() -> str:
    """``www.<random>.com``: the made-up SNI a Tor client sends (tor's ``crypto_random_hostname``)."""
    alphabet = string.ascii_lowercase + string.digits
    length = 4 + secrets.randbelow(22)
    return f"www.{''.join(secrets.choice(alphabet) for _ in range(length))}.com"


async def attempt(
    ip: str,
    port: int,
    *,
    server_name: str,
    ssl_context: ssl.SSLContext,
    timeout: float,
    clock: Clock,
    transaction_id: int,
    no_tls_verify: bool = False,
) -> Attempt:
    """Connect to *ip*:*port*, then run a TLS handshake sending *server_name*; close.

    Returns:
        Both records (no handshake when the connect failed); failures are recorded, not raised.
    """
    connect, connection = await tcp.connect(
        ip, port, timeout=timeout, clock=clock, transaction_id=transaction_id
    )
    if connection is None:
        return Attempt(connect, None)
    try:
        handshake = await tls.handshake(
            connection,
            address=endpoint(ip, port),
            server_name=server_name,
            ssl_context=ssl_context,
            timeout=timeout,
            clock=clock,
            transaction_id=transaction_id,
        )
    finally:
        await connection.close()
    if no_tls_verify:
        handshake = dataclasses.replace(handshake, no_tls_verify=True)
    return Attempt(connect, handshake)


def records(
    connects: Sequence[TCPConnect] = (),
    handshakes: Sequence[TLSHandshake] = (),
    requests: Sequence[HTTPTransaction] = (),
) -> dict[str, Any]:
    """OONI's ``tcp_connect``, ``tls_handshakes``, ``requests`` and ``network_events`` of the steps.

    A kind of step that did not run is ``null`` (OONI's nullable lists), and so are the
    events when no step ran at all.
    """
    # serialize.network_events derives the events from the steps' own times; it reads only
    # the step lists of the keys it is given.
    steps = WebConnectivityTestKeys(
        tcp_connect=tuple(connects), tls_handshakes=tuple(handshakes), requests=tuple(requests)
    )
    events = serialize.network_events(steps)
    return {
        "network_events": events or None,
        "requests": serialize.as_dict(list(requests)) if requests else None,
        "tcp_connect": serialize.as_dict(list(connects)) if connects else None,
        "tls_handshakes": serialize.as_dict(list(handshakes)) if handshakes else None,
    }
