"""The dashboard's reads: SQLAlchemy Core SELECTs over the store's tables, narrowed by :class:`Filters`.

Each function takes a connection (one :meth:`~measurements.store.store.Store.snapshot`, so a page's
reads agree) and returns plain rows. They are chosen to stay fast on millions of measurements:
the latest state reads the ``(target_id, probe_asn, measured_at)`` index; the daily totals
come from the ``rounds`` table (one row per round) unless a target or category narrows them;
the daily anomalies read only blocked rows (the ``outcome`` index).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from sqlalchemy import Connection, and_, func, select, true

from measurements.store.queries import AnySelect, measurement_query
from measurements.store.rows import MeasurementRow
from measurements.store.tables import MeasurementRecord, Network, Round, Target
from measurements.views.dashboard.filters import Filters

BLOCKED: Final = ("blocked.confirmed", "blocked.anomaly")


@dataclass(frozen=True, slots=True)
class Latest:
    """The latest measurement of one (target, network) within the filters."""

    measurement_uid: str
    url: str
    category_code: str
    probe_asn: str
    probe_cc: str
    measured_at: datetime
    outcome: str
    mechanism: str | None
    confirmed: str | None
    failure: str | None


@dataclass(frozen=True, slots=True)
class NetworkInfo:
    """A network the store has measurements from."""

    asn: str
    cc: str
    name: str
    first_seen_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class DayCount:
    """One UTC day: measurements, and how many of them were blocked (anomaly, confirmed)."""

    day: date
    measurements: int
    anomalies: int
    confirmed: int


def narrowed(stmt: AnySelect, f: Filters, *, time: bool = True) -> AnySelect:
    """*stmt* (over ``measurements`` joined with ``targets``) narrowed by *f*."""
    m, t = MeasurementRecord, Target
    if time and f.since is not None:
        stmt = stmt.where(m.measured_at >= f.since)
    if time and f.until is not None:
        stmt = stmt.where(m.measured_at < f.until)
    if f.asn is not None:
        stmt = stmt.where(m.probe_asn == f.asn)
    if f.target is not None:
        stmt = stmt.where(m.target_id == select(t.id).where(t.url == f.target).scalar_subquery())
    if f.category is not None:
        stmt = stmt.where(m.target_id.in_(select(t.id).where(t.category_code == f.category)))
    if f.outcome is not None:
        stmt = stmt.where(_outcome_is(f.outcome))
    return stmt


def _outcome_is(wanted: str) -> Any:
    m = MeasurementRecord
    if wanted in ("blocked", "no_verdict"):
        return m.outcome.startswith(wanted + ".")
    return m.outcome == wanted


def latest(conn: Connection, f: Filters) -> list[Latest]:
    """The latest measurement of every (target, network) in *f*'s range (outcome filter after).

    One index seek per (target, network) pair, not an aggregate over every row: for each
    target and each network the store knows, ``ORDER BY measured_at DESC LIMIT 1`` on the
    ``(target_id, probe_asn, measured_at)`` index (a pair never measured costs one empty seek).
    The rows' ``max(measured_at)`` grouped over a million measurements reads the whole index
    (~0.2 s); the seeks take milliseconds.
    """
    m, t, n = MeasurementRecord, Target, Network
    pair_targets = select(t.id)
    if f.target is not None:
        pair_targets = pair_targets.where(t.url == f.target)
    if f.category is not None:
        pair_targets = pair_targets.where(t.category_code == f.category)
    pt = pair_targets.subquery()
    asns = select(n.asn).distinct()
    if f.asn is not None:
        asns = asns.where(n.asn == f.asn)
    pa = asns.subquery()
    seek = select(m.id).where(m.target_id == pt.c.id, m.probe_asn == pa.c.asn)
    if f.since is not None:
        seek = seek.where(m.measured_at >= f.since)
    if f.until is not None:
        seek = seek.where(m.measured_at < f.until)
    newest = seek.order_by(m.measured_at.desc(), m.id.desc()).limit(1).scalar_subquery()
    ids = select(newest).select_from(pt).join(pa, true())
    stmt = (
        select(
            m.measurement_uid,
            t.url,
            t.category_code,
            m.probe_asn,
            m.probe_cc,
            m.measured_at,
            m.outcome,
            m.mechanism,
            m.confirmed,
            func.coalesce(m.dns_failure, m.http_failure).label("failure"),
        )
        .join_from(m, t, m.target_id == t.id)
        .where(m.id.in_(ids))
    )
    if f.outcome is not None:
        stmt = stmt.where(_outcome_is(f.outcome))
    return [Latest(**row._asdict()) for row in conn.execute(stmt)]


def run_start(conn: Connection, url: str, asn: str, at: datetime) -> datetime | None:
    """When the run of blocked outcomes that ends with the measurement at *at* began (its first one).

    Two reads on the ``(target_id, probe_asn, measured_at)`` index: the last measurement before
    *at* that was not blocked, then the first after it.
    """
    m, t = MeasurementRecord, Target
    series = and_(m.target_id == select(t.id).where(t.url == url).scalar_subquery(), m.probe_asn == asn)
    # ORDER BY … LIMIT 1, not max()/min(): SQLite then walks the index from *at* and stops at once.
    last_other = (
        select(m.measured_at)
        .where(series, m.measured_at <= at, m.outcome.not_in(BLOCKED))
        .order_by(m.measured_at.desc())
        .limit(1)
    )
    stop = conn.execute(last_other).scalar()
    first = select(m.measured_at).where(series, m.measured_at <= at).order_by(m.measured_at).limit(1)
    if stop is not None:
        first = first.where(m.measured_at > stop)
    value = conn.execute(first).scalar()
    return value if isinstance(value, datetime) else None


def networks(conn: Connection) -> dict[str, NetworkInfo]:
    """Every network measured from, by ASN (a network seen in two countries: the latest)."""
    n = Network
    stmt = select(n.asn, n.cc, n.name, n.first_seen_at, n.last_seen_at).order_by(n.last_seen_at)
    return {row.asn: NetworkInfo(*row) for row in conn.execute(stmt)}


def targets(conn: Connection) -> list[tuple[str, str]]:
    """Every target measured: ``(url, category_code)``, by URL."""
    return [
        (url, cat) for url, cat in conn.execute(select(Target.url, Target.category_code).order_by(Target.url))
    ]


def daily(conn: Connection, f: Filters) -> list[DayCount]:
    """Measurements, anomalies and confirmed blocks per UTC day in *f*, oldest first.

    Totals come from the rounds' counts when no target, category or outcome narrows them (a
    round is one row; a year of hourly rounds on four networks is 35,000 rows, not a million).
    """
    m, r = MeasurementRecord, Round
    totals: dict[date, int] = {}
    if f.target is None and f.category is None and f.outcome is None:
        day = func.date(r.started_at)
        stmt = select(day, func.sum(r.n_measurements)).group_by(day)
        if f.since is not None:
            stmt = stmt.where(r.started_at >= f.since)
        if f.until is not None:
            stmt = stmt.where(r.started_at < f.until)
        if f.asn is not None:
            stmt = stmt.where(r.probe_asn == f.asn)
    else:
        day = func.date(m.measured_at)
        stmt = narrowed(select(day, func.count()).select_from(m), f).group_by(day)
    for when, n in conn.execute(stmt):
        totals[_day(when)] = int(n or 0)
    blocked: dict[date, list[int]] = {}
    day = func.date(m.measured_at)
    stmt = narrowed(select(day, m.outcome, func.count()).select_from(m), f).where(m.outcome.in_(BLOCKED))
    for when, outcome, n in conn.execute(stmt.group_by(day, m.outcome)):
        counts = blocked.setdefault(_day(when), [0, 0])
        counts[outcome == "blocked.confirmed"] += n
    return [
        DayCount(d, totals.get(d, 0), *blocked.get(d, (0, 0))) for d in sorted(totals.keys() | blocked.keys())
    ]


def _day(value: object) -> date:
    """SQLite's ``date()`` is text, PostgreSQL's a date."""
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def listing(conn: Connection, f: Filters, *, limit: int, offset: int = 0) -> list[Any]:
    """Measurements in *f*, newest first (:class:`~measurements.store.rows.MeasurementRow` columns)."""
    m = MeasurementRecord
    stmt = narrowed(measurement_query(), f).order_by(None).order_by(m.measured_at.desc(), m.id.desc())
    return list(conn.execute(stmt.limit(limit).offset(offset)))


def measurement(conn: Connection, uid: str) -> MeasurementRow | None:
    """The measurement whose ``measurement_uid`` is exactly *uid*, with its OONI JSON (the unique index)."""
    m = MeasurementRecord
    row = conn.execute(measurement_query(with_body=True).where(m.measurement_uid == uid)).first()
    return None if row is None else MeasurementRow._make(row)


def blocked_rows(conn: Connection, f: Filters, *, limit: int) -> list[Any]:
    """Up to *limit* blocked measurements in *f*, oldest first (on the ``outcome`` index):
    ``(uid, url, asn, measured_at, outcome, mechanism, confirmed)``."""
    m, t = MeasurementRecord, Target
    stmt = select(m.measurement_uid, t.url, m.probe_asn, m.measured_at, m.outcome, m.mechanism, m.confirmed)
    stmt = narrowed(stmt.join_from(m, t, m.target_id == t.id).where(m.outcome.in_(BLOCKED)), f)
    return list(conn.execute(stmt.order_by(m.measured_at, m.id).limit(limit)))


def count(conn: Connection, f: Filters) -> int:
    """How many measurements *f* selects."""
    m = MeasurementRecord
    return int(conn.execute(narrowed(select(func.count()).select_from(m), f)).scalar_one())


def span(conn: Connection, f: Filters) -> tuple[datetime | None, datetime | None]:
    """The first and last round start in *f*'s range and network (``None`` for an empty store)."""
    r = Round
    stmt = select(func.min(r.started_at), func.max(r.started_at))
    if f.asn is not None:
        stmt = stmt.where(r.probe_asn == f.asn)
    if f.since is not None:
        stmt = stmt.where(r.started_at >= f.since)
    if f.until is not None:
        stmt = stmt.where(r.started_at < f.until)
    first, last = conn.execute(stmt).one()
    return first, last


def version(conn: Connection) -> tuple[int, int, int]:
    """What changes when a round starts, stores a batch or ends: ``(max id, measurements, complete)``."""
    r = Round
    complete = func.count().filter(r.status == "complete")
    stmt = select(func.coalesce(func.max(r.id), 0), func.coalesce(func.sum(r.n_measurements), 0), complete)
    a, b, c = conn.execute(stmt).one()
    return int(a), int(b), int(c)


def network_counts(conn: Connection) -> dict[str, int]:
    """Measurements stored per network, from the rounds' counts."""
    r = Round
    stmt = select(r.probe_asn, func.sum(r.n_measurements)).group_by(r.probe_asn)
    return {asn: int(n or 0) for asn, n in conn.execute(stmt)}
