"""A request/response exchange over UDP with retransmissions, every datagram recorded.

UDP has no connect to fail: a blocked endpoint is one whose answer never comes (a DROP) or
whose port is unreachable (an ICMP error, which Linux reports on a *connected* UDP socket as
``ECONNREFUSED``, OONI's ``connection_refused``). :func:`exchange` sends a datagram, waits
*retransmit* seconds for one that *check* accepts, sends again (a new datagram each time: a
WireGuard initiation must not be replayed) until *timeout*, and records every datagram each
way. Datagrams *check* refuses are kept as dropped: a censor that injects garbage, or a
server that answers with another protocol, is not a timeout.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from probe.steps import failures
from probe.steps.clock import Clock

MAX_DATAGRAM: Final = 65535


@dataclass(frozen=True, slots=True)
class Datagram:
    """One datagram sent or received."""

    direction: Literal["out", "in"]
    t: float
    size: int
    attempt: int
    """The send it belongs to (1-based); a received one: the sends made before it arrived."""
    dropped: bool = False
    """Received, but refused by the check."""
    data: bytes = b""
    """What a received datagram held (sent ones: ``b""``, their builder knows)."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """What one exchange saw."""

    t0: float
    t: float
    datagrams: tuple[Datagram, ...]
    response: bytes | None
    """The accepted answer; ``None`` on failure."""
    failure: str | None

    @property
    def attempts(self) -> int:
        """How many times the request was sent (a final *reply* not counted)."""
        return sum(d.direction == "out" and d.attempt > 0 for d in self.datagrams)


async def exchange(
    ip: str,
    port: int,
    *,
    build: Callable[[int], bytes],
    check: Callable[[bytes], bool],
    timeout: float,
    retransmit: float,
    clock: Clock,
    reply: Callable[[bytes], bytes | None] | None = None,
) -> Exchange:
    """Send ``build(n)`` (n = 1, 2, …) every *retransmit* seconds until *check* accepts an answer.

    *reply*, given the accepted answer, may return one last datagram to send from the same
    socket (an acknowledgement), recorded as a send of attempt 0.

    Returns:
        The exchange: ``response`` set when accepted; else ``failure``: ``generic_timeout_error``
        (nothing valid by *timeout*), ``unexpected_response`` (only refused datagrams came)
        or the socket error (``connection_refused`` for an ICMP port unreachable).
    """
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    datagrams: list[Datagram] = []
    t0 = clock()
    deadline = loop.time() + timeout
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        attempt = 0
        try:
            sock.connect((ip, port))
            while loop.time() < deadline:
                attempt += 1
                payload = build(attempt)
                await loop.sock_sendall(sock, payload)
                datagrams.append(Datagram("out", clock(), len(payload), attempt))
                resend_at = min(deadline, loop.time() + retransmit)
                while (left := resend_at - loop.time()) > 0:
                    try:
                        async with asyncio.timeout(left):
                            data = await loop.sock_recv(sock, MAX_DATAGRAM)
                    except TimeoutError:
                        break
                    accepted = check(data)
                    datagrams.append(Datagram("in", clock(), len(data), attempt, not accepted, data))
                    if accepted:
                        last = reply(data) if reply is not None else None
                        if last is not None:
                            await loop.sock_sendall(sock, last)
                            datagrams.append(Datagram("out", clock(), len(last), 0))
                        return Exchange(t0, clock(), tuple(datagrams), data, None)
        except failures.NETWORK_EXCEPTIONS as exc:
            return Exchange(t0, clock(), tuple(datagrams), None, failures.classify(exc, "read"))
    dropped = any(d.dropped for d in datagrams)
    return Exchange(
        t0,
        clock(),
        tuple(datagrams),
        None,
        failures.UNEXPECTED_RESPONSE if dropped else failures.GENERIC_TIMEOUT,
    )
