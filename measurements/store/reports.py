"""A collector's reports in the measurement store: one round per report, measurements stored once.

``probe collector serve`` writes what probes submit into the same schema as a probe's own
store, so every read command works over a fleet's database. Here:

* a report a probe opens is a round (``rounds.report_id``, unique), ``running`` while open
  and ``complete`` once closed or expired, with the network (``probe_asn``/``probe_cc``)
  the report was opened for; its ``started_at`` is the probe's ``test_start_time`` when it
  gave one (so rounds uploaded days late still sort by when they were measured), and its
  ``installation`` is ``NULL``: no probe's start-up clean-up ever touches it;
* a measurement is stored once per ``measurement_uid``: ``INSERT … ON CONFLICT
  (measurement_uid) DO NOTHING`` (PostgreSQL and SQLite), so two collectors, or two threads,
  storing the same re-sent measurement at once store it once and both acknowledge it; the
  round's counts grow only for a row really inserted;
* the network's row is written when a report opens (a report has one network); a
  measurement's ``probe_network_name`` names it when it was unnamed or named otherwise.

Report ids begin with the UTC time the collector opened them (``YYYYMMDDThhmmssZ``, OONI's
form), so :meth:`Reports.expire_reports` selects the expired ones by comparing ids as text,
with no column of its own.

Every call raises :class:`~probe.errors.StorageError` (one line) when the database fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Connection, bindparam, exists, insert, select, update

from measurements.store.rows import TARGET_METADATA
from measurements.store.store import Store, insert_ignore
from measurements.store.summary import is_failed, stored_row
from measurements.store.tables import MeasurementRecord, Network, Round, Target
from probe.errors import StorageError
from probe.model import OONIMeasurement

REPORT_ID_TIME: Final = "%Y%m%dT%H%M%SZ"
"""How a report id begins: the UTC time it was opened."""


class _Duplicate(Exception):
    """Raised inside a transaction to roll it back: the measurement was stored meanwhile."""


class Reports:
    """The collector's reports over an open :class:`~measurements.store.store.Store` (thread-safe).

    Implements :class:`probe.collector.reportstore.ReportStore`; returns its
    :class:`~probe.collector.reportstore.Submitted` answers as their values' names
    (``"stored"``, ``"duplicate"``, ``"unknown_report"``, ``"closed_report"``), which the
    collector maps back (the data side does not import the collector).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._target_ids: dict[str, int] = {}
        """URL → target id, of targets this process saw committed (targets are never deleted)."""
        self._names: dict[tuple[str, str], str] = {}
        """(ASN, CC) → the network name this process last wrote."""

    def open_report(
        self, report_id: str, *, started_at: datetime, probe_asn: str, probe_cc: str, software_version: str
    ) -> None:
        """Commit a new ``running`` round for *report_id*.

        Raises:
            StorageError: the database cannot be written (or the id exists already).
        """
        now = datetime.now(UTC)
        with self._writing(f"open report {report_id}") as conn:
            self._insert_round(conn, report_id, started_at, probe_asn, probe_cc, software_version, now)

    def submit(self, report_id: str, measurement: OONIMeasurement, *, expired: bool = False) -> str:
        """Store *measurement* in report *report_id*, unless its uid is stored already.

        Args:
            report_id: the report it is submitted to.
            measurement: validated, its ``measurement_uid`` final.
            expired: the report's lifetime is over (the caller reads it off the id): a new
                measurement is refused as if the report was closed; a duplicate is still
                acknowledged.

        Returns:
            ``"stored"``, ``"duplicate"`` (a measurement with this uid exists, in any report),
            ``"unknown_report"`` or ``"closed_report"``.

        Raises:
            StorageError: the database cannot be written.
        """
        row = self._row(measurement)
        learned: dict[str, Any] = {}
        with self._writing(f"store a measurement of report {report_id}") as conn:
            round_id, status, exists = conn.execute(
                _STATE, {"r": report_id, "u": measurement.measurement_uid}
            ).one()
            if exists:
                return "duplicate"
            if round_id is None:
                return "unknown_report"
            if status != "running" or expired:
                return "closed_report"
            if not self._insert(conn, round_id, row, measurement, learned):
                return "duplicate"
        self._learn(learned)
        return "stored"

    def submit_alone(
        self, report_id: str, measurement: OONIMeasurement, *, started_at: datetime, software_version: str
    ) -> tuple[str, str]:
        """Open report *report_id*, store *measurement* in it and close it, in one transaction.

        Returns:
            ``("stored", report_id)``, or ``("duplicate", the report id the uid is stored in)``
            with nothing written.

        Raises:
            StorageError: the database cannot be written.
        """
        row = self._row(measurement)
        now = datetime.now(UTC)
        m = measurement
        learned: dict[str, Any] = {}
        try:
            with self._writing(f"store a measurement in report {report_id}") as conn:
                if conn.execute(_STATE, {"r": "", "u": m.measurement_uid}).one()[2]:
                    raise _Duplicate
                round_id = self._insert_round(
                    conn, report_id, started_at, m.probe_asn, m.probe_cc, software_version, now
                )
                if not self._insert(conn, round_id, row, m, learned):
                    raise _Duplicate
                conn.execute(
                    update(Round).where(Round.id == round_id).values(status="complete", ended_at=now)
                )
        except _Duplicate:
            return "duplicate", self._report_of(m.measurement_uid)
        self._learn(learned)
        return "stored", report_id

    def close_report(self, report_id: str) -> bool:
        """Mark *report_id* complete (a closed one stays as it is); ``False`` when unknown.

        Raises:
            StorageError: the database cannot be written.
        """
        r = Round
        with self.store.transaction(f"close report {report_id}") as conn:
            if conn.execute(select(r.id).where(r.report_id == report_id)).first() is None:
                return False
            conn.execute(
                update(r)
                .where(r.report_id == report_id, r.status == "running")
                .values(status="complete", ended_at=datetime.now(UTC))
            )
        return True

    def expire_reports(self, opened_before: datetime) -> int:
        """Close every report still open that was opened before *opened_before*; how many.

        Raises:
            StorageError: the database cannot be written.
        """
        r = Round
        cutoff = opened_before.astimezone(UTC).strftime(REPORT_ID_TIME)
        with self.store.transaction("close expired reports") as conn:
            return conn.execute(
                update(r)
                .where(r.report_id.is_not(None), r.report_id < cutoff, r.status == "running")
                .values(status="complete", ended_at=datetime.now(UTC))
            ).rowcount

    # --- plumbing -----------------------------------------------------------------------------

    def _row(self, m: OONIMeasurement) -> dict[str, Any]:
        try:
            return stored_row(m, network_up=None)
        except ValueError as exc:
            raise StorageError(f"{self.store.name}: cannot store {m.measurement_uid}: {exc}") from exc

    def _report_of(self, uid: str) -> str:
        m = MeasurementRecord
        stmt = (
            select(Round.report_id)
            .select_from(m)
            .join(Round, m.round_id == Round.id)
            .where(m.measurement_uid == uid)
        )
        with self.store.snapshot("read a measurement's report") as conn:
            return conn.execute(stmt).scalar() or ""

    @staticmethod
    def _insert_round(
        conn: Connection,
        report_id: str,
        started_at: datetime,
        asn: str,
        cc: str,
        software_version: str,
        now: datetime,
    ) -> int:
        values = {
            "started_at": started_at, "status": "running", "probe_asn": asn, "probe_cc": cc,
            "software_version": software_version, "report_id": report_id, "installation": None,
        }  # fmt: skip
        (round_id,) = conn.execute(insert(Round).values(values)).inserted_primary_key or (None,)
        assert isinstance(round_id, int)
        network = {"asn": asn, "cc": cc, "name": "", "first_seen_at": now, "last_seen_at": now}
        conn.execute(insert_ignore(conn, Network.__table__, ["asn", "cc"]), network)
        conn.execute(update(Network).where(Network.asn == asn, Network.cc == cc).values(last_seen_at=now))
        return round_id

    def _insert(
        self,
        conn: Connection,
        round_id: int,
        row: dict[str, Any],
        m: OONIMeasurement,
        learned: dict[str, Any],
    ) -> bool:
        """Insert *row* into round *round_id* unless its uid exists; whether it was inserted.

        What it wrote that the caches may keep once the transaction commits goes in *learned*.
        """
        target_id = self._target_ids.get(m.target)
        if target_id is None:
            target_id = _target_id(conn, m.target)
            learned["target"] = (m.target, target_id)
        stmt = insert_ignore(conn, MeasurementRecord.__table__, ["measurement_uid"])
        row = {**row, "round_id": round_id, "target_id": target_id}
        if conn.execute(stmt.values(row).returning(MeasurementRecord.id)).first() is None:
            return False  # RETURNING, not rowcount: psycopg's rowcount of this INSERT is not 1
        conn.execute(_COUNT, {"round": round_id, "failed": int(is_failed(row))})
        network, name = (m.probe_asn, m.probe_cc), m.probe_network_name
        if name and self._names.get(network) != name:
            n = Network  # matches no row (and locks none) when the name is already this
            conn.execute(
                update(n).where(n.asn == network[0], n.cc == network[1], n.name != name).values(name=name)
            )
            learned["name"] = (network, name)
        return True

    def _learn(self, learned: dict[str, Any]) -> None:
        """Keep what a committed transaction wrote: target ids never change, names rarely."""
        if "target" in learned:
            url, target_id = learned["target"]
            if len(self._target_ids) >= _CACHED:
                self._target_ids.clear()
            self._target_ids[url] = target_id
        if "name" in learned:
            network, name = learned["name"]
            self._names[network] = name

    @contextmanager
    def _writing(self, action: str) -> Iterator[Connection]:
        """:meth:`Store.transaction`; a failure forgets the caches (a database restored from a
        backup, or edited by hand, may no longer hold what they say)."""
        try:
            with self.store.transaction(action) as conn:
                yield conn
        except StorageError:
            self._target_ids.clear()
            self._names.clear()
            raise


def _target_id(conn: Connection, url: str) -> int:
    """The id of target *url*, inserted when new (no test-list metadata: a collector has none)."""
    t = Target
    found = conn.execute(select(t.id).where(t.url == url)).scalar()
    if found is None:
        new = {"url": url, **{k: "" for k in TARGET_METADATA}, "first_seen_at": datetime.now(UTC)}
        stmt = insert_ignore(conn, t.__table__, ["url"]).values(new).returning(t.id)
        found = conn.execute(stmt).scalar()
        if found is None:  # inserted meanwhile by another transaction
            found = conn.execute(select(t.id).where(t.url == url)).scalar_one()
    assert isinstance(found, int)
    return found


_STATE: Final = select(
    select(Round.id).where(Round.report_id == bindparam("r")).scalar_subquery(),
    select(Round.status).where(Round.report_id == bindparam("r")).scalar_subquery(),
    exists().where(MeasurementRecord.measurement_uid == bindparam("u")),
)
"""A report's round and status (``NULL`` when unknown) and whether a uid is stored: one round trip."""
_COUNT: Final = (
    update(Round)
    .where(Round.id == bindparam("round"))
    .values(n_measurements=Round.n_measurements + 1, n_failed=Round.n_failed + bindparam("failed"))
)
_CACHED: Final = 100_000
"""Target ids kept (a few MB); past it the cache starts again."""
