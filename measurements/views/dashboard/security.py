"""The dashboard's safety at the HTTP layer: read-only, and headers that keep its pages inert.

* :class:`ReadOnly`: GET and HEAD only; every other method is answered ``405`` on every path,
  before routing, so no route can ever write.
* :class:`SecurityHeaders`: a ``Content-Security-Policy`` without any script source
  (``default-src 'none'``: no script, inline or not, no frame, no fetch; the stylesheet and
  ``data:`` images from the dashboard itself only), no MIME sniffing, no framing, no referrer,
  no caching.
* :data:`LOOPBACK_HOSTS`: the ``Host`` names the application answers to by default, so a page
  that rebinds its own DNS name to 127.0.0.1 cannot read the dashboard from a browser.
"""

from __future__ import annotations

from typing import Final

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
HEADERS: Final = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
)
LOOPBACK_HOSTS: Final = ("127.0.0.1", "localhost", "[::1]", "::1")


class ReadOnly:
    """405 for every method but GET and HEAD, on every path, before anything else runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in ("GET", "HEAD"):
            response = PlainTextResponse(
                "method not allowed: the dashboard is read-only\n",
                status_code=405,
                headers={"Allow": "GET, HEAD"},
            )
            await SecurityHeaders(response)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Adds :data:`HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS if k not in names]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, sending)
