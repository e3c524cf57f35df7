"""A timed, bounded download: how fast a URL's body arrives, byte count over time.

The step the throughput test (:mod:`probe.nettests.throughput`) runs on the probe, and the
control vantage runs for it (:mod:`probe.helper.throughput`), so both sides time a transfer
the same way: a GET over HTTP/1.1 on one connection to one address (``Accept-Encoding:
identity``, ``Connection: close``), read until *max_bytes* body bytes, the end of the body,
or *max_seconds*, whichever comes first. Only the count is kept, never the bytes (a media
file has no place in a measurement): the response's ``body`` is empty and marked truncated.

The speed is the body's bytes over the time from the first body byte to the last: the
connect, the handshake and the server's think time before the headers are not transfer.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

from probe.model import HTTPRequest, HTTPResponse, HTTPTransaction
from probe.steps import failures, urls
from probe.steps.clock import Clock
from probe.steps.tcp import Connection

SAMPLE_EVERY_S: Final = 0.25
"""The byte count is sampled at most this often (and at the first and last byte)."""
READ_SIZE: Final = 64 * 1024
MAX_HEAD: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Transfer:
    """What the body's arrival looked like."""

    transaction: HTTPTransaction
    samples: tuple[tuple[float, int], ...] = ()
    """``(t, body bytes so far)``: *t* in the measurement's seconds."""
    bytes_received: int = 0
    """Every byte read from the connection (head and body): what the transfer cost."""

    @property
    def body_bytes(self) -> int:
        """Body bytes received (0 when none came)."""
        return self.transaction.x_body_bytes_received or 0

    @property
    def bytes_per_second(self) -> float | None:
        """Body bytes over the seconds from the first to the last body byte; ``None`` when
        fewer than two samples apart in time came (nothing to time)."""
        if len(self.samples) < 2:
            return None
        (t0, b0), (t1, b1) = self.samples[0], self.samples[-1]
        return round((b1 - b0) / (t1 - t0), 1) if t1 > t0 else None


@dataclass(slots=True)
class _Reading:
    clock: Clock
    samples: list[tuple[float, int]] = field(default_factory=list)
    body: int = 0
    total: int = 0
    headers_t: float | None = None
    last_t: float | None = None

    def add(self, n: int) -> None:
        self.body += n
        self.last_t = now = self.clock()
        if not self.samples or now - self.samples[-1][0] >= SAMPLE_EVERY_S:
            self.samples.append((now, self.body))

    def close(self) -> tuple[tuple[float, int], ...]:
        if self.last_t is not None and self.samples and self.samples[-1] != (self.last_t, self.body):
            self.samples.append((self.last_t, self.body))
        return tuple(self.samples)


async def download(
    connection: Connection,
    *,
    url: str,
    address: str,
    max_bytes: int,
    max_seconds: float,
    clock: Clock,
    transaction_id: int = 0,
) -> Transfer:
    """GET *url* on *connection* (already through TLS for https) and time its body.

    The connection is closed on return. Reaching *max_bytes* or *max_seconds* while the body
    flows is not a failure (the response says ``body_is_truncated``, the samples how it came);
    *max_seconds* before any body byte is ``generic_timeout_error``.

    Raises:
        TargetError: *url* is not an http(s) URL with a valid host.
    """
    scheme, host, port, parts = urls.split_url_parts(url)
    host_header = urls.authority(host, port, default_port=urls.DEFAULT_PORTS[scheme])
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = (
        ("Host", host_header), ("User-Agent", "Mozilla/5.0"), ("Accept", "*/*"),
        ("Accept-Encoding", "identity"), ("Connection", "close"),
    )  # fmt: skip
    reading = _Reading(clock)
    status, failure = 0, None
    response_headers: tuple[tuple[str, str], ...] = ()
    t0 = clock()
    try:
        async with asyncio.timeout(max_seconds):
            head = f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
            connection.writer.write(head.encode("latin-1"))
            await connection.writer.drain()
            raw = await connection.reader.readuntil(b"\r\n\r\n")
            reading.total += len(raw)
            status, response_headers = _parse_head(raw)
            reading.headers_t = clock()
            while reading.body < max_bytes:
                chunk = await connection.reader.read(min(READ_SIZE, max_bytes - reading.body))
                if not chunk:
                    break
                reading.total += len(chunk)
                reading.add(len(chunk))
    except TimeoutError:
        # Time was up: a bound like max_bytes once the body flows (its samples say how it came);
        # a failure when not one body byte came.
        failure = None if reading.body > 0 else failures.GENERIC_TIMEOUT
    except asyncio.LimitOverrunError:
        failure = failures.HTTP_PROTOCOL_ERROR
    except asyncio.IncompleteReadError as exc:
        failure = failures.EOF_ERROR if not exc.partial else failures.HTTP_PROTOCOL_ERROR
    except ValueError:  # a status line that is not HTTP's
        failure = failures.HTTP_PROTOCOL_ERROR
    except failures.NETWORK_EXCEPTIONS as exc:
        failure = failures.classify_read(exc)
    finally:
        await connection.close()
    samples = reading.close()
    response = None
    if reading.headers_t is not None:
        # The bytes are never kept: truncated whenever any came.
        response = HTTPResponse(status, response_headers, b"", reading.body > 0, 0, "")
    transaction = HTTPTransaction(
        address=address,
        request=HTTPRequest(url=url, method="GET", headers_list=headers),
        response=response,
        failure=failure,
        t0=t0,
        t=clock(),
        transaction_id=transaction_id,
        x_headers_t=reading.headers_t,
        x_body_last_byte_t=reading.last_t,
        x_body_bytes_received=reading.body if reading.headers_t is not None else None,
    )
    return Transfer(transaction, samples, reading.total)


def _parse_head(raw: bytes) -> tuple[int, tuple[tuple[str, str], ...]]:
    """The status code and headers of a response head.

    Raises:
        ValueError: the status line is not ``HTTP/1.x NNN …``.
    """
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ValueError(f"not an HTTP/1 status line: {lines[0][:40]!r}")
    headers = tuple(
        (name.strip(), value.strip())
        for name, sep, value in (line.partition(":") for line in lines[1:])
        if sep
    )
    return int(code), headers
