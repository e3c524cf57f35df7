"""``POST /x/throughput``: the control's side of the throughput test (reachprobe's extension).

The probe asks ``{"url": …, "max_bytes": N, "max_seconds": S}``; the helper downloads the URL
as the probe does (:func:`probe.nettests.download.download`: one GET, bounded, timed) and
answers ``{"bytes_per_second": …, "body_bytes": …, "failure": …}`` — the host's speed from
outside the censored network, which the probe's speed is compared with
(:mod:`probe.nettests.throughput`). OONI's helper has no such route; the ``x/`` path marks it
as an extension.

The helper downloads for strangers, so this is bounded like the control route and more: every
address it would dial passes the :class:`~probe.helper.policy.AddressPolicy` (no loopback,
private or bogon targets unless allowed), at most :data:`MAX_BYTES` and :data:`MAX_SECONDS`
whatever is asked, :data:`MAX_AT_ONCE` downloads at a time (503 beyond). Nothing is logged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from probe.errors import ProbeError
from probe.helper.measure import HelperConfig
from probe.helper.policy import AddressPolicy
from probe.nettests.download import download
from probe.steps import dns, tcp, tls, urls
from probe.steps.clock import Clock, relative_clock

MAX_BYTES: Final = 8 * 1024 * 1024
MAX_SECONDS: Final = 20.0
MAX_AT_ONCE: Final = 4
STEP_TIMEOUT: Final = 10.0


def route(
    policy: AddressPolicy, config: HelperConfig | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """The route's handler for a helper with *policy* and *config* (its resolvers and CA file)."""
    config = config or HelperConfig()
    gate = asyncio.Semaphore(MAX_AT_ONCE)

    async def throughput(request: Request) -> Response:
        body = await request.body()
        if len(body) > 4096:
            return JSONResponse({"error": "request body larger than 4096 bytes"}, status_code=413)
        try:
            url, max_bytes, max_seconds = _parse(body)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if gate.locked():
            return JSONResponse({"error": "busy"}, status_code=503, headers={"Retry-After": "1"})
        async with gate:
            answer = await measure(
                url, max_bytes=max_bytes, max_seconds=max_seconds, policy=policy, config=config
            )
        return JSONResponse(answer)

    return throughput


def _parse(body: bytes) -> tuple[str, int, float]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise ValueError("url: expected a string")
    url = data["url"]
    try:
        urls.split_url(url)
    except ProbeError as exc:
        raise ValueError(f"url: {exc}") from None
    max_bytes, max_seconds = data.get("max_bytes", MAX_BYTES), data.get("max_seconds", MAX_SECONDS)
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1:
        raise ValueError("max_bytes: expected a positive integer")
    if not isinstance(max_seconds, int | float) or isinstance(max_seconds, bool) or max_seconds <= 0:
        raise ValueError("max_seconds: expected a positive number")
    return url, min(max_bytes, MAX_BYTES), min(float(max_seconds), MAX_SECONDS)


async def measure(
    url: str, *, max_bytes: int, max_seconds: float, policy: AddressPolicy, config: HelperConfig
) -> dict[str, Any]:
    """Download *url* from here: ``{"bytes_per_second", "body_bytes", "failure"}``.

    The host is looked up as the control route looks names up: the helper's resolvers (A,
    then AAAA, the first resolver that answers), else the system resolver.
    """
    clock = relative_clock()
    scheme, host, port = urls.split_url(url)
    try:
        ips = [str(ipaddress.ip_address(host))]
    except ValueError:
        ips, failure = await _lookup(host, port, config, clock)
        if not ips:
            return _answer(None, 0, failure)
    allowed = [ip for ip in ips if policy.is_allowed(ip)]
    if not allowed:
        return _answer(None, 0, "forbidden_target")
    record, connection = await tcp.connect(allowed[0], port, timeout=STEP_TIMEOUT, clock=clock)
    if connection is None:
        return _answer(None, 0, record.status.failure)
    address = urls.endpoint(allowed[0], port)
    if scheme == "https":
        handshake = await tls.handshake(
            connection, address=address, server_name=host,
            ssl_context=tls.client_contexts(config.ca_file).httpx,
            timeout=STEP_TIMEOUT, clock=clock,
        )  # fmt: skip
        if handshake.failure is not None:
            await connection.close()
            return _answer(None, 0, handshake.failure)
    transfer = await download(
        connection, url=url, address=address, max_bytes=max_bytes, max_seconds=max_seconds, clock=clock
    )
    return _answer(transfer.bytes_per_second, transfer.body_bytes, transfer.transaction.failure)


async def _lookup(host: str, port: int, config: HelperConfig, clock: Clock) -> tuple[list[str], str | None]:
    if not config.resolvers:
        query = await dns.resolve_system(host, timeout=STEP_TIMEOUT, clock=clock, port=port)
        return list(query.addresses), query.failure
    failure: str | None = None
    for resolver in config.resolvers:
        for query_type in ("A", "AAAA"):
            query = await dns.resolve(
                host, query_type, resolver=resolver, timeout=config.dns_timeout, clock=clock
            )
            if query.addresses:
                return list(query.addresses), None
            failure = failure or query.failure
    return [], failure or "dns_no_answer"


def _answer(speed: float | None, body_bytes: int, failure: str | None) -> dict[str, Any]:
    return {"bytes_per_second": speed, "body_bytes": body_bytes, "failure": failure}
