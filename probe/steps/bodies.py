"""Responses from servers that may be hostile: sent without redirect handling, read within a bound.

Every HTTP response the probe reads — a measured site (:mod:`probe.steps.http`), the control and
``whoami`` (:mod:`probe.control`), a DNS-over-HTTPS answer (:mod:`probe.steps.dns`) — is opened by
:func:`open_response` and read by :func:`read_body`, so that a site, a helper or anything in
the middle of a plain-HTTP connection cannot make the probe hold more than each caller's cap:

- :func:`read_body` keeps at most *limit* decoded bytes. gzip and deflate are inflated here
  with an output bound rather than by httpx, whose decoders inflate a whole network read at
  once (a 10 KB gzip body of zeros becomes 10 MB in one call). Raw bytes are bounded too, so a
  stream that inflates to nothing cannot be read forever. Other codings (``br``, ``zstd``,
  chains such as ``gzip, gzip``) are kept as received.
- :func:`open_response` sends the request straight to httpx's transport. httpx's client would
  parse a redirect's ``Location`` even with ``follow_redirects=False`` (to offer
  ``next_request``), and raises on ``mailto:x`` or ``http://[::1``; the probe judges every
  Location itself (:func:`probe.steps.http.validate_redirect`), so nothing may parse it before.
  Given the connection the TCP and TLS steps measured, it sends the request over that one
  (:class:`_Stream`): no second connect and no second TLS handshake — as HTTP/1.1, or as
  HTTP/2 when the server chose ``h2`` in that handshake (httpcore's HTTP/2 connection over
  the same stream), as OONI's Web Connectivity fetches over the connection it measured in
  whichever protocol the handshake agreed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import ssl
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import httpcore
import httpx

from probe.steps.tcp import Connection

SPEAKS_H2: Final = importlib.util.find_spec("h2") is not None
"""Whether httpcore can speak HTTP/2 here (the ``h2`` package, which hypercorn, a dependency,
brings). Without it a connection whose handshake chose ``h2`` cannot carry the request, and
the HTTP step makes a new one offering ``http/1.1`` only."""
ACCEPT_ENCODING: Final = "gzip, deflate"
"""The codings :func:`read_body` inflates: what a request may say it accepts."""
_RAW_SLACK: Final = 65536


@contextlib.asynccontextmanager
async def open_response(
    request: httpx.Request,
    *,
    ssl_context: ssl.SSLContext,
    timeout: float,
    connection: Connection | None = None,
) -> AsyncIterator[httpx.Response]:
    """Send *request* and yield the response, body not yet read.

    Without *connection*, the request goes on a connection of its own (connect, and TLS for
    https with *ssl_context*, whose ALPN httpx makes ``http/1.1``). With *connection* — open
    to the request's address, TLS already established for https — the request is sent over
    it, as HTTP/2 when its handshake chose ``h2`` (:data:`SPEAKS_H2` must be true), else as
    HTTP/1.1: nothing is connected or handshaken again, and the connection is closed on exit.

    Only the headers of *request* are sent (no defaults are added, no proxy or ``.netrc`` is
    consulted) and redirects are neither followed nor parsed. *timeout* bounds each network
    operation; the caller needs an overall deadline of its own (``asyncio.timeout``).

    Raises:
        httpx.TransportError: connect, TLS, send or the response head failed (and what
            :data:`probe.steps.failures.NETWORK_EXCEPTIONS` names below it); an HTTP/2
            server that refused the request on the connection (``GOAWAY``) as
            :class:`httpx.RemoteProtocolError`.
    """
    request.extensions = {**request.extensions, "timeout": httpx.Timeout(timeout).as_dict()}
    transport = httpx.AsyncHTTPTransport(verify=ssl_context, trust_env=False)
    if connection is not None:
        # httpx's transport takes no connection (nor network backend); its pool is replaced by
        # an HTTP/1.1 or HTTP/2 connection over the one handed in, and httpx keeps its
        # request/response wrapping and its mapping of httpcore's exceptions.
        url = request.url
        origin = httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=b"/").origin
        speak = httpcore.AsyncHTTP2Connection if connection.alpn() == "h2" else httpcore.AsyncHTTP11Connection
        transport._pool = speak(origin=origin, stream=_Stream(connection))  # type: ignore[assignment]  # same interface: handle_async_request, async with
    async with transport:
        try:
            response = await transport.handle_async_request(request)
        except httpcore.ConnectionNotAvailable as exc:
            # A pool would try another connection; this one is all there is. httpx does not map it.
            raise httpx.RemoteProtocolError("the server refused the request on this connection") from exc
        response.request = request
        try:
            yield response
        finally:
            await response.aclose()


async def read_body(
    response: httpx.Response, limit: int, *, on_read: Callable[[int], None] | None = None
) -> tuple[bytes, bool]:
    """Read at most *limit* decoded bytes of *response*'s body.

    *on_read* is told the size of every network read as it arrives (before decoding), so a
    failure midway still knows how much came, and when.

    Returns:
        The body (at most *limit* bytes) and whether it went on beyond *limit* — decoded
        bytes, or raw bytes past ``2 * limit + 64 KiB`` — in which case the rest is not read.

    Raises:
        httpx.DecodingError: the body is not valid for its gzip or deflate coding.
        httpx.TransportError: the connection failed while the body arrived.
    """
    inflater = _inflater(response.headers.get_list("content-encoding", split_commas=True))
    body = bytearray()
    raw_limit = 2 * limit + _RAW_SLACK
    async for chunk in response.aiter_raw():
        if on_read is not None:
            on_read(len(chunk))
        # Ask for one byte more than the limit, to tell "exactly the limit" from "longer".
        body += inflater.inflate(chunk, limit + 1 - len(body)) if inflater else chunk
        if len(body) > limit or response.num_bytes_downloaded > raw_limit:
            del body[limit:]
            return bytes(body), True
    return bytes(body), False


def _inflater(content_encoding: list[str]) -> _Inflater | None:
    codings = [c.lower() for c in content_encoding if c and c.lower() != "identity"]
    if codings in (["gzip"], ["x-gzip"]):
        return _Inflater(zlib.MAX_WBITS | 16)
    if codings == ["deflate"]:
        # "deflate" should be zlib-wrapped, but servers send raw deflate too; httpx tries both.
        return _Inflater(zlib.MAX_WBITS, raw_fallback=True)
    return None


class _Inflater:
    """Inflates a gzip or deflate body, never producing more bytes than asked for."""

    def __init__(self, wbits: int, *, raw_fallback: bool = False) -> None:
        self._zlib = zlib.decompressobj(wbits)
        self._raw_fallback = raw_fallback

    def inflate(self, data: bytes, max_length: int) -> bytes:
        """Inflate *data* into at most *max_length* (>0) bytes.

        When the output reaches *max_length*, input is left over and the caller must stop.

        Raises:
            httpx.DecodingError: the data is not valid for the coding.
        """
        try:
            out = self._zlib.decompress(data, max_length)
        except zlib.error as exc:
            if not self._raw_fallback:
                raise httpx.DecodingError(f"invalid compressed body: {exc}") from exc
            self._raw_fallback = False
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            return self.inflate(data, max_length)
        if data:
            self._raw_fallback = False
        return out


class _Stream(httpcore.AsyncNetworkStream):
    """An asyncio connection as httpcore reads and writes it.

    Errors are raised as httpcore's own backend raises them (``ReadError``/``WriteError`` from
    the ``OSError`` or ``ssl.SSLError``, ``…Timeout`` from the ``TimeoutError``, an EOF read
    as ``b""``), so a failure is classified exactly as on a connection httpcore made.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._connection.reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.ReadError(exc) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._connection.writer.write(buffer)
                await self._connection.writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.WriteError(exc) from exc

    async def aclose(self) -> None:
        await self._connection.close()

    def get_extra_info(self, info: str) -> Any:
        writer = self._connection.writer
        if info == "is_readable":
            return self._connection.reader.at_eof()
        name = _EXTRA_INFO.get(info)
        return writer.get_extra_info(name) if name is not None else None


_EXTRA_INFO: Final = {
    "ssl_object": "ssl_object",
    "client_addr": "sockname",
    "server_addr": "peername",
    "socket": "socket",
}
"""httpcore's names of a stream's extra information, and asyncio's."""
