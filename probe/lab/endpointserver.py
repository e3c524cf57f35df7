"""The world endpoints' plain servers: TCP accept, HTTP, HTTPS, TLS and UDP echo.

One process serves every service of the kinds :data:`probe.lab.world.SERVICE_KINDS` gives it,
on the endpoints' addresses (config built by :func:`probe.lab.world.server_configs`)::

    {"services": [{"kind": "http", "endpoint": "telegram-dc1", "address": "10.N.67.10",
                   "port": 80, "cert": null, "params": {}}, …]}

- ``tcp``: accept, read and discard until the client closes (or 30 s pass): a messaging
  endpoint whose protocol the test does not speak (WhatsApp's port 5222);
- ``http``: read one request (its head and a ``Content-Length`` body) and answer ``200 OK``
  with a short body naming the endpoint, whatever the method, path or port;
- ``https``: the same over TLS, with the endpoint's certificate (lab CA);
- ``tls``: complete the TLS handshake, then hold the connection like ``tcp``;
- ``udp``: send every datagram back.

Run as ``python -m probe.lab.endpointserver CONFIG.json`` (see :mod:`probe.lab.serving`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, cast

from probe.lab import serving

HOLD_S = 30.0
"""How long a held connection stays open without the client closing it."""
_MAX_BODY = 1 << 16

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(HOLD_S):
            while await reader.read(16384):
                pass
    await serving.close(writer)


def _http(endpoint: str) -> Handler:
    body = f"<html><head><title>{endpoint}</title></head><body>reachprobe lab endpoint</body></html>\n"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await serving.read_head(reader)
        if not head:
            await serving.close(writer)
            return
        method, _, headers = serving.parse_head(head)
        length = headers.get("content-length", "0")
        if length.isdigit() and 0 < int(length) <= _MAX_BODY:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
                async with asyncio.timeout(10):
                    await reader.readexactly(int(length))
        await serving.respond(writer, 200, "OK", body.encode(), send_body=method != "HEAD")

    return handle


class _Echo(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport in 3.11.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(data, addr)


def _tls(cert: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert)
    context.set_alpn_protocols(["http/1.1"])
    return context


async def start(config: dict[str, Any]) -> list[serving.Closable]:
    """Bind every service of *config*; return the listeners."""
    listeners: list[serving.Closable] = []
    loop = asyncio.get_running_loop()
    for service in config["services"]:
        kind, address, port = service["kind"], service["address"], int(service["port"])
        if kind == "udp":
            transport, _ = await loop.create_datagram_endpoint(_Echo, local_addr=(address, port))
            listeners.append(transport)
            continue
        handler = _http(service["endpoint"]) if kind in ("http", "https") else _hold
        context = _tls(service["cert"]) if kind in ("https", "tls") else None
        listeners.append(await asyncio.start_server(handler, address, port, ssl=context))
    return listeners


if __name__ == "__main__":
    serving.main(start)
