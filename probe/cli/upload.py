"""``probe upload``: send the stored measurements the collector does not have yet (for cron).

What is sent, where, and what happens on failure is :mod:`probe.upload`'s; this shell loads
the settings, opens the store and prints what the run did: one line, or ``--json``. A
collector that cannot be reached is not an error of the command (exit 0): the attempt is
recorded, and the next run tries again after the back-off. Neither is an upload already
running from the same database (the daemon's, or an earlier cron run still going; the
store's :meth:`~measurements.store.store.Store.lock_uploads`): this run sends nothing and
says so (``stopped``: ``another_upload_running``), since two would send the same
measurements side by side. No collector configured, or a bad
settings file or ``--db``: exit 2; a store that cannot be read or written: exit 3.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from probe.cli.options import config_option, db_option
from probe.errors import ConfigError
from probe.isotime import iso_utc

if TYPE_CHECKING:  # the store and httpx load when the command runs, not for --help
    from measurements.store.uploads import UploadCounts
    from probe.upload import RunSummary


@click.command()
@config_option("its [upload] section, and storage.database_url")
@db_option
@click.option(
    "--retry-now", is_flag=True, help="Try failed measurements again now, whatever their back-off says."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: what was sent, what is left.")
def upload(config_file: Path | None, db_url: str | None, retry_now: bool, as_json: bool) -> None:
    """Send stored measurements to the configured collector; keep what it cannot take for later."""
    from measurements.store import uploads
    from probe.cli.status import open_existing_store
    from probe.rounds.settings import load_settings
    from probe.upload import BUSY, RunSummary, upload_pending

    settings = load_settings(config_file)
    if settings.upload.collector_url is None:
        where = f"{config_file}: " if config_file else ""
        raise ConfigError(
            f"{where}upload.collector_url: not set: nothing is uploaded unless a collector is configured "
            "(the [upload] section of the settings file, --config)"
        )
    with open_existing_store(db_url or settings.storage.database_url) as store:
        lock = store.lock_uploads()
        if lock is None:
            summary = RunSummary(stopped=BUSY)
        else:
            with lock:
                summary = asyncio.run(
                    upload_pending(uploads.StoreUploads(store), settings.upload, retry_all=retry_now)
                )
        left = uploads.counts(store, now=datetime.now(UTC))
    doc = as_document(summary, left, collector=settings.upload.collector_url)
    if as_json:
        click.echo(json.dumps(doc, ensure_ascii=False))
    else:
        click.echo(sentence(doc))


def as_document(summary: RunSummary, left: UploadCounts, *, collector: str) -> dict[str, Any]:
    """What the run did and what is left, JSON-ready (``--json``)."""
    return {
        "collector": collector,
        "uploaded": summary.uploaded,
        "failed": summary.failed,
        "rejected": summary.rejected,
        "reports_opened": summary.reports_opened,
        "reports_reopened": summary.reports_reopened,
        "errors": dict(sorted(summary.errors.items())),
        "stopped": summary.stopped,
        "left": counts_document(left),
    }


def counts_document(counts: UploadCounts) -> dict[str, Any]:
    """The upload state as ``probe status --json`` and ``probe upload --json`` show it."""
    return {
        "pending": counts.pending,
        "in_running_rounds": counts.in_running_rounds,
        "failed": counts.failed,
        "failed_due": counts.failed_due,
        "uploaded": counts.uploaded,
        "oldest_pending_at": iso_utc(counts.oldest_pending_at),
        "next_attempt_at": iso_utc(counts.next_attempt_at),
        "last_error": counts.last_error,
    }


def sentence(doc: dict[str, Any]) -> str:
    """The run in one line for people (and cron mail)."""
    parts = [f"uploaded {doc['uploaded']} measurement(s) to {doc['collector']}"]
    if doc["reports_opened"]:
        parts[0] += f" in {doc['reports_opened']} report(s)"
    if doc["failed"]:
        errors = ", ".join(f"{n} {error}" for error, n in doc["errors"].items())
        parts.append(f"{doc['failed']} failed ({errors}; tried again later)")
    stopped = doc["stopped"]
    if stopped == "another_upload_running":  # probe.upload.BUSY (not imported: it loads httpx)
        parts[0] = "another upload from this database is running (the daemon's?): sent nothing"
    elif stopped is not None and stopped not in doc["errors"]:
        parts.append(f"stopped: {stopped}")
    left = doc["left"]
    waiting = left["pending"] + left["failed"]
    parts.append(f"{waiting} not uploaded yet" + (f" ({left['failed']} failed)" if left["failed"] else ""))
    if left["in_running_rounds"]:
        parts.append(f"{left['in_running_rounds']} in a round still running")
    return "; ".join(parts)
