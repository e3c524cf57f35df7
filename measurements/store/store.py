"""The measurement store: write a round atomically, read measurements back with filters.

``open_store(None)`` is SQLite at the platform data directory; any SQLAlchemy URL works
otherwise (:mod:`measurements.store.engine` makes the connections: WAL mode and a busy timeout on
SQLite, psycopg 3 for ``postgresql://…``).

A round is a few transactions: :meth:`Store.begin_round` commits a ``running`` row (the
heartbeat that the probe was up), :meth:`Store.add_measurements` stores each batch of
finished measurements (with the round's counts), and :meth:`Store.finish_round` marks the
round ``complete`` with its heartbeat, so the round's memory does not grow with its list. A
``kill -9`` at any moment leaves every measurement whole or absent, and a round that did not
complete says so: it stays ``running`` (the next start marks it ``interrupted``) with the
batches committed before the kill, which its ``n_measurements`` counts.

Rounds have owners, because one database may be shared: each round records the
:class:`~measurements.store.installation.Installation` that began it and is locked while in flight,
so :meth:`Store.mark_interrupted`, the clean-up a daemon runs at start-up, marks only this
installation's rounds that no process still holds (:mod:`measurements.store.installation`).

Every failure of the database (bad URL, missing driver, unreadable, read-only, full, not a
database) surfaces as one :class:`~probe.errors.StorageError` whose one-line message names
the database and the problem.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Update,
    bindparam,
    delete,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from measurements.store import migrations
from measurements.store.engine import create_engine_for, reason
from measurements.store.installation import Installation, RoundLock, database_key
from measurements.store.queries import AnySelect, failing_query, measurement_query
from measurements.store.rows import TARGET_METADATA, FailingTarget, MeasurementRow, RoundInfo
from measurements.store.summary import NETWORK_INDEPENDENT, is_failed, stored_row
from measurements.store.tables import MeasurementRecord, Network, Round, Target
from measurements.store.uploadlock import HeldLock, lock_uploads
from probe.errors import StorageError
from probe.model import AnyMeasurement
from probe.outcome import Outcome
from probe.rounds.roundstore import Heartbeat, TargetInfo, heartbeat_of

__all__ = [
    "FailingTarget",
    "MeasurementRow",
    "RoundInfo",
    "Store",
    "TargetInfo",
    "insert_ignore",
    "open_store",
]

_CHUNK = 500  # keys per IN (...) list and rows per prune transaction step: well under SQLite's limits


def open_store(url: str | None = None, *, installation: Installation | None = None) -> Store:
    """Open (creating and migrating as needed) the store at *url*.

    Args:
        url: a SQLAlchemy database URL; ``None`` for SQLite at
            :func:`~measurements.store.engine.default_path`.
        installation: the owner of the rounds this store begins; by default
            :meth:`Installation.load`, the first time a round is begun or cleaned up (a
            store that only reads never touches the data directory).

    Returns:
        A ready :class:`Store`, its schema at the newest migration.

    Raises:
        StorageError: the URL is invalid, its driver is missing, or the database cannot be
            opened, read or migrated (one line naming the database and the problem).
    """
    engine, name = create_engine_for(url)
    store = Store(engine, name, installation=installation)
    try:
        with store._guard("open"):
            migrations.upgrade(engine)
    except Exception:
        engine.dispose()
        raise
    return store


class Store:
    """A handle on one measurement database. Thread-safe; cheap to keep open for a daemon's life.

    It is the :class:`~probe.rounds.roundstore.RoundStore` a round writes through: its calls block,
    and the round makes them in a worker thread, off its event loop.
    """

    def __init__(self, engine: Engine, name: str, *, installation: Installation | None = None) -> None:
        self._engine = engine
        self.name = name
        """The database as shown in messages: the SQLite file, or the URL without password."""
        self._installation = installation
        self._key = database_key(engine.url)
        self._in_flight: dict[int, RoundLock] = {}
        """The rounds this store began and has not finished or given up, with their locks."""

    @property
    def installation(self) -> Installation:
        """The owner of the rounds this store begins (:meth:`Installation.load` unless given).

        Raises:
            StorageError: the installation cannot be loaded.
        """
        if self._installation is None:
            self._installation = Installation.load()
        return self._installation

    def lock_uploads(self) -> HeldLock | None:
        """Take this database's upload lock without waiting (:mod:`~measurements.store.uploadlock`:
        beside a SQLite file, an advisory lock in PostgreSQL).

        Returns:
            The held lock (release it, or use it as a context manager), or ``None``: another
            process is uploading from this database.

        Raises:
            StorageError: the lock cannot be taken.
        """
        return lock_uploads(self._engine, self.installation)

    def close(self) -> None:
        """Release every connection.

        The store stays usable: the next call opens fresh connections. The daemon relies on
        this after a write failure (a SQLite connection that met a read-only file stays so).
        Rounds still in flight are given up (unlocked, left ``running``): a clean-up may
        mark them interrupted, and :meth:`finish_round` still completes them.
        """
        self._engine.dispose()
        for round_id in list(self._in_flight):
            self._release(round_id)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ------------------------------------------------------------------------------

    def begin_round(
        self,
        *,
        started_at: datetime | None = None,
        probe_asn: str = "AS0",
        probe_cc: str = "ZZ",
        software_version: str = "",
        config_digest: str = "",
        n_targets: int = 0,
    ) -> int:
        """Commit a new ``running`` round of this :attr:`installation` and return its id.

        The round stays locked as in flight until :meth:`finish_round` stores it or
        :meth:`mark_interrupted` gives it up (or this process ends).

        Raises:
            StorageError: the database or the round's lock file cannot be written.
        """
        owner = self.installation
        values = {
            "started_at": started_at or datetime.now(UTC),
            "status": "running",
            "probe_asn": probe_asn,
            "probe_cc": probe_cc,
            "software_version": software_version,
            "config_digest": config_digest,
            "n_targets": n_targets,
            "installation": owner.id,
        }
        locked: list[RoundLock] = []
        try:
            with self._write("start a round") as conn:
                (round_id,) = conn.execute(insert(Round).values(values)).inserted_primary_key or (None,)
                assert isinstance(round_id, int)
                # Locked before the commit: no clean-up ever sees this round running and unlocked.
                lock = self.installation.lock_round(self._key, round_id)
                if lock is None:  # a fresh id: only a stale file of a deleted round could be held
                    raise StorageError(f"{self.name}: cannot start a round: its lock is held elsewhere")
                locked.append(lock)
        except BaseException:
            for lock in locked:
                lock.release()
            raise
        self._in_flight[round_id] = locked[0]
        return round_id

    def add_measurements(
        self, round_id: int, measurements: Sequence[AnyMeasurement], *, targets: Iterable[TargetInfo] = ()
    ) -> None:
        """Store a batch of round *round_id*'s measurements in one transaction; the round stays open.

        Each measurement's ``outcome`` is written as if the network was up; :meth:`finish_round`
        turns the ones the heartbeat decides into ``shutdown`` when it was not. The round's
        ``n_measurements`` and ``n_failed`` count the batch in the same transaction, so a
        round a crash left behind says how much of it was stored.

        Args:
            round_id: from :meth:`begin_round`; not complete.
            measurements: finished measurements (their ``probe_ip`` is never stored).
            targets: test-list metadata for the batch's URLs (see :meth:`finish_round`).

        Raises:
            StorageError: the round does not exist or is already complete, a measurement has
                a malformed start time, or the database cannot be written. Nothing of the
                batch is stored then; the call can be retried.
        """
        action = f"write round {round_id}"
        rows = self._rows(measurements, network_up=None, action=action)
        with self._write(action) as conn:
            self._check_open(conn, round_id, action)
            _store_rows(conn, round_id, rows, measurements, targets, datetime.now(UTC))

    def finish_round(
        self,
        round_id: int,
        measurements: Sequence[AnyMeasurement] = (),
        *,
        targets: Iterable[TargetInfo] = (),
        heartbeat: Heartbeat | None = None,
        ended_at: datetime | None = None,
    ) -> None:
        """Store the last *measurements* and mark round *round_id* complete, in one transaction.

        Args:
            round_id: from :meth:`begin_round`. A round another process marked
                ``interrupted`` meanwhile is completed all the same: its data is genuine.
            measurements: the round's measurements not yet stored with
                :meth:`add_measurements` (all of them, for a round written at once).
            targets: test-list metadata (category, date added, source, notes) for the
                URLs; unknown URLs get none.
            heartbeat: the round's heartbeat, over every batch; derived from *measurements*
                when omitted (right only when they are the whole round). Each measurement's
                ``outcome`` depends on its ``network_up``: a round whose network was down has
                its stored outcomes updated here, in one statement.
            ended_at: defaults to now.

        Raises:
            StorageError: the round does not exist or is already complete, a measurement
                has a malformed start time, or the database cannot be written. Nothing of
                this call is stored then; the call can be retried.
        """
        action = f"write round {round_id}"
        beat = heartbeat or heartbeat_of(measurements)
        rows = self._rows(measurements, network_up=beat.network_up, action=action)
        ended = ended_at or datetime.now(UTC)
        with self._write(action) as conn:
            self._check_open(conn, round_id, action)
            _store_rows(conn, round_id, rows, measurements, targets, ended)
            if beat.network_up is False:  # "network shut down" is known only now
                m = MeasurementRecord
                conn.execute(
                    update(m)
                    .where(m.round_id == round_id, m.outcome.not_in(NETWORK_INDEPENDENT))
                    .values(outcome=Outcome.SHUTDOWN.value)
                )
            conn.execute(
                update(Round)
                .where(Round.id == round_id)
                .values(
                    status="complete",
                    ended_at=ended,
                    n_errors=beat.n_errors,
                    network_up=beat.network_up,
                    control_reachable=beat.control_reachable,
                )
            )
        self._release(round_id)

    def _rows(
        self, measurements: Sequence[AnyMeasurement], *, network_up: bool | None, action: str
    ) -> list[dict[str, Any]]:
        try:
            return [stored_row(m, network_up=network_up) for m in measurements]
        except ValueError as exc:
            raise StorageError(f"{self.name}: cannot {action}: {exc}") from exc

    def _check_open(self, conn: Connection, round_id: int, action: str) -> None:
        status = conn.execute(select(Round.status).where(Round.id == round_id)).scalar()
        if status is None or status == "complete":
            problem = "no such round" if status is None else "the round is already complete"
            raise StorageError(f"{self.name}: cannot {action}: {problem}")

    def mark_interrupted(self, round_id: int | None = None) -> int:
        """Mark rounds left ``running`` as ``interrupted`` and return how many were.

        With *round_id*: that round, which its caller gives up (a shutdown that cannot wait
        for it, a round that could not be stored). This store stops holding it in flight
        even when the database cannot be written, so the next clean-up marks it.

        Without: the clean-up after a crash, which a daemon runs at start-up and between
        rounds. It marks this :attr:`installation`'s rounds that no other process or store
        holds in flight: never another probe's in a shared database, nor one that
        ``probe run`` is measuring beside the daemon. Rounds this store began and has not
        finished are marked too, so call it when this store has no round under way. Rounds
        with no installation (begun by a reachprobe older than schema revision 0003, whose
        upgrade marked those running then) are never marked: nothing tells whether they are
        still in flight.

        Raises:
            StorageError: the database cannot be written, or the installation cannot be loaded.
        """
        if round_id is not None:
            try:
                with self._write("mark interrupted rounds") as conn:
                    return conn.execute(_interrupt(Round.id == round_id)).rowcount
            finally:
                self._release(round_id)
        owner = self.installation
        mine = select(Round.id).where(Round.status == "running", Round.installation == owner.id)
        taken: list[RoundLock] = []
        try:
            with self._write("mark interrupted rounds") as conn:
                for rid in conn.execute(mine).scalars().all():
                    lock = self._in_flight.pop(rid, None) or owner.lock_round(self._key, rid)
                    if lock is not None:
                        taken.append(lock)
                if not taken:
                    return 0
                # Still "running" re-checked here: a round finished since the SELECT stays complete.
                return conn.execute(_interrupt(Round.id.in_([lock.round_id for lock in taken]))).rowcount
        finally:
            for lock in taken:
                lock.release()

    def prune(self, older_than: datetime, *, stop: Callable[[], bool] | None = None) -> int:
        """Delete measurements taken before *older_than*, and rounds left without any.

        Deletes in small transactions, so a daemon's round never waits long behind it, and
        a shutdown neither: *stop* is asked between two of them, and once it says true the
        prune ends there (what is left goes at the next prune).
        The SQLite file keeps its size (pages are reused); ``VACUUM`` shrinks it.

        Returns:
            The number of measurements deleted.

        Raises:
            StorageError: the database cannot be written.
        """
        m = MeasurementRecord
        doomed = select(m.id).where(m.measured_at < older_than).limit(_CHUNK)
        total = 0
        while True:
            with self._write("prune old measurements") as conn:
                n = conn.execute(delete(m).where(m.id.in_(doomed))).rowcount
            total += n
            if n < _CHUNK:
                break
            if stop is not None and stop():
                return total
        empty = ~select(m.id).where(m.round_id == Round.id).exists()
        with self._write("prune old rounds") as conn:
            conn.execute(delete(Round).where(Round.started_at < older_than, Round.status != "running", empty))
        return total

    # --- reading ------------------------------------------------------------------------------

    def iter_measurements(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        target: str | None = None,
        asn: str | int | None = None,
        with_body: bool = False,
        batch: int = 1000,
    ) -> Generator[MeasurementRow, None, None]:
        """Stream measurements in time order, in constant memory, from one consistent snapshot.

        Args:
            since: measurements at or after this instant (naive means UTC).
            until: measurements before this instant.
            target: only this exact URL.
            asn: only this network: ``"AS1234"``, ``"1234"`` or ``1234``.
            with_body: also fetch the OONI JSON (for JSONL); otherwise ``body`` is ``None``.
            batch: rows fetched per round trip (a server-side cursor on PostgreSQL).

        Raises:
            StorageError: the database cannot be read (also while iterating).
        """
        stmt = measurement_query(since=since, until=until, target=target, asn=asn, with_body=with_body)
        make = MeasurementRow._make
        for row in self.stream(stmt, batch=batch):
            yield make(row)

    def stream(self, stmt: AnySelect, *, batch: int = 1000) -> Generator[Sequence[Any], None, None]:
        """Run a SELECT over this store's tables and stream its rows from one snapshot.

        Constant memory: *batch* rows at a time (a server-side cursor on PostgreSQL).

        Raises:
            StorageError: the database cannot be read (also while iterating).
        """
        with (
            self._guard("read measurements"),
            self._engine.connect() as conn,
            conn.execution_options(yield_per=batch).execute(stmt) as result,
        ):
            for rows in result.partitions():  # a list per batch: cheaper than SQLAlchemy's row-at-a-time
                yield from rows

    @contextmanager
    def snapshot(self, action: str = "read measurements") -> Iterator[Connection]:
        """A read transaction in which every SELECT sees the same snapshot of the database.

        SQLite: a deferred ``BEGIN`` (the snapshot is taken at the first read); PostgreSQL:
        ``REPEATABLE READ``. Several reads that must agree (rounds, the targets they name,
        their measurements) go in one. Keep it short: on SQLite, no checkpoint can move past
        an open read transaction, so the WAL file grows with every write while it lasts.

        Raises:
            StorageError: the database cannot be read (*action* names it in the message).
        """
        with self._guard(action), self._engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def find_measurements(self, uid: str, *, limit: int = 2) -> list[MeasurementRow]:
        """The measurement whose ``measurement_uid`` is *uid*, else up to *limit* whose id starts with it.

        Rows come with their OONI JSON body, in time order. ``probe show`` takes one match
        and calls more than one ambiguous.

        Raises:
            StorageError: the database cannot be read.
        """
        m = MeasurementRecord
        stmt = measurement_query(with_body=True)
        with self._guard("read measurements"), self._engine.connect() as conn:
            rows = conn.execute(stmt.where(m.measurement_uid == uid)).all()
            if not rows:
                prefix = m.measurement_uid.startswith(uid, autoescape=True)  # "_" is in every id
                rows = conn.execute(stmt.where(prefix).limit(limit)).all()
        return [MeasurementRow._make(row) for row in rows]

    def last_rounds(self, n: int = 10) -> list[RoundInfo]:
        """The *n* most recently started rounds, newest first.

        Raises:
            StorageError: the database cannot be read.
        """
        columns = [Round.__table__.c[f.name] for f in fields(RoundInfo)]
        stmt = select(*columns).order_by(Round.started_at.desc(), Round.id.desc()).limit(n)
        with self._guard("read rounds"), self._engine.connect() as conn:
            return [RoundInfo(**row._asdict()) for row in conn.execute(stmt)]

    def failing_targets(self, *, since: datetime | None = None) -> list[FailingTarget]:
        """Targets whose latest measurement (per network) was not reachable, by its outcome.

        Args:
            since: only consider measurements from then on (keeps ``probe status`` fast on
                a large store, and forgets targets no longer measured).

        Raises:
            StorageError: the database cannot be read.
        """
        with self._guard("read failing targets"), self._engine.connect() as conn:
            return [FailingTarget(**row._asdict()) for row in conn.execute(failing_query(since=since))]

    def latest_targets(self, *, since: datetime | None = None) -> list[FailingTarget]:
        """The latest measurement of every (target, network), with its outcome (``probe report``).

        Args:
            since: only consider measurements from then on.

        Raises:
            StorageError: the database cannot be read.
        """
        stmt = failing_query(since=since, only_failing=False)
        with self._guard("read the latest measurements"), self._engine.connect() as conn:
            return [FailingTarget(**row._asdict()) for row in conn.execute(stmt)]

    def size_bytes(self) -> int | None:
        """The database's size on disk (SQLite file + WAL; PostgreSQL database), ``None`` if unknown.

        Raises:
            StorageError: the database cannot be read.
        """
        dialect = self._engine.dialect.name
        if dialect == "sqlite":
            path = self._engine.url.database or ""
            return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.isfile(p))
        if dialect == "postgresql":
            with self._guard("read the database size"), self._engine.connect() as conn:
                return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
        return None

    # --- plumbing -----------------------------------------------------------------------------

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Translate every database failure inside into one :class:`StorageError`."""
        try:
            yield
        except StorageError:
            raise
        except (SQLAlchemyError, OSError, migrations.UnknownRevision) as exc:
            raise StorageError(f"{self.name}: cannot {action}: {reason(exc)}") from exc

    @contextmanager
    def transaction(self, action: str) -> Iterator[Connection]:
        """A write transaction for the modules that store derived data (flags, synthetic rounds).

        *action* names it in the :class:`StorageError` raised on any database failure
        ("cannot store flags: …"); everything inside commits together or not at all.
        """
        with self._write(action) as conn:
            yield conn

    def _release(self, round_id: int) -> None:
        lock = self._in_flight.pop(round_id, None)
        if lock is not None:
            lock.release()

    @contextmanager
    def _write(self, action: str) -> Iterator[Connection]:
        """A write transaction (SQLite: ``BEGIN IMMEDIATE``, so it never fails half-way on a lock)."""
        with self._guard(action), self._engine.connect() as conn:
            conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
            with conn.begin():
                yield conn


def _interrupt(which: ColumnElement[bool]) -> Update:
    """``UPDATE rounds SET status = 'interrupted'`` for the rounds *which* selects, if still running."""
    return update(Round).where(Round.status == "running", which).values(status="interrupted")


def _store_rows(
    conn: Connection,
    round_id: int,
    rows: list[dict[str, Any]],
    measurements: Sequence[AnyMeasurement],
    targets: Iterable[TargetInfo],
    now: datetime,
) -> None:
    """Insert *rows* (of *measurements*) into round *round_id*, their targets and networks, and
    count them on the round's row."""
    meta = {t.url: t for t in targets}
    for row in rows:
        meta.setdefault(row["input"], TargetInfo(row["input"]))
    ids = _target_ids(conn, meta, now) if meta else {}
    _record_networks(conn, {(m.probe_asn, m.probe_cc): m.probe_network_name for m in measurements}, now)
    if not rows:
        return
    for row in rows:
        row["round_id"], row["target_id"] = round_id, ids[row["input"]]
    conn.execute(insert(MeasurementRecord), rows)
    r = Round
    conn.execute(
        update(r)
        .where(r.id == round_id)
        .values(n_measurements=r.n_measurements + len(rows), n_failed=r.n_failed + sum(map(is_failed, rows)))
    )


def _target_ids(conn: Connection, meta: dict[str, TargetInfo], now: datetime) -> dict[str, int]:
    """Ids of the URLs in *meta*: new ones inserted, metadata refreshed where *meta* has some."""
    t, urls = Target, list(meta)
    new = [{"url": u, **{k: getattr(m, k) for k in TARGET_METADATA}, "first_seen_at": now}
           for u, m in meta.items()]  # fmt: skip
    if new:
        conn.execute(insert_ignore(conn, t.__table__, ["url"]), new)
    known = [
        {"u": u, **{f"v_{k}": getattr(m, k) for k in TARGET_METADATA}}
        for u, m in meta.items()
        if m.has_metadata
    ]
    if known:
        changed = or_(*(t.__table__.c[k] != bindparam(f"v_{k}") for k in TARGET_METADATA))
        stmt = update(t).where(t.url == bindparam("u"), changed)
        conn.execute(stmt.values({k: bindparam(f"v_{k}") for k in TARGET_METADATA}), known)
    ids: dict[str, int] = {}
    for i in range(0, len(urls), _CHUNK):
        ids.update(
            (url, id_)
            for url, id_ in conn.execute(select(t.url, t.id).where(t.url.in_(urls[i : i + _CHUNK])))
        )
    return ids


def _record_networks(conn: Connection, networks: dict[tuple[str, str], str], now: datetime) -> None:
    """Insert new (ASN, country) pairs; refresh ``last_seen_at`` (and the name, when known) of all."""
    n = Network
    for (asn, cc), name in networks.items():
        row = {"asn": asn, "cc": cc, "name": name, "first_seen_at": now, "last_seen_at": now}
        conn.execute(insert_ignore(conn, n.__table__, ["asn", "cc"]), row)
        fresh: dict[str, Any] = {"last_seen_at": now, **({"name": name} if name else {})}
        conn.execute(update(n).where(n.asn == asn, n.cc == cc).values(fresh))


def insert_ignore(conn: Connection, table: Any, keys: list[str]) -> Any:
    """``INSERT … ON CONFLICT (keys) DO NOTHING``: safe when two probes share a PostgreSQL database."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=keys)
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)
    return insert(table)  # other backends: writers are not expected to race
