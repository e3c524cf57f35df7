"""The upload state of stored measurements: what is due for the collector, and what it said.

:class:`StoreUploads` is the store's :class:`~probe.uploadstate.UploadLedger`, the interface
the uploader (:mod:`probe.upload`) reads and records its state through; the composition roots
build it over the open store and hand it in. :func:`counts` says where the upload stands
(``probe status``, ``probe upload``).

One row of ``uploads`` per measurement the uploader has tried to send; no row means
*pending*. ``uploaded`` keeps the report and the id the collector acknowledged; ``failed``
keeps the attempts, the last error and when to try again (the uploader computes the
back-off; this module stores it).

Only measurements of **finished** rounds are due — ``complete``, or ``interrupted`` with the
batches a crash or a stop left committed — never those of a round still ``running``: its
batches are committed, but the round's own heartbeat (was the network up?) is decided only
when it ends, and uploading beside a round would share the volunteer's link with the
measurements whose timings are the evidence of throttling. Rounds that are collector
reports (``rounds.report_id`` set: received from other probes) are never due: a collector's
database is not re-uploaded.

Due measurements come oldest first (``measured_at``, then id), *limit* at a time; a run
pages on from the last one it got (:class:`~probe.uploadstate.Cursor`), so one run reads the
store's index once however many measurements were uploaded before. Every call is one short
transaction (:meth:`~measurements.store.store.Store.transaction` or ``snapshot``) and raises
:class:`~probe.errors.StorageError` when the database fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, tuple_, update

from measurements.store.tables import MeasurementRecord, Round, UploadRecord
from probe.uploadstate import Cursor, Due, Failed, Uploaded

if TYPE_CHECKING:
    from measurements.store.store import Store

__all__ = ["StoreUploads", "UploadCounts", "counts"]


@dataclass(frozen=True, slots=True)
class UploadCounts:
    """What ``probe status`` shows of the upload state."""

    pending: int
    """Measurements of finished rounds never tried."""
    in_running_rounds: int
    """Measurements of rounds still running (due once the round ends)."""
    failed: int
    failed_due: int
    """Failed ones whose back-off has run out (tried at the next upload)."""
    uploaded: int
    oldest_pending_at: datetime | None
    """The oldest measurement not uploaded yet (pending or failed)."""
    next_attempt_at: datetime | None
    """The earliest retry of a failed one."""
    last_error: str | None
    """The error of the most recent failed attempt."""


def _own_finished() -> Any:
    """Rounds whose measurements may be uploaded: this probe's (no report id), finished."""
    return and_(Round.status != "running", Round.report_id.is_(None))


class StoreUploads:
    """The :class:`~probe.uploadstate.UploadLedger` of *store*: its ``uploads`` table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def due(
        self, *, now: datetime, limit: int, after: Cursor | None = None, retry_all: bool = False
    ) -> list[Due]:
        """Up to *limit* measurements to send now (:meth:`~probe.uploadstate.UploadLedger.due`).

        Raises:
            StorageError: the database cannot be read.
        """
        m, u = MeasurementRecord, UploadRecord
        retry = u.state == "failed" if retry_all else and_(u.state == "failed", u.next_attempt_at <= now)
        stmt = (
            select(
                m.id,
                m.measurement_uid,
                m.round_id,
                m.test_name,
                m.measured_at,
                m.body,
                func.coalesce(u.attempts, 0),
            )
            .join(Round, Round.id == m.round_id)
            .outerjoin(u, u.measurement_id == m.id)
            .where(_own_finished(), or_(u.measurement_id.is_(None), retry))
            .order_by(m.measured_at, m.id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(tuple_(m.measured_at, m.id) > tuple_(after.measured_at, after.measurement_id))
        with self.store.snapshot("read measurements to upload") as conn:
            return [Due(*row) for row in conn.execute(stmt)]

    def mark_uploaded(self, done: Sequence[Uploaded], *, now: datetime) -> None:
        """Record that the collector has each of *done* (one transaction).

        Raises:
            StorageError: the database cannot be written.
        """
        rows = [
            _row(d.measurement_id, "uploaded", now, report_id=d.report_id, uid=d.collector_uid) for d in done
        ]
        if rows:
            with self.store.transaction("record uploads") as conn:
                _upsert(conn, rows)

    def mark_failed(self, failed: Sequence[Failed], *, now: datetime) -> None:
        """Record failed attempts (one transaction); a measurement already uploaded stays so.

        Raises:
            StorageError: the database cannot be written.
        """
        rows = [
            _row(
                f.measurement_id,
                "failed",
                now,
                attempts=f.attempts,
                error=f.error[:500],
                next_at=f.next_attempt_at,
                report_id=f.report_id,
            )
            for f in failed
        ]
        if rows:
            with self.store.transaction("record failed uploads") as conn:
                _upsert(conn, rows, keep_uploaded=True)

    def lift_waits(self, *, now: datetime) -> int:
        """Make due now every failed measurement that never reached the collector; return how many.

        Those the collector refused (a report id) keep their waits
        (:meth:`~probe.uploadstate.UploadLedger.lift_waits`).

        Raises:
            StorageError: the database cannot be written.
        """
        u = UploadRecord
        waiting = and_(u.state == "failed", u.report_id.is_(None), u.next_attempt_at > now)
        with self.store.transaction("record that the collector is back") as conn:
            return conn.execute(update(u).where(waiting).values(next_attempt_at=now)).rowcount


def _row(
    measurement_id: int,
    state: str,
    at: datetime,
    *,
    attempts: int = 0,
    error: str | None = None,
    next_at: datetime | None = None,
    report_id: str | None = None,
    uid: str | None = None,
) -> dict[str, Any]:
    return {"measurement_id": measurement_id, "state": state, "attempts": attempts, "last_error": error,
            "last_attempt_at": at, "next_attempt_at": next_at, "report_id": report_id,
            "collector_uid": uid}  # fmt: skip


def counts(store: Store, *, now: datetime) -> UploadCounts:
    """The upload state in numbers (one snapshot).

    Raises:
        StorageError: the database cannot be read.
    """
    m, u = MeasurementRecord, UploadRecord
    no_row = (
        select(Round.status, func.count(), func.min(m.measured_at))
        .select_from(m)
        .join(Round, Round.id == m.round_id)
        .outerjoin(u, u.measurement_id == m.id)
        .where(Round.report_id.is_(None), u.measurement_id.is_(None))
        .group_by(Round.status)
    )
    by_state = select(
        u.state,
        func.count(),
        func.count().filter(u.next_attempt_at <= now),
        func.min(u.next_attempt_at),
    ).group_by(u.state)
    oldest_failed = (
        select(func.min(m.measured_at)).join(u, u.measurement_id == m.id).where(u.state == "failed")
    )
    last_error = (
        select(u.last_error)
        .where(u.state == "failed")
        .order_by(u.last_attempt_at.desc(), u.measurement_id.desc())
        .limit(1)
    )
    with store.snapshot("read the upload state") as conn:
        pending = running = 0
        oldest: list[datetime] = []
        for status, n, first in conn.execute(no_row):
            if status == "running":
                running += n
            else:
                pending += n
                oldest.append(first)
        states = {state: (n, n_due, nxt) for state, n, n_due, nxt in conn.execute(by_state)}
        failed_first = conn.execute(oldest_failed).scalar()
        error = conn.execute(last_error).scalar()
    if failed_first is not None:
        oldest.append(failed_first)
    failed = states.get("failed", (0, 0, None))
    return UploadCounts(
        pending=pending,
        in_running_rounds=running,
        failed=failed[0],
        failed_due=failed[1],
        uploaded=states.get("uploaded", (0, 0, None))[0],
        oldest_pending_at=min(oldest) if oldest else None,
        next_attempt_at=failed[2],
        last_error=error,
    )


def _upsert(conn: Connection, rows: list[dict[str, Any]], *, keep_uploaded: bool = False) -> None:
    """Insert or replace the ``uploads`` rows of *rows* (with *keep_uploaded*, an ``uploaded``
    row is never turned back into ``failed``: a late failure of a re-send changes nothing)."""
    u = UploadRecord
    dialect = conn.dialect.name
    if dialect in ("sqlite", "postgresql"):
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt: Any = pg_insert(u)
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(u)
        columns = {c: stmt.excluded[c] for c in rows[0] if c != "measurement_id"}
        where = u.state != "uploaded" if keep_uploaded else None
        upsert = stmt.on_conflict_do_update(index_elements=["measurement_id"], set_=columns, where=where)
        conn.execute(upsert, rows)
        return
    # Other backends have no upsert: delete and insert (they are not expected to race).
    ids = [r["measurement_id"] for r in rows]
    if keep_uploaded:
        kept = set(
            conn.execute(
                select(u.measurement_id).where(u.measurement_id.in_(ids), u.state == "uploaded")
            ).scalars()
        )
        rows = [r for r in rows if r["measurement_id"] not in kept]
        ids = [r["measurement_id"] for r in rows]
    conn.execute(delete(u).where(u.measurement_id.in_(ids)))
    if rows:
        conn.execute(insert(u), rows)
