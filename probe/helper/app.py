"""The helper's ASGI application (starlette): routes, bounds and errors.

Routes:

- ``POST /`` — the control request (OONI's ``oohelperd`` serves it on ``/``), answered with
  the control response;
- ``GET /whoami`` — ``{"probe_asn": "AS…", "probe_cc": "…", "probe_ip": "…"}``: the network
  of the address the request came from, and that address, and nothing else;
- ``POST /x/throughput`` — the throughput test's control side: the helper's own timed download
  of a URL (:mod:`probe.helper.throughput`, bounded there);
- ``GET /`` — a one-line description of the service.

Every error is JSON ``{"error": "…"}`` with a status that says whose fault it is: 400 for a
malformed request or a forbidden target (and for a client gone before its body's end: nobody
reads it, nothing is logged), 408 for a body that did not arrive in time, 413 for
a body over the limit, 503 when the helper is already measuring as many requests as it allows
(the caller may retry), 504 when a measurement overran its deadline (a backstop: the
measurement itself ends within its budget and is answered, see :func:`budget_of`), and 500 ``internal
error`` for an exception the helper did not expect — its bug, logged as one line (exception,
message with IP addresses scrubbed, where it was raised; no traceback, no query string). The
client's address is read only by ``whoami``, and is never logged or stored.
"""

from __future__ import annotations

import asyncio
import logging
import math
import traceback
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Final

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from probe.errors import ProbeError
from probe.helper import throughput  # the throughput test's control side (reachprobe's x/ route)
from probe.helper.geo import Geo
from probe.helper.measure import BUDGET_HEADER, HelperConfig, measure_control
from probe.helper.policy import AddressPolicy
from probe.helper.wire import WireError, parse_endpoint, parse_request, response_json
from probe.steps import failures, urls

MAX_REQUEST_BYTES: Final = 64 * 1024
"""A control request is a URL, a few headers and at most 64 endpoints: far below this."""
CLIENT_DISCONNECTED: Final = "the client disconnected"
"""The error of a request whose client went away before its body's end (nobody reads it)."""
DEADLINE_GRACE_S: Final = 1.0
"""How long past its budget a measurement may run (closing sockets) before the answer is 504."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Limits:
    """The helper's bounds on what one stranger can make it do."""

    max_request_bytes: int = MAX_REQUEST_BYTES
    max_concurrency: int = 32
    """Control requests measured at once; more get 503 at once instead of queueing."""
    deadline_s: float = 25.0
    """The most time one control request may take (OONI's probe gives up after 30 s): the cap
    on its budget (:func:`budget_of`), whatever the caller asks for."""
    body_timeout_s: float = 10.0
    """Time for a request's whole body to arrive once its headers have (408 beyond it)."""
    idle_timeout_s: float = 10.0
    """Time a connection may hold no request in progress: from accept (and TLS handshake) until
    its request's headers are complete, and between requests on a kept-alive connection."""


@dataclass(frozen=True, slots=True)
class HelperSettings:
    """Everything the application needs."""

    config: HelperConfig = field(default_factory=HelperConfig)
    policy: AddressPolicy = field(default_factory=AddressPolicy)
    limits: Limits = field(default_factory=Limits)
    geo: Geo = field(default_factory=Geo)


def create_app(settings: HelperSettings) -> Starlette:
    """The ASGI application for *settings*."""
    gate = asyncio.Semaphore(settings.limits.max_concurrency)

    async def control(request: Request) -> Response:
        body = await read_body(request, settings.limits.max_request_bytes, settings.limits.body_timeout_s)
        try:
            parsed = parse_request(body)
        except WireError as exc:
            return error_response(400, str(exc))
        refusal = _refusal(parsed.http_request, parsed.tcp_connect, settings.policy)
        if refusal is not None:
            return error_response(400, refusal)
        if gate.locked():
            return error_response(503, "busy: too many control requests in flight", {"Retry-After": "1"})
        budget = budget_of(request.headers.get(BUDGET_HEADER), settings)
        async with gate:
            try:
                async with asyncio.timeout(budget + DEADLINE_GRACE_S):
                    result = await measure_control(
                        parsed, config=settings.config, policy=settings.policy, budget_s=budget
                    )
            except TimeoutError:
                return error_response(504, f"the measurement took longer than {budget:g} s")
        return Response(response_json(result), media_type="application/json")

    async def whoami(request: Request) -> Response:
        client = request.client.host if request.client is not None else None
        answer = settings.geo.whoami(client)
        if client is not None:
            # Told back to the caller alone (as OONI's probe services do), so that the probe can
            # scrub the address the world sees from what it records; still never logged here.
            answer["probe_ip"] = client
        return JSONResponse(answer)

    async def index(request: Request) -> Response:
        return JSONResponse(
            {"service": "reachprobe test helper", "control": "POST /", "whoami": "GET /whoami"}
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    return Starlette(
        routes=[
            Route("/", control, methods=["POST"]),
            Route("/", index, methods=["GET"]),
            Route("/whoami", whoami, methods=["GET"]),
            Route("/x/throughput", throughput.route(settings.policy, settings.config), methods=["POST"]),
        ],
        exception_handlers={HTTPException: http_error},
        middleware=[Middleware(InternalErrors)],
    )


class InternalErrors:
    """ASGI middleware: an exception escaping a route becomes a JSON 500 and one log line.

    It sits inside starlette's ``ServerErrorMiddleware``, which would answer in plain text and
    re-raise for the server to log with a traceback. A client that went away before its body's
    end (starlette's ``ClientDisconnect``, from any route reading it) is no error of ours:
    nothing is logged, and the answer is a 400 nobody reads.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except ClientDisconnect:
            if not started:
                await error_response(400, CLIENT_DISCONNECTED)(scope, receive, send)
        except Exception as exc:
            # scope["path"] only: the query string may carry what the caller keeps private.
            method, path = scope["method"], _oneline(scope["path"])
            logger.error("internal error on %s %s: %s", method, path, _describe(exc))
            if not started:  # otherwise the server closes the half-answered connection
                await error_response(500, "internal error")(scope, receive, send)


def budget_of(asked: str | None, settings: HelperSettings) -> float:
    """The seconds one control request may take: what the probe asked for in its
    :data:`~probe.helper.measure.BUDGET_HEADER` (*asked*), else the budget of the configured
    step timeouts, never more than :attr:`Limits.deadline_s`.

    A value that is not a finite, non-negative number is ignored (a stranger's header).
    """
    wanted = settings.config.budget_s
    if asked is not None:
        try:
            value = float(asked)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            wanted = value
    return min(wanted, settings.limits.deadline_s)


def _describe(exc: Exception) -> str:
    """``Type: message (file.py:line)``, the message scrubbed of IP addresses, on one line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({PurePath(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {_oneline(failures.scrub(str(exc)))}{where}"


def _oneline(text: str, limit: int = 300) -> str:
    escaped = text.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[:limit] + "…"


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The request body, refused with 413 beyond *limit* bytes (declared or actual), 408 when
    it has not all arrived within *timeout_s*.

    Raises:
        HTTPException: 413 or 408, as above.
        starlette.requests.ClientDisconnect: the client went away before the body's end
            (:class:`InternalErrors` answers it).
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body larger than {limit} bytes")
    body = bytearray()
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    raise HTTPException(413, f"request body larger than {limit} bytes")
    except TimeoutError:
        raise HTTPException(408, f"the request body did not arrive within {timeout_s:g} s") from None
    return bytes(body)


def _refusal(url: str, endpoints: tuple[str, ...], policy: AddressPolicy) -> str | None:
    """Why the request targets an address the helper may not dial, or ``None``."""
    try:
        host = urls.split_url(url)[1]
    except ProbeError as exc:  # parse_request checked it already; defensive
        return str(exc)
    if (reason := policy.refusal(host)) is not None and reason != "not an IP address":
        return f"forbidden target: http_request host {host} is {reason}"
    for item in endpoints:
        ip = parse_endpoint(item)[0]
        if (reason := policy.refusal(ip)) is not None:
            return f"forbidden target: tcp_connect endpoint {item} is {reason}"
    return None


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The JSON error ``{"error": message}`` with *status* (and *headers*), as every route answers."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)
