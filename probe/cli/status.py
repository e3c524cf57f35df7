"""``probe status``: the last rounds, the next scheduled run, the database size, failing targets.

Failing targets are those whose latest measurement on a network is not "reachable"
(:func:`measurements.store.queries.failing_query`), listed by outcome, most serious first, each with
the outcome a person reads (:mod:`probe.outcome`): a confirmed blockpage reads
"blocked (confirmed: NAME)" whatever OONI's ``blocking`` says.

The daemon keeps no state outside the database, so the next run is predicted, not asked:
it is the last round's start plus the configured interval, plus up to the configured jitter
(see :func:`probe.rounds.daemon.next_run_window`). The schedule is read from ``--config`` — pass the
daemon's settings file — or the defaults. A prediction already in the past means the daemon
is late: stopped, or the machine asleep.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from probe.cli.options import config_option, db_option
from probe.errors import ConfigError
from probe.isotime import iso_utc
from probe.outcome import LABELS, Outcome, describe

# The store, the settings and rich load when the command runs, not for ``--help``.
if TYPE_CHECKING:
    from rich.console import Console

    from measurements.store.rows import FailingTarget, RoundInfo
    from measurements.store.store import Store
    from probe.rounds.settings import Schedule

ROUNDS_SHOWN = 10
_RANK = {
    outcome: i
    for i, outcome in enumerate(
        (
            Outcome.BLOCKED_CONFIRMED,
            Outcome.BLOCKED_ANOMALY,
            Outcome.SHUTDOWN,
            Outcome.SERVER_REFUSAL,
            Outcome.DOWN,
            Outcome.NO_VERDICT_UNDECIDED,
            Outcome.NO_VERDICT_CONTROL,
            Outcome.NO_VERDICT_NO_CONTROL,
        )
    )
}
"""The order failing targets are listed in: most serious first."""
_STYLE = {
    Outcome.BLOCKED_CONFIRMED: "bold red",
    Outcome.BLOCKED_ANOMALY: "red",
    Outcome.SHUTDOWN: "bold red",
    Outcome.SERVER_REFUSAL: "yellow",
    Outcome.DOWN: "yellow",
}


@click.command()
@db_option
@config_option("the daemon's, for its database and schedule")
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
def status(db_url: str | None, config_file: Path | None, as_json: bool) -> None:
    """Show the last rounds, the next scheduled run, the database size and the failing targets."""
    from rich.console import Console

    from probe.rounds.settings import load_settings

    settings = load_settings(config_file)
    with open_existing_store(db_url or settings.storage.database_url) as store:
        doc = collect(
            store, settings.schedule, now=datetime.now(UTC), collector=settings.upload.collector_url
        )
    if as_json:
        click.echo(json.dumps(doc, ensure_ascii=False))
    else:
        # Piped to a file or a pager: no wrapping at rich's default 80 columns.
        wide = None if sys.stdout.isatty() else 200
        render(doc, Console(highlight=False, soft_wrap=True, width=wide))


def open_existing_store(url: str | None) -> Store:
    """:func:`~measurements.store.store.open_store`, except that a missing SQLite file is an error.

    A command that only reads (status, export) must not leave an empty database behind
    because of a typo in ``--db``.

    Raises:
        ConfigError: the SQLite file does not exist (a typo in --db is bad input).
        StorageError: the store cannot be opened.
    """
    from measurements.store.engine import default_path
    from measurements.store.store import open_store

    path = default_path() if url is None else _sqlite_path(url)
    if path is not None and not path.exists():
        raise ConfigError(f"{path}: no database here (`probe run` or `probe daemon` creates it)")
    return open_store(url)


def _sqlite_path(url: str) -> Path | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from measurements.store.engine import sqlite_file

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None  # open_store says what is wrong with it
    return sqlite_file(parsed)


def collect(
    store: Store, schedule: Schedule, *, now: datetime, collector: str | None = None
) -> dict[str, Any]:
    """The status as a JSON-ready dict (what ``--json`` prints).

    With *collector* (``upload.collector_url``), it also says where the upload stands.

    Raises:
        StorageError: the store cannot be read.
    """
    from probe.rounds.daemon import next_run_window

    rounds = store.last_rounds(ROUNDS_SHOWN)
    latest_complete = next((r for r in rounds if r.status == "complete"), None)
    # "Currently" failing: as of the newest complete round, so that targets dropped from the
    # lists, or measured only on a network the probe has left, age out.
    # Measurement times are stored to the second (OONI's format): compare at that precision.
    since = latest_complete.started_at.replace(microsecond=0) if latest_complete else None
    failing = store.failing_targets(since=since) if since else []
    next_run: dict[str, Any] | None = None
    if rounds:
        earliest, latest = next_run_window(_aware(rounds[0].started_at), schedule)
        next_run = {
            "earliest": iso_utc(earliest),
            "latest": iso_utc(latest),
            "overdue": now > latest,
            "basis": "last round start + schedule.interval_minutes, + up to schedule.jitter_minutes",
        }
    return {
        "database": store.name,
        "size_bytes": store.size_bytes(),
        "schedule": {
            "interval_minutes": schedule.interval_minutes,
            "jitter_minutes": schedule.jitter_minutes,
        },
        "next_run": next_run,
        "rounds": [_round(r) for r in rounds],
        "failing_targets": [_failing(f) for f in failing],
        "upload": _upload(store, collector, now) if collector else None,
    }


def _upload(store: Store, collector: str, now: datetime) -> dict[str, Any]:
    from measurements.store.uploads import counts
    from probe.cli.upload import counts_document

    return {"collector": collector, **counts_document(counts(store, now=now))}


def render(doc: dict[str, Any], console: Console) -> None:
    """The status for people: a rounds table, the next run, the failing targets."""
    from rich.markup import escape
    from rich.table import Table

    size = doc["size_bytes"]
    console.print(f"[bold]database[/] {escape(doc['database'])}  ({_size(size)})")
    rounds = Table("round", "status", "started (UTC)", "took", "measured", "failed", "network", box=None)
    for r in doc["rounds"]:
        took = "" if r["duration_s"] is None else f"{r['duration_s']:.1f} s"
        style = {"complete": "green", "interrupted": "yellow", "running": "cyan"}.get(r["status"], "")
        network = {True: "up", False: "[bold red]DOWN[/]", None: ""}[r["network_up"]]
        rounds.add_row(
            str(r["id"]),
            f"[{style}]{r['status']}[/]" if style else r["status"],
            _short(r["started_at"]),
            took,
            f"{r['n_measurements']}/{r['n_targets']}",
            str(r["n_failed"]),
            network,
        )
    if doc["rounds"]:
        console.print(rounds)
    else:
        console.print("no rounds yet (is the daemon running? `probe daemon`)")
    nxt = doc["next_run"]
    if nxt is not None:
        late = "  [bold yellow]overdue: is the daemon running?[/]" if nxt["overdue"] else ""
        window = _short(nxt["earliest"]) + (
            f" … {_short(nxt['latest'])}" if nxt["latest"] != nxt["earliest"] else ""
        )
        console.print(f"[bold]next run[/] {window} UTC (last start + interval + jitter){late}")
    if doc.get("upload"):
        console.print(_upload_line(doc["upload"]))
    failing = sorted(doc["failing_targets"], key=lambda f: (_RANK.get(f["outcome"], len(_RANK)), f["url"]))
    if not failing:
        console.print("[bold]failing targets[/] none")
        return
    counts = Counter(LABELS[Outcome(f["outcome"])] for f in failing)
    by_outcome = ", ".join(f"{n} {text}" for text, n in counts.items())
    console.print(f"[bold]failing targets[/] {len(failing)}: {by_outcome}")
    table = Table("target", "network", "measured (UTC)", "outcome", "mechanism", "failure", box=None)
    for f in failing:
        outcome = Outcome(f["outcome"])
        table.add_row(
            escape(f["url"]),
            f"{f['probe_asn']} {f['probe_cc']}",
            _short(f["measured_at"]),
            f"[{_STYLE.get(outcome, 'dim')}]{escape(describe(outcome, confirmed=f['confirmed']))}[/]",
            escape(f["mechanism"] or ""),
            escape(f["failure"] or ""),
        )
    console.print(table)


def _upload_line(up: dict[str, Any]) -> str:
    from rich.markup import escape

    line = f"[bold]upload[/] {escape(up['collector'])}: {up['uploaded']} uploaded, {up['pending']} pending"
    if up["in_running_rounds"]:
        line += f" (+{up['in_running_rounds']} in the running round)"
    if up["failed"]:
        retry = f", next try {_short(up['next_attempt_at'])} UTC" if up["next_attempt_at"] else ""
        line += f", [yellow]{up['failed']} failed[/] (last: {escape(up['last_error'] or '')}{retry})"
    if up["oldest_pending_at"]:
        line += f"; oldest not uploaded {_short(up['oldest_pending_at'])} UTC"
    return line


def _round(r: RoundInfo) -> dict[str, Any]:
    started, ended = _aware(r.started_at), r.ended_at and _aware(r.ended_at)
    return {
        "id": r.id,
        "status": r.status,
        "started_at": iso_utc(started),
        "ended_at": iso_utc(ended) if ended else None,
        "duration_s": round((ended - started).total_seconds(), 3) if ended else None,
        "n_targets": r.n_targets,
        "n_measurements": r.n_measurements,
        "n_failed": r.n_failed,
        "n_errors": r.n_errors,
        "network_up": r.network_up,
        "control_reachable": r.control_reachable,
        "probe_asn": r.probe_asn,
        "probe_cc": r.probe_cc,
        "software_version": r.software_version,
    }


def _failing(f: FailingTarget) -> dict[str, Any]:
    doc = asdict(f)
    doc["measured_at"] = iso_utc(_aware(f.measured_at))
    return doc


def _aware(when: datetime) -> datetime:
    """Stored times are UTC; SQLite hands them back naive."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _short(iso: str) -> str:
    return iso.replace("T", " ").removesuffix("Z")


def _size(n: int | None) -> str:
    if n is None:
        return "size unknown"
    if n < 1024:
        return f"{n} B"
    size = n / 1024
    for unit in ("KiB", "MiB"):
        if size < 1024:
            return f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
