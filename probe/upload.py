"""Store-and-forward upload: send stored measurements to a collector until it has each once.

The collector speaks OONI's collector protocol (``ooni/spec`` ``backends/bk-003-collector.md``),
through :class:`~probe.uploadclient.CollectorClient`. :func:`upload_pending` reads what is due
from an :class:`~probe.uploadstate.UploadLedger` (the store's, built by the composition roots:
measurements of finished rounds, oldest first, ``batch_size`` at a time) and records there,
after each batch, what the collector said:

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
- **415** to a gzip body, **429 or 503 with Retry-After**: the client sends the request
  again (:mod:`probe.uploadclient`), within the run;
- **anything else** — the collector cannot be reached (a failure string of
  :mod:`probe.steps.failures`), answers 5xx (or 429, 401, …, to opening a report), or answers
  200 with no valid report id (``collector_invalid_answer``) — says nothing about the
  measurement: it is ``failed`` with an exponential back-off (``retry_min_minutes`` doubling
  up to ``retry_max_minutes``) and the run stops, so that a collector that is down costs one
  request per run. The first measurement a later run gets acknowledged makes every such
  failure due at once (:meth:`~probe.uploadstate.UploadLedger.lift_waits`): their waits were
  the collector's, and the catching up goes oldest first, a batch at a time.

The collector's answers are hostile until proven otherwise: the client reads at most a small
JSON object, follows no redirect, and bounds each request by ``timeout``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from probe import SOFTWARE_NAME, __version__
from probe.rounds.settings import Upload
from probe.uploadclient import CollectorClient, CollectorFailure, client_for
from probe.uploadstate import Cursor, Due, Failed, Uploaded, UploadLedger

REPORT_MAX_AGE_S: Final = 3600.0
"""The spec's hour: a 4xx to a submission into a report older than this reopens the report."""
INVALID_STORED: Final = "stored_measurement_invalid"
BUSY: Final = "another_upload_running"
"""Why a run sent nothing: another process was already uploading from that database (the
composition roots take :meth:`~measurements.store.store.Store.lock_uploads` first)."""
_ABOUT_THE_PROBE: Final = frozenset({401, 403, 407, 429})
"""4xx answers that refuse the probe (its token) or its pace, not the measurement: failures."""
_REPORT_GONE: Final = frozenset({404, 410})
"""4xx answers about the report (unknown, closed), not the measurement: a new report is opened."""
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
    (asked to stop), ``deadline``, :data:`BUSY` (it never began: another upload from the
    same database was running); ``None``: nothing due is left."""


@dataclass(slots=True)
class _Report:
    report_id: str
    opened: float
    """``time.monotonic()`` when opened."""


def backoff(attempts: int, settings: Upload) -> timedelta:
    """The wait after the *attempts*-th failed attempt: ``retry_min`` doubling, at most ``retry_max``."""
    minutes = settings.retry_min_minutes * 2 ** min(max(attempts - 1, 0), 30)
    return timedelta(minutes=min(minutes, settings.retry_max_minutes))


async def upload_pending(
    ledger: UploadLedger,
    settings: Upload,
    *,
    client: CollectorClient | None = None,
    stop: Callable[[], bool] = lambda: False,
    retry_all: bool = False,
    report_max_age_s: float = REPORT_MAX_AGE_S,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RunSummary:
    """Send every due measurement of *ledger* to the collector of *settings*, oldest first.

    Ledger calls run in worker threads, off the event loop. Cancelling the task (a deadline)
    is safe: what the collector acknowledged is recorded before the cancellation goes on,
    and a measurement in flight is simply sent again next time (acknowledged once).

    Args:
        client: the collector client (default: :func:`client_for` *settings*; closed here).
        stop: asked before each request; once true the run ends (reports closed, state kept).
        retry_all: failed measurements are due whatever their back-off says.
        report_max_age_s: the spec's one hour (shorter in tests).
        now: the clock of the stored times.

    Raises:
        StorageError: the ledger cannot be read or written.
        ConfigError: the CA file cannot be read.
    """
    own = client is None
    if client is None:  # off the loop: loading the system's trust store takes ~50 ms of CPU
        client = await asyncio.to_thread(client_for, settings)
    summary = RunSummary()
    reports: dict[tuple[Any, ...], _Report] = {}
    cursor: Cursor | None = None
    answered = False
    """The collector has acknowledged a measurement in this run (it is back, if it was away)."""
    try:
        while summary.stopped is None:
            batch = await asyncio.to_thread(
                ledger.due, now=now(), limit=settings.batch_size, after=cursor, retry_all=retry_all
            )
            if not batch:
                break
            done: list[Uploaded] = []
            failed: list[Failed] = []
            try:
                for item in batch:
                    if stop():
                        summary.stopped = "stopped"
                        break
                    try:
                        await _send_one(client, item, reports, settings, summary, done, failed, now,
                                        report_max_age_s)  # fmt: skip
                    except CollectorFailure as exc:
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
                await asyncio.shield(asyncio.to_thread(_record, ledger, done, failed, now()))
            if done and not answered:
                answered = True
                if await asyncio.to_thread(ledger.lift_waits, now=now()):
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
    item: Due,
    reports: dict[tuple[Any, ...], _Report],
    settings: Upload,
    summary: RunSummary,
    done: list[Uploaded],
    failed: list[Failed],
    now: Callable[[], datetime],
    report_max_age_s: float,
) -> None:
    """Send *item* (opening its report if needed); append what came of it to *done* or *failed*.

    Raises:
        CollectorFailure: the collector failed; *item* is not recorded yet.
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
            done.append(Uploaded(item.measurement_id, report.report_id, uid or item.measurement_uid))
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
        raise CollectorFailure(f"http_status_{status}")


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
    item: Due,
    error: str,
    wait: timedelta,
    now: Callable[[], datetime],
    *,
    report_id: str | None = None,
) -> Failed:
    return Failed(item.measurement_id, item.attempts + 1, error, now() + wait, report_id)


def _record(ledger: UploadLedger, done: list[Uploaded], failed: list[Failed], when: datetime) -> None:
    ledger.mark_uploaded(done, now=when)
    ledger.mark_failed(failed, now=when)
