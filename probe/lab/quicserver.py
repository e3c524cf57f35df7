"""The lab's HTTP/3 server (aioquic): the world's sites over QUIC, on UDP port 443.

It answers what :mod:`probe.lab.webserver` answers over TCP (:func:`probe.lab.webserver.route`:
each site's page by ``:authority``, :data:`~probe.lab.sites.LARGE_PATH` with 1 MiB), so a
scenario can drop UDP 443 and leave TCP/TLS alone (QUIC blocked separately, as censors do).
A *behaviour* makes it misbehave, for the tests of :mod:`probe.nettests.http3`:

- ``serve``: answer (the default);
- ``refuse``: close every connection with CONNECTION_REFUSED as soon as the ClientHello is read;
- ``close``: finish the handshake, then close (NO_ERROR) when a request arrives.

In the lab it is the ``quic`` service kind of the world endpoints (:data:`probe.lab.world.SERVICE_KINDS`):
each endpoint listing ``quic = [443]`` is served here, on its address, with its certificate,
answering 200 with a page titled after the endpoint to any request (as the ``https`` kind does
over TCP); ``params.quic_behaviour`` may make it misbehave. Config (JSON), built by
:func:`probe.lab.world.server_configs`::

    {"services": [{"kind": "quic", "endpoint": "h3", "address": "10.N.67.10", "port": 443,
                   "cert": "/tmp/…/h3.pem", "params": {}}, …]}

Run as ``python -m probe.lab.quicserver CONFIG.json`` (see :mod:`probe.lab.serving`);
:class:`QuicServer` runs one in a thread on loopback for the unit tests.
"""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.asyncio.server import QuicServer as _AioquicServer
from aioquic.asyncio.server import serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import HeadersReceived
from aioquic.quic import events
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicErrorCode, QuicFrameType
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from probe.lab import serving

Behaviour = Literal["serve", "refuse", "close"]
_KEY: Final = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----\s*", re.S)


def configuration(pem: bytes) -> QuicConfiguration:
    """A server configuration from one PEM holding a private key and the certificate chain."""
    key = _KEY.search(pem)
    if key is None:
        raise ValueError("no private key in the PEM")
    config = QuicConfiguration(is_client=False, alpn_protocols=list(H3_ALPN))
    chain = x509.load_pem_x509_certificates(_KEY.sub(b"", pem))
    config.certificate, config.certificate_chain = chain[0], chain[1:]
    config.private_key = load_pem_private_key(key.group(0), password=None)
    return config


Router = Any
"""``(host, path) -> (status, body, extra headers)``."""


def _router(route: Router | None) -> Router:
    if route is not None:
        return route
    from probe.lab.webserver import route as site_route

    def sites(host: str, path: str) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
        status, _reason, body, extra = site_route("sites", host, path)
        return status, body, extra

    return sites


class _H3Server(QuicConnectionProtocol):
    behaviour: Behaviour = "serve"
    route: Router = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._h3: H3Connection | None = None

    def quic_event_received(self, event: events.QuicEvent) -> None:
        if isinstance(event, events.ProtocolNegotiated):
            if self.behaviour == "refuse":
                # A transport close (a frame type given), which the handshake's packets may carry.
                self._quic.close(QuicErrorCode.CONNECTION_REFUSED, QuicFrameType.CRYPTO, "refused")
                self.transmit()
                return
            self._h3 = H3Connection(self._quic)
        if self._h3 is None:
            return
        for h3_event in self._h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                if self.behaviour == "close":
                    self.close(error_code=QuicErrorCode.NO_ERROR, reason_phrase="bye")
                    return
                self._answer(h3_event)

    def _answer(self, event: HeadersReceived) -> None:
        assert self._h3 is not None
        fields = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
        host = (
            fields.get(":authority", "").rsplit(":", 1)[0] if "]" not in fields.get(":authority", "") else ""
        )
        status, body, extra = self.route(host.lower(), fields.get(":path", "/"))
        headers = [(b":status", str(status).encode()), (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in extra]
        self._h3.send_headers(event.stream_id, headers, end_stream=not body)
        if body:
            # aioquic holds the body and sends it as the peer's flow control allows.
            self._h3.send_data(event.stream_id, body, end_stream=True)
        self.transmit()


def _protocol_class(behaviour: Behaviour, route: Router | None) -> type[_H3Server]:
    return type("H3Server", (_H3Server,), {"behaviour": behaviour, "route": staticmethod(_router(route))})


def endpoint_route(endpoint: str) -> Router:
    """The ``quic`` kind's answer: 200 with a page titled *endpoint*, whatever the request."""
    page = f"<html><head><title>{endpoint}</title></head><body>reachprobe lab, HTTP/3</body></html>\n"

    def answer(host: str, path: str) -> tuple[int, bytes, tuple[tuple[str, str], ...]]:
        return 200, page.encode(), (("content-type", "text/html; charset=utf-8"),)

    return answer


async def start(config: dict[str, Any]) -> list[serving.Closable]:
    """Bind every ``quic`` service of *config* (UDP); return the servers."""
    servers: list[serving.Closable] = []
    for service in config["services"]:
        pem = Path(service["cert"]).read_bytes()  # noqa: ASYNC240  # once, before serving
        behaviour: Behaviour = service.get("params", {}).get("quic_behaviour", "serve")
        protocol = _protocol_class(behaviour, endpoint_route(service["endpoint"]))
        servers.append(
            await serve(
                service["address"],
                int(service["port"]),
                configuration=configuration(pem),
                create_protocol=protocol,
            )
        )
    return servers


class QuicServer:
    """An HTTP/3 server on ``127.0.0.1``, UDP *port* (0: any free one), in a thread (for tests).

    Usage::

        with QuicServer(pem, behaviour="serve") as server:
            ...  # QUIC to 127.0.0.1:server.port
    """

    def __init__(
        self, pem: bytes, *, behaviour: Behaviour = "serve", route: Router | None = None, port: int = 0
    ) -> None:
        self._config = configuration(pem)
        self._protocol = _protocol_class(behaviour, route)
        self._loop = asyncio.new_event_loop()
        self._server: _AioquicServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="quic-server", daemon=True)
        self.port = port

    def __enter__(self) -> QuicServer:
        self._thread.start()
        bound = asyncio.run_coroutine_threadsafe(self._bind(), self._loop)
        self._server = bound.result(timeout=10)
        return self

    async def _bind(self) -> _AioquicServer:
        server = await serve(
            "127.0.0.1", self.port, configuration=self._config, create_protocol=self._protocol
        )
        assert server._transport is not None  # bound by serve()
        self.port = server._transport.get_extra_info("sockname")[1]
        return server

    @staticmethod
    async def _close(server: _AioquicServer) -> None:
        server.close()
        await asyncio.sleep(0)  # the transports' close() runs on the next turn of the loop
        await asyncio.sleep(0)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._close(self._server), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


if __name__ == "__main__":
    serving.main(start)
