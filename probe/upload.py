"""Store-and-forward upload: send stored measurements to a collector until it has each once.

The collector speaks OONI's collector protocol (``ooni/spec`` ``backends/bk-003-collector.md``):
``POST /report`` opens a report, ``POST /report/{id}`` submits one measurement to it,
``POST /report/{id}/close`` closes it. :func:`upload_pending` reads what is due from the
store (:mod:`measurements.store.uploads`: measurements of finished rounds, oldest first,
``batch_size`` at a time) and records, after each batch, what the collector said:

- **a report per round and test**: the measurements of one local round and test (and probe
  network, software and test version, as the spec's report fields require) go into one
  report, opened when the first of them is sent and closed at the end of the run. Each is
  submitted as stored, its ``report_id`` rewritten to the collector's (the spec requires
  them to match) and its ``probe_ip`` set to OONI's ``127.0.0.1`` marker (it already is:
  the volunteer's address is never stored, nor sent);
- **200**: uploaded; the id the collector acknowledged is kept (``measurement_uid``, or the
  spec's ``measurement_id``). The collector is idempotent by ``measurement_uid``, so a
  measurement sent twice (a run cut short after the collector stored it) is acknowledged
  again, never stored twice;
- **4xx** to a submission: if the report is older than :data:`REPORT_MAX_AGE_S` the spec's
  rule applies: open a new report, rewrite the report id, submit again; so does a 404 or 410
  (the collector no longer has the report open) at any age. 401, 403 and 429 are about the
  probe, not the measurement: failures as below. Otherwise the collector refuses this
  measurement: it is ``failed`` (``http_status_4NN``, with the report
  that refused it) and tried again only after the longest back-off; the run goes on with the
  next;
- **415** to a gzip body: compression off (for the rest of the process: the daemon's later
  runs too) and the request sent again; **429 or 503 with Retry-After** (the collector is
  busy, or its database restarts): sent again after the wait it asks for, if that is at most
  :data:`MAX_RETRY_AFTER_S`, up to :data:`RETRY_AFTER_TRIES` sends in all;
- **anything else** — the collector cannot be reached (a failure string of
  :mod:`probe.steps.failures`), answers 5xx (or 429, 401, …, to opening a report), or answers
  200 with no valid report id (``collector_invalid_answer``) — says nothing about the
  measurement: it is ``failed`` with an exponential back-off (``retry_min_minutes`` doubling
  up to ``retry_max_minutes``) and the run stops, so that a collector that is down costs one
  request per run. The first measurement a later run gets acknowledged makes every such
  failure due at once (:func:`~measurements.store.uploads.lift_waits`): their waits were the
  collector's, and the catching up goes oldest first, a batch at a time.

Answers are hostile until proven otherwise: read through :mod:`probe.steps.bodies` (at most
:data:`MAX_ANSWER_BYTES` decoded, redirects never followed), parsed only when 200, each
request bounded by ``timeout``. Request bodies over 1 KiB are gzip-compressed (the
volunteer's bandwidth), as the spec allows, falling back on a 415.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import ssl
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx

from measurements.store import uploads
from measurements.store.store import Store
from probe import SOFTWARE_NAME, __version__
from probe.rounds.settings import Upload
from probe.steps import bodies, failures
from probe.steps.tls import make_ssl_context

REPORT_MAX_AGE_S: Final = 3600.0
"""The spec's hour: a 4xx to a submission into a report older than this reopens the report."""
MAX_ANSWER_BYTES: Final = 64 * 1024
"""A collector's answer is a small JSON object; anything longer is not one."""
COMPRESS_ABOVE: Final = 1024
RETRY_AFTER_TRIES: Final = 4
"""Sends of one request a 429 or 503 with ``Retry-After`` may take (then it is a failure)."""
MAX_RETRY_AFTER_S: Final = 30
"""A longer ``Retry-After`` is not waited for within the run: the failure's back-off is."""
INVALID_ANSWER: Final = "collector_invalid_answer"
INVALID_STORED: Final = "stored_measurement_invalid"
USER_AGENT: Final = f"{SOFTWARE_NAME}/{__version__}"
_ABOUT_THE_PROBE: Final = frozenset({401, 403, 407, 429})
"""4xx answers that refuse the probe (its token) or its pace, not the measurement: failures."""
_REPORT_GONE: Final = frozenset({404, 410})
"""4xx answers about the report (unknown, closed), not the measurement: a new report is opened."""
_PLAIN_ONLY: set[str] = set()
"""Collectors that answered 415 to gzip in this process: later runs (the daemon's) send them plain
JSON from the start."""
_REPORT_FIELDS: Final = (
    "test_name",
    "test_version",
    "probe_asn",
    "probe_cc",
    "software_name",
    "software_version",
)


@dataclass(slots=True)
class RunSummary:
    """What one :func:`upload_pending` did."""

    uploaded: int = 0
    failed: int = 0
    """Attempts that failed (the measurement is ``failed``, to be tried again)."""
    rejected: int = 0
    """Of them, measurements the collector refused (4xx): tried again after the longest back-off."""
    reports_opened: int = 0
    reports_reopened: int = 0
    """Reports opened again by the spec's one-hour rule."""
    errors: Counter[str] = field(default_factory=Counter)
    stopped: str | None = None
    """Why the run ended before everything due was sent: the collector's failure, ``stopped``
    (asked to stop), ``deadline``; ``None``: nothing due is left."""


@dataclass(slots=True)
class _Report:
    report_id: str
    opened: float
    """``time.monotonic()`` when opened."""


class _Transient(Exception):
    """The collector failed (unreachable, 5xx, an invalid answer): the run stops."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    data: Any
    """The parsed JSON of a 200 answer (``None`` otherwise, or when it is not JSON)."""
    retry_after: float | None = None
    """A 429's or 503's ``Retry-After`` in seconds, when it gave one we honour."""


class CollectorClient:
    """The collector protocol over one pool of connections (HTTP/1.1, keep-alive when offered)."""

    def __init__(self, url: str, *, token: str | None, ssl_context: ssl.SSLContext, timeout: float) -> None:
        self._base = httpx.URL(url if url.endswith("/") else url + "/")
        self._timeout = timeout
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json",
                         "Accept-Encoding": bodies.ACCEPT_ENCODING}  # fmt: skip
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token}"
        self.compress = str(self._base) not in _PLAIN_ONLY
        self._transport = httpx.AsyncHTTPTransport(verify=ssl_context, trust_env=False, retries=0)

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def open_report(self, envelope: dict[str, Any]) -> str:
        """Open a report for *envelope* (the spec's fields) and return its id.

        Raises:
            _Transient: not opened (a network failure, a status other than 200, no valid id).
        """
        answer = await self._post("report", envelope)
        if answer.status != 200:
            raise _Transient(f"http_status_{answer.status}")
        report_id = answer.data.get("report_id") if isinstance(answer.data, dict) else None
        if not (isinstance(report_id, str) and 0 < len(report_id) <= 128 and report_id.isprintable()):
            raise _Transient(INVALID_ANSWER)
        return report_id

    async def submit(self, report_id: str, document: dict[str, Any]) -> tuple[int, str | None]:
        """Submit *document* to *report_id*: ``(status, the id the collector gave or None)``.

        Raises:
            _Transient: a network failure.
        """
        answer = await self._post(f"report/{_quoted(report_id)}", {"format": "json", "content": document})
        if answer.status != 200 or not isinstance(answer.data, dict):
            return answer.status, None
        for key in ("measurement_uid", "measurement_id"):
            uid = answer.data.get(key)
            if isinstance(uid, str) and 0 < len(uid) <= 64 and uid.isprintable():
                return 200, uid
        return 200, None

    async def close_report(self, report_id: str) -> None:
        """Close *report_id*; failures are ignored (a collector closes stale reports itself)."""
        with contextlib.suppress(_Transient):
            await self._post(f"report/{_quoted(report_id)}/close", None)

    async def _post(self, path: str, payload: dict[str, Any] | None) -> _Answer:
        content = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        for attempt in range(RETRY_AFTER_TRIES):
            compressed = self.compress and len(content) > COMPRESS_ABOVE
            answer = await self._send(path, gzip.compress(content, 6) if compressed else content, compressed)
            if compressed and answer.status == 415:  # the spec's answer to an encoding it lacks
                self.compress = False
                _PLAIN_ONLY.add(str(self._base))
                answer = await self._send(path, content, False)
            if answer.retry_after is None or attempt == RETRY_AFTER_TRIES - 1:
                break
            await asyncio.sleep(answer.retry_after)  # it asked us to come back: a busy moment
        return answer

    async def _send(self, path: str, content: bytes, compressed: bool) -> _Answer:
        headers = dict(self._headers)
        if content:
            headers["Content-Type"] = "application/json"
        if compressed:
            headers["Content-Encoding"] = "gzip"
        operation: failures.Operation = "http_round_trip"
        try:
            request = httpx.Request("POST", self._base.join(path), content=content, headers=headers)
            request.extensions = {"timeout": httpx.Timeout(self._timeout).as_dict()}
            async with asyncio.timeout(self._timeout):
                response = await self._transport.handle_async_request(request)
                try:
                    if response.status_code != 200:  # not worth reading: its status says it all
                        return _Answer(response.status_code, None, _retry_after(response))
                    operation = "read"
                    body, truncated = await bodies.read_body(response, MAX_ANSWER_BYTES)
                finally:
                    await response.aclose()
        except failures.NETWORK_EXCEPTIONS as exc:
            raise _Transient(failures.classify(exc, operation)) from None
        except httpx.HTTPError as exc:  # e.g. an invalid URL built from a hostile report id
            raise _Transient(f"{failures.UNKNOWN_PREFIX}{type(exc).__name__}") from None
        if truncated:
            raise _Transient(INVALID_ANSWER)
        try:
            return _Answer(200, json.loads(body))
        except (ValueError, RecursionError):
            return _Answer(200, None)


def _retry_after(response: httpx.Response) -> float | None:
    """The wait a 429 or 503 asks for, if it is whole seconds within :data:`MAX_RETRY_AFTER_S`."""
    value = response.headers.get("retry-after", "").strip()
    if response.status_code not in (429, 503) or not value.isdigit() or len(value) > 6:
        return None
    seconds = int(value)
    return float(seconds) if seconds <= MAX_RETRY_AFTER_S else None


def _quoted(report_id: str) -> str:
    """*report_id* as one path segment: the spec calls it opaque, so nothing in it is trusted."""
    return (
        urllib.parse.quote(report_id, safe="")
        if report_id not in (".", "..")
        else report_id.replace(".", "%2E")
    )


def client_for(settings: Upload) -> CollectorClient:
    """A :class:`CollectorClient` for *settings* (``collector_url`` must be set).

    Raises:
        ConfigError: the CA file cannot be read.
    """
    assert settings.collector_url is not None
    context = make_ssl_context(settings.ca_file, alpn=("http/1.1",))
    return CollectorClient(settings.collector_url, token=settings.token, ssl_context=context,
                           timeout=settings.timeout)  # fmt: skip


def backoff(attempts: int, settings: Upload) -> timedelta:
    """The wait after the *attempts*-th failed attempt: ``retry_min`` doubling, at most ``retry_max``."""
    minutes = settings.retry_min_minutes * 2 ** min(max(attempts - 1, 0), 30)
    return timedelta(minutes=min(minutes, settings.retry_max_minutes))


async def upload_pending(
    store: Store,
    settings: Upload,
    *,
    client: CollectorClient | None = None,
    stop: Callable[[], bool] = lambda: False,
    retry_all: bool = False,
    report_max_age_s: float = REPORT_MAX_AGE_S,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RunSummary:
    """Send every due measurement of *store* to the collector of *settings*, oldest first.

    Store calls run in worker threads, off the event loop. Cancelling the task (a deadline)
    is safe: what the collector acknowledged is recorded before the cancellation goes on,
    and a measurement in flight is simply sent again next time (acknowledged once).

    Args:
        client: the collector client (default: :func:`client_for` *settings*; closed here).
        stop: asked before each request; once true the run ends (reports closed, state kept).
        retry_all: failed measurements are due whatever their back-off says.
        report_max_age_s: the spec's one hour (shorter in tests).
        now: the clock of the stored times.

    Raises:
        StorageError: the store cannot be read or written.
        ConfigError: the CA file cannot be read.
    """
    own = client is None
    if client is None:  # off the loop: loading the system's trust store takes ~50 ms of CPU
        client = await asyncio.to_thread(client_for, settings)
    summary = RunSummary()
    reports: dict[tuple[Any, ...], _Report] = {}
    cursor: uploads.Cursor | None = None
    answered = False
    """The collector has acknowledged a measurement in this run (it is back, if it was away)."""
    try:
        while summary.stopped is None:
            batch = await asyncio.to_thread(
                uploads.due, store, now=now(), limit=settings.batch_size, after=cursor, retry_all=retry_all
            )
            if not batch:
                break
            done: list[uploads.Uploaded] = []
            failed: list[uploads.Failed] = []
            try:
                for item in batch:
                    if stop():
                        summary.stopped = "stopped"
                        break
                    try:
                        await _send_one(client, item, reports, settings, summary, done, failed, now,
                                        report_max_age_s)  # fmt: skip
                    except _Transient as exc:
                        failed.append(_failure(item, exc.error, backoff(item.attempts + 1, settings), now))
                        summary.errors[exc.error] += 1
                        summary.stopped = exc.error
                        break
                    cursor = item.cursor
                    if done and not answered:
                        break  # it answers: the ones that waited for it go first (below)
            finally:
                summary.uploaded += len(done)
                summary.failed += len(failed)
                await asyncio.shield(asyncio.to_thread(_record, store, done, failed, now()))
            if done and not answered:
                answered = True
                if await asyncio.to_thread(uploads.lift_waits, store, now=now()):
                    cursor = None  # page again from the oldest: they are due now
    except asyncio.CancelledError:
        summary.stopped = "deadline"
        raise
    finally:
        try:
            await asyncio.gather(*(client.close_report(r.report_id) for r in reports.values()))
        finally:
            if own:
                await client.aclose()
    return summary


async def _send_one(
    client: CollectorClient,
    item: uploads.Due,
    reports: dict[tuple[Any, ...], _Report],
    settings: Upload,
    summary: RunSummary,
    done: list[uploads.Uploaded],
    failed: list[uploads.Failed],
    now: Callable[[], datetime],
    report_max_age_s: float,
) -> None:
    """Send *item* (opening its report if needed); append what came of it to *done* or *failed*.

    Raises:
        _Transient: the collector failed; *item* is not recorded yet.
    """
    try:
        document = json.loads(item.body)
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        failed.append(_failure(item, INVALID_STORED, timedelta(minutes=settings.retry_max_minutes), now))
        summary.rejected += 1
        summary.errors[INVALID_STORED] += 1
        return
    document["probe_ip"] = "127.0.0.1"  # stored so already; never anything else on the wire
    key = (item.round_id, *(str(document.get(name, "")) for name in _REPORT_FIELDS))
    for fresh in (False, True):
        report = reports.get(key)
        if report is None:
            report = reports[key] = _Report(await client.open_report(_envelope(document)), time.monotonic())
            summary.reports_opened += 1
        document["report_id"] = report.report_id
        status, uid = await client.submit(report.report_id, document)
        if status == 200:
            done.append(uploads.Uploaded(item.measurement_id, report.report_id, uid or item.measurement_uid))
            return
        if 400 <= status < 500 and status not in _ABOUT_THE_PROBE:
            old = time.monotonic() - report.opened > report_max_age_s
            if not fresh and (old or status in _REPORT_GONE):
                # The spec's rule (or a report the collector no longer has, whatever its age):
                # a new report, the report id rewritten, the measurement sent again.
                del reports[key]
                summary.reports_reopened += 1
                continue
            error = f"http_status_{status}"
            wait = timedelta(minutes=settings.retry_max_minutes)
            failed.append(_failure(item, error, wait, now, report_id=report.report_id))
            summary.rejected += 1
            summary.errors[error] += 1
            return
        raise _Transient(f"http_status_{status}")


def _envelope(document: dict[str, Any]) -> dict[str, Any]:
    """The spec's fields for opening the report *document* goes into."""
    envelope: dict[str, Any] = {
        "data_format_version": str(document.get("data_format_version") or "0.2.0"),
        "format": "json",
        "probe_asn": str(document.get("probe_asn") or "AS0"),
        "probe_cc": str(document.get("probe_cc") or "ZZ"),
        "software_name": str(document.get("software_name") or SOFTWARE_NAME),
        "software_version": str(document.get("software_version") or __version__),
        "test_name": str(document.get("test_name") or ""),
        "test_version": str(document.get("test_version") or "0.0.0"),
    }
    if isinstance(document.get("test_start_time"), str):
        envelope["test_start_time"] = document["test_start_time"]
    return envelope


def _failure(
    item: uploads.Due,
    error: str,
    wait: timedelta,
    now: Callable[[], datetime],
    *,
    report_id: str | None = None,
) -> uploads.Failed:
    return uploads.Failed(item.measurement_id, item.attempts + 1, error, now() + wait, report_id)


def _record(store: Store, done: list[uploads.Uploaded], failed: list[uploads.Failed], when: datetime) -> None:
    uploads.mark_uploaded(store, done, now=when)
    uploads.mark_failed(store, failed, now=when)
