"""The collector's ASGI application (starlette): OONI's collector protocol over a report store.

Routes (``ooni/spec`` bk-003-collector; the statuses are this collector's exact answers):

``POST /report`` — open a report (§3.1). Body: ``format``, ``data_format_version``,
``probe_asn``, ``probe_cc``, ``software_name``, ``software_version``, ``test_name``,
``test_version``, optionally ``test_start_time`` (the round's start: the round's
``started_at``, so late uploads sort by when they were measured).
  * 200 ``{"backend_version": V, "report_id": ID, "supported_formats": ["json"]}``
  * 400 an invalid or missing field; 429 reports opened faster than :attr:`Limits.open_rate`
    (over all submitters, ``Retry-After``).

``POST /report/{report_id}`` — submit a measurement (§3.2). Body ``{"format": "json",
"content": MEASUREMENT}``; the content's ``report_id``, ``probe_cc``, ``probe_asn`` and
``test_name`` must be the report's.
  * 200 ``{"measurement_uid": UID, "measurement_id": UID}`` — stored, or stored already: a
    measurement whose uid (:mod:`probe.collector.uids`) the collector has is acknowledged
    with it, whatever report it is sent to and even when that report is closed; it is never
    stored twice. (``measurement_id`` is the spec's name, ``measurement_uid`` OONI's API's.)
  * 400 a malformed report id, or an invalid measurement (:mod:`probe.collector.validate`);
  * 404 ``{"error": "unknown report"}``;
  * 410 ``{"error": "report closed"}`` — closed by its probe, or opened more than
    :attr:`Limits.report_lifetime` ago (24 h: the spec asks that a report updated within two
    hours is never closed as stale, and this keeps any round's report open far past that);
    per §3.2 a probe whose report is over an hour old then opens a new one and resubmits
    with the new id;
  * 429 more than :attr:`Limits.report_rate` submissions per second to one report
    (``Retry-After``): retry later, the report is fine.

``POST /report/{report_id}/close`` — close (§3.3): 200 ``{"status": "success"}`` (also when it
was closed already), 400 a malformed id, 404 unknown.

``POST /measurement`` — a single-measurement report (§3.4): body ``{"format": "json",
"content": …}`` (or the bare measurement); its ``report_id`` is replaced by a new report's,
opened, stored and closed in one transaction. 200 ``{"measurement_uid", "measurement_id",
"report_id"}`` (a duplicate: the report it is in); 400; 429 as for opening.

``GET /`` — what this service is.

On every route: 401 when the collector has tokens and the request has none of them
(``WWW-Authenticate: Bearer``); 413 for a body over :attr:`Limits.max_body_bytes`; 408 when
the body does not arrive within :attr:`Limits.body_timeout_s`; 415 for any
``Content-Encoding`` (the spec lets a collector refuse compression, and a probe then retries
without: no decompression bomb to defuse); 503 ``Retry-After`` when the database fails or
:attr:`Limits.max_in_progress` requests are already under way. Every error is one line of JSON,
``{"error": "…"}`` (``storage unavailable``, ``busy: too many requests in progress``, …); the
refusals other than 404 and 410 say ``Connection: close`` (the body may be unread: the
connection is not reused). An exception the collector did not expect is a 500 ``internal
error`` and one log line without a traceback (:class:`probe.helper.app.InternalErrors`);
the tests send every hostile input they know and never see one.

Nothing reads the client's address, and nothing is logged per request: the collector has no
access log. A submitted ``probe_ip`` is never stored (``127.0.0.1``, OONI's marker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeVar

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from probe import __version__
from probe.collector.ratelimit import Bucket, Buckets
from probe.collector.reportstore import ReportStore, Submitted
from probe.collector.summary import summarize
from probe.collector.tokens import Tokens
from probe.collector.uids import measurement_uid
from probe.collector.validate import (
    Bounds,
    Refusal,
    check_belongs,
    check_measurement,
    open_request,
    parse_json,
    parse_report_id,
    submission_content,
    test_part,
)
from probe.errors import StorageError
from probe.helper.app import InternalErrors, error_response, read_body
from probe.model import OONIMeasurement
from probe.serialize import new_report_id, ooni_measurement

MAX_BODY_BYTES: Final = 4 * 1024 * 1024
"""A Web Connectivity measurement with a 512 KiB page and a few redirects is well under this."""
RETRY_AFTER_S: Final = 5
OFF_LOOP_BYTES: Final = 256 * 1024
"""Bodies larger than this are parsed and checked in a worker thread (see ``cpu`` in :func:`create_app`)."""
logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Limits:
    """The collector's bounds on what strangers can make it do."""

    max_body_bytes: int = MAX_BODY_BYTES
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 10.0
    """Time a connection may hold no request in progress (the server's, see probe.helper.server)."""
    report_lifetime: timedelta = timedelta(hours=24)
    report_rate: float = 100.0
    """Submissions per second one report may take on average…"""
    report_burst: int = 1000
    """…and at once."""
    open_rate: float = 50.0
    """Reports opened per second, over everyone…"""
    open_burst: int = 500
    """…and at once."""
    store_threads: int = 8
    """Worker threads making the store's (blocking) calls: the database connections in use."""
    max_in_progress: int = 16
    """Requests handled at once (their bodies read, parsed, waiting for or in the store); more
    are answered 503 at once. It bounds memory: a body is up to :attr:`max_body_bytes`, and
    its parsed form a few times that (:attr:`~probe.collector.validate.Bounds.max_containers`)."""
    expire_every_s: float = 60.0
    """How often reports past their lifetime are closed in the store."""


@dataclass(frozen=True, slots=True)
class CollectorSettings:
    """Everything the application needs besides its store."""

    limits: Limits = field(default_factory=Limits)
    bounds: Bounds = field(default_factory=Bounds)
    tokens: Tokens | None = None
    """``None``: open submission."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The wall clock (UTC): report ids, lifetimes, the time window. Tests move it."""


class _Gate:
    """The store's worker threads, and the bound on requests in progress."""

    def __init__(self, limits: Limits) -> None:
        self.pool = ThreadPoolExecutor(limits.store_threads, thread_name_prefix="collector-store")
        self.max_in_progress = limits.max_in_progress
        self.in_progress = 0

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in a worker thread; 503 when the store fails."""
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, lambda: fn(*args, **kwargs))
        except StorageError as exc:
            logger.error("%s", exc)
            raise HTTPException(503, "storage unavailable", _retry()) from None

    def admitted(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """*handler*, answering 503 at once when :attr:`Limits.max_in_progress` requests are under way."""

        async def admit(request: Request) -> Response:
            if self.in_progress >= self.max_in_progress:
                raise HTTPException(503, "busy: too many requests in progress", _retry())
            self.in_progress += 1
            try:
                return await handler(request)
            finally:
                self.in_progress -= 1

        return admit


def create_app(store: ReportStore, settings: CollectorSettings | None = None) -> Starlette:
    """The collector's ASGI application over *store*."""
    s = settings or CollectorSettings()
    limits, bounds = s.limits, s.bounds
    gate = _Gate(limits)
    per_report = Buckets(limits.report_rate, limits.report_burst)
    opens = Bucket(limits.open_rate, limits.open_burst)

    async def raw_body(request: Request) -> bytes:
        try:
            return await read_body(request, limits.max_body_bytes, limits.body_timeout_s)
        except ClientDisconnect:  # gone mid-body: nobody to answer, nothing to log
            raise HTTPException(400, "the client disconnected") from None

    async def body_of(request: Request) -> tuple[dict[str, Any], int]:
        """The request's JSON object, and its size in bytes."""
        _admit(request, s.tokens)
        raw = await raw_body(request)
        return await cpu(len(raw), parse_json, raw, bounds), len(raw)

    async def cpu(size: int, fn: Callable[..., T], *args: Any) -> T:
        """*fn* over a body of *size* bytes: a big one's in a worker thread, so that the event
        loop keeps serving the other connections meanwhile (a 4 MiB body takes ~50 ms)."""
        return await gate.run(fn, *args) if size > OFF_LOOP_BYTES else fn(*args)

    def report_of(request: Request) -> str:
        report_id: str = request.path_params["report_id"]
        parse_report_id(report_id)
        return report_id

    def throttle(wait: float) -> None:
        if wait > 0:
            raise HTTPException(429, "too many requests: slow down", {"Retry-After": str(math.ceil(wait))})

    def measurement(content: dict[str, Any], report_id: str) -> OONIMeasurement:
        """The checked measurement *content* submitted to *report_id*, filed under its uid."""
        started = check_measurement(content, bounds, s.clock())
        check_belongs(content, report_id)
        uid = measurement_uid(content, started)
        document = content if content.get("measurement_uid") == uid else {**content, "measurement_uid": uid}
        try:
            return ooni_measurement(document, summary=summarize(document))
        except ValueError as exc:  # check_measurement vouched for every field it reads; defensive
            raise Refusal(400, f"content: {exc}") from None

    async def open_report(request: Request) -> Response:
        body, _ = await body_of(request)
        now = s.clock()
        wanted = open_request(body, bounds, now)
        throttle(opens.take())
        report_id = new_report_id(
            now, test_name=test_part(wanted.test_name), probe_cc=wanted.probe_cc, probe_asn=wanted.probe_asn
        )
        await gate.run(
            store.open_report,
            report_id,
            started_at=wanted.test_start_time or now,
            probe_asn=wanted.probe_asn,
            probe_cc=wanted.probe_cc,
            software_version=f"{wanted.software_name} {wanted.software_version}",
        )
        return _json({"backend_version": __version__, "report_id": report_id, "supported_formats": ["json"]})

    async def submit(request: Request) -> Response:
        _admit(request, s.tokens)
        report_id = report_of(request)
        throttle(per_report.take(report_id))
        body, size = await body_of(request)
        m = await cpu(size, measurement, submission_content(body), report_id)
        opened = parse_report_id(report_id)[0]
        expired = opened < s.clock() - limits.report_lifetime
        result = Submitted(await gate.run(store.submit, report_id, m, expired=expired))
        if result is Submitted.UNKNOWN_REPORT:
            return error_response(404, "unknown report")
        if result is Submitted.CLOSED_REPORT:
            return error_response(410, "report closed")
        return _json({"measurement_uid": m.measurement_uid, "measurement_id": m.measurement_uid})

    async def close(request: Request) -> Response:
        _admit(request, s.tokens)
        report_id = report_of(request)
        await raw_body(request)  # ignored (empty)
        if not await gate.run(store.close_report, report_id):
            return error_response(404, "unknown report")
        return _json({"status": "success"})

    async def single(request: Request) -> Response:
        body, _ = await body_of(request)
        content = submission_content(body) if "content" in body else body
        now = s.clock()
        # The spec: the report id it carries is ignored, replaced by the new report's.
        check_measurement({**content, "report_id": ""}, bounds, now)
        report_id = new_report_id(
            now,
            test_name=test_part(content["test_name"]),
            probe_cc=content["probe_cc"],
            probe_asn=content["probe_asn"],
        )
        m = measurement({**content, "report_id": report_id}, report_id)
        throttle(opens.take())
        software = f"{content['software_name']} {content['software_version']}"
        _, filed_in = await gate.run(
            store.submit_alone, report_id, m, started_at=m.measurement_start_time, software_version=software
        )
        uid = m.measurement_uid
        return _json({"measurement_uid": uid, "measurement_id": uid, "report_id": filed_in or report_id})

    async def index(request: Request) -> Response:
        return _json({
            "service": "reachprobe collector (OONI collector protocol, bk-003)",
            "open": "POST /report", "submit": "POST /report/{report_id}",
            "close": "POST /report/{report_id}/close", "single": "POST /measurement",
            "authentication": "bearer token" if s.tokens is not None else "none",
        })  # fmt: skip

    # A refusal may come before the body was read (a bad id, a token, a rate): the server then
    # cannot reuse the connection, and says so, or a client's next request on it would race
    # the close ("server disconnected").
    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refusal)
        return error_response(exc.status, exc.message, {"Connection": "close"})

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = {**(exc.headers or {}), "Connection": "close"}
        return error_response(exc.status_code, str(exc.detail), headers)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        expiring = asyncio.create_task(_expire_forever(store, gate, s, limits))
        try:
            yield
        finally:
            expiring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await expiring
            gate.pool.shutdown(wait=True, cancel_futures=True)

    return Starlette(
        routes=[
            Route("/report", gate.admitted(open_report), methods=["POST"]),
            Route("/report/{report_id}", gate.admitted(submit), methods=["POST"]),
            Route("/report/{report_id}/close", gate.admitted(close), methods=["POST"]),
            Route("/measurement", gate.admitted(single), methods=["POST"]),
            Route("/", index, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error, Refusal: refused},
        middleware=[Middleware(InternalErrors)],
        lifespan=lifespan,
    )


def _admit(request: Request, tokens: Tokens | None) -> None:
    """Tokens and encodings, before any of the body is read."""
    if tokens is not None and not tokens.accepts(request.headers.get("authorization")):
        raise HTTPException(401, "a valid token is required", {"WWW-Authenticate": "Bearer"})
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise HTTPException(415, "Content-Encoding is not supported: send the body uncompressed")


async def _expire_forever(store: ReportStore, gate: _Gate, s: CollectorSettings, limits: Limits) -> None:
    """Close the reports past their lifetime every :attr:`Limits.expire_every_s` (a failure: next time)."""
    while True:
        with contextlib.suppress(HTTPException):  # the store failed (logged) or was busy
            await gate.run(store.expire_reports, s.clock() - limits.report_lifetime)
        await asyncio.sleep(limits.expire_every_s)


def _retry() -> dict[str, str]:
    return {"Retry-After": str(RETRY_AFTER_S)}


def _json(data: Mapping[str, Any]) -> Response:
    return JSONResponse(dict(data), headers={"Cache-Control": "no-store"})


def with_limits(settings: CollectorSettings, **changes: Any) -> CollectorSettings:
    """*settings* with some :class:`Limits` changed (the CLI's and the tests' shorthand)."""
    return replace(settings, limits=replace(settings.limits, **changes))
