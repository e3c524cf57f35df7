"""The TCP connect step: one connect to one ``ip:port``, failures recorded, never raised."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from probe.model import TCPConnect, TCPStatus
from probe.steps import failures
from probe.steps.clock import Clock


@dataclass(frozen=True, slots=True)
class Connection:
    """An established TCP connection, handed on to the TLS and HTTP steps; the caller closes it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def is_open(self) -> bool:
        """Whether a request can still go over it: neither end closed it, no error, no EOF."""
        return not (
            self.writer.transport.is_closing() or self.reader.at_eof() or self.reader.exception() is not None
        )

    def alpn(self) -> str:
        """The protocol the server chose in this connection's TLS handshake ("" for none, or no TLS)."""
        tls = self.writer.get_extra_info("ssl_object")
        return (tls.selected_alpn_protocol() or "") if tls is not None else ""

    async def close(self) -> None:
        """Close the connection at once, without a TLS close_notify exchange.

        A graceful TLS shutdown waits for the peer's answer (up to 30 s), and a censor or a
        silent server never gives one; the measurement has what it needs, so abort.
        """
        self.writer.transport.abort()
        # abort() only schedules the socket's close (call_soon): one turn of the loop runs it,
        # even after a failed start_tls, when the stream protocol no longer hears about it.
        await asyncio.sleep(0)


async def connect(
    ip: str,
    port: int,
    *,
    timeout: float,
    clock: Clock,
    transaction_id: int = 0,
    tags: tuple[str, ...] = (),
) -> tuple[TCPConnect, Connection | None]:
    """Connect to *ip*:*port* within *timeout* seconds.

    Returns:
        The recorded connect, and the open connection when it succeeded (else ``None``).
    """
    t0 = clock()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(ip, port)
    except failures.NETWORK_EXCEPTIONS as exc:
        status = TCPStatus(success=False, failure=failures.classify_connect(exc))
        return TCPConnect(ip, port, status, t0, clock(), transaction_id, tags), None
    record = TCPConnect(ip, port, TCPStatus(success=True, failure=None), t0, clock(), transaction_id, tags)
    return record, Connection(reader, writer)
