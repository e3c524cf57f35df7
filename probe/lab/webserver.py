"""The lab web server: every site of the world (or the ISP's block pages) over HTTP and HTTPS.

One process serves many addresses: it binds ``address:80`` and ``address:443`` for each listener
of its config (so an address with no listener, like the reserved test-helper one, refuses
connections). HTTPS picks the certificate by SNI among the lab CA's certificates; a ClientHello
without a known name gets the certificate of the address's own site.

Config (JSON)::

    {"mode": "sites" | "isp",
     "listeners": [{"address": "10.N.64.10", "domain": "x.com"}, …],
     "certs": {"x.com": "/tmp/…/x.com.pem", …},          # key + chain, PEM
     "http_port": 80, "https_port": 443}

``sites`` mode answers each site's home page (or its redirect) by Host, and
:data:`~probe.lab.sites.LARGE_PATH` with a 1 MiB body. ``isp`` mode is the ISP's block-page
server: Host ``blockpage.isp.lab`` gets the "Site Restricted" page (the target of block
redirects), any other Host the "Surf Safely" page (the target of DNS blockpage answers).

Run as ``python -m probe.lab.webserver CONFIG.json`` (see :mod:`probe.lab.serving`).
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from typing import Any

from probe.lab import serving
from probe.lab.sites import (
    BLOCKPAGE_DOMAIN,
    LARGE_PATH,
    SITE_BY_DOMAIN,
    SURF_SAFELY,
    large_body,
    restricted_page,
    site_page,
)

_LARGE = large_body()


def _contexts(certs: dict[str, str]) -> dict[str, ssl.SSLContext]:
    contexts: dict[str, ssl.SSLContext] = {}
    for domain, pem in certs.items():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pem)
        context.set_alpn_protocols(["http/1.1"])
        contexts[domain] = context
    return contexts


def _tls_context(pem: str, contexts: dict[str, ssl.SSLContext]) -> ssl.SSLContext:
    """The listening context of one address: its own site's certificate, switched by SNI."""

    def pick(sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        if name and name.lower() in contexts:
            sock.context = contexts[name.lower()]

    listening = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    listening.load_cert_chain(pem)
    listening.set_alpn_protocols(["http/1.1"])
    listening.sni_callback = pick
    return listening


def route(mode: str, host: str, target: str) -> tuple[int, str, bytes, tuple[tuple[str, str], ...]]:
    """The response for one request: status, reason, body, extra headers."""
    path = urllib.parse.urlsplit(target).path or "/"
    if mode == "isp":
        if host == BLOCKPAGE_DOMAIN:
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query)
            return 200, "OK", restricted_page(query.get("url", [""])[0]), ()
        return 200, "OK", SURF_SAFELY.encode(), ()
    site = SITE_BY_DOMAIN.get(host)
    if site is None:
        return 404, "Not Found", b"<html><head><title>Unknown host</title></head></html>\n", ()
    if site.redirect:
        return 301, "Moved Permanently", b"", (("Location", site.redirect),)
    if path == LARGE_PATH:
        return 200, "OK", _LARGE, (("X-Content-Kind", "media"),)
    if path != "/":
        return 404, "Not Found", b"<html><head><title>Not Found</title></head></html>\n", ()
    return 200, "OK", site_page(site), (("Server", "reachprobe-lab"),)


def _handler(mode: str) -> Any:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await serving.read_head(reader)
        if not head:
            await serving.close(writer)
            return
        method, target, headers = serving.parse_head(head)
        status, reason, body, extra = route(mode, serving.host_of(headers), target)
        content_type = "application/octet-stream" if body is _LARGE else "text/html; charset=utf-8"
        await serving.respond(
            writer, status, reason, body, content_type=content_type, extra=extra, send_body=method != "HEAD"
        )

    return handle


async def start(config: dict[str, Any]) -> list[serving.Closable]:
    """Bind every listener of *config* (HTTP and HTTPS); return the listening servers."""
    mode = str(config.get("mode", "sites"))
    contexts = _contexts(config["certs"])
    http_port = int(config.get("http_port", 80))
    https_port = int(config.get("https_port", 443))
    servers: list[serving.Closable] = []
    for listener in config["listeners"]:
        address, domain = listener["address"], listener["domain"]
        servers.append(await asyncio.start_server(_handler(mode), address, http_port))
        tls = _tls_context(config["certs"][domain], contexts)
        servers.append(await asyncio.start_server(_handler(mode), address, https_port, ssl=tls))
    return servers


if __name__ == "__main__":
    serving.main(start)
