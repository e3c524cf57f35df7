"""The dashboard's reads agree with plain SQL over the same store (the seeks, the daily counts)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime

import pytest

from measurements.store.queries import failing_query
from measurements.store.store import open_store
from measurements.views.dashboard import data
from measurements.views.dashboard.filters import Filters

CASES = [
    Filters(),
    Filters(asn="AS9541"),
    Filters(category="GRP"),
    Filters(target="https://x.com/", asn="AS17557"),
    Filters(since=datetime(2024, 2, 1, tzinfo=UTC), until=datetime(2024, 2, 12, 9, tzinfo=UTC)),
    Filters(outcome="blocked"),
]


def _plain_latest(db: str, f: Filters) -> list[tuple[str, str, str, str]]:
    """The latest row per (target, network) in *f*, by brute force in Python over every row."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT t.url, t.category_code, m.probe_asn, m.measured_at, m.id, m.outcome "
            "FROM measurements m JOIN targets t ON t.id = m.target_id"
        ).fetchall()
    since = f.since.strftime("%Y-%m-%d %H:%M:%S") if f.since else ""
    until = f.until.strftime("%Y-%m-%d %H:%M:%S") if f.until else "9999"
    newest: dict[tuple[str, str], tuple[str, int, str]] = {}
    for url, category, asn, at, id_, outcome in rows:
        if not since <= at < until or f.asn not in (None, asn) or f.target not in (None, url):
            continue
        if f.category not in (None, category):
            continue
        if (url, asn) not in newest or (at, id_) > newest[(url, asn)][:2]:
            newest[(url, asn)] = (at, id_, outcome)
    return sorted(
        (url, asn, at[:19], outcome)
        for (url, asn), (at, _, outcome) in newest.items()
        if f.outcome is None or outcome.startswith(f.outcome)
    )


@pytest.mark.parametrize("f", CASES, ids=lambda f: f.query() or "all")
def test_the_latest_by_seeks_is_the_brute_force_answer(synthetic_db: str, f: Filters) -> None:
    with open_store(synthetic_db) as store, store.snapshot() as conn:
        found = sorted(
            (r.url, r.probe_asn, r.measured_at.strftime("%Y-%m-%d %H:%M:%S"), r.outcome)
            for r in data.latest(conn, f)
        )
        if f == Filters():  # and the store's own aggregate agrees
            reference = conn.execute(failing_query(only_failing=False)).all()
            assert len(found) == len(reference) == 40
    assert found == _plain_latest(synthetic_db.removeprefix("sqlite:///"), f)
    assert found  # every case selects something


PER_DAY = (
    "SELECT date(m.measured_at), count(*), sum(m.outcome = 'blocked.anomaly'), "
    "sum(m.outcome = 'blocked.confirmed') FROM measurements m JOIN targets t ON t.id = m.target_id "
    "WHERE m.measured_at >= '2024-01-29' AND m.measured_at < '2024-02-02' {} GROUP BY 1"
)


def test_daily_counts_are_the_rows_per_day(synthetic_db: str) -> None:
    f = Filters(since=datetime(2024, 1, 29, tzinfo=UTC), until=datetime(2024, 2, 2, tzinfo=UTC))
    with open_store(synthetic_db) as store, store.snapshot() as conn:
        days = data.daily(conn, f)  # totals from the rounds' counts
        news = data.daily(conn, Filters(since=f.since, until=f.until, category="NEWS"))  # from the rows
    with sqlite3.connect(synthetic_db.removeprefix("sqlite:///")) as db:
        plain = db.execute(PER_DAY.format("")).fetchall()
        plain_news = db.execute(PER_DAY.format("AND t.category_code = 'NEWS'")).fetchall()
    assert [(d.day.isoformat(), d.measurements, d.anomalies, d.confirmed) for d in days] == plain
    assert [d.day for d in days] == [
        date(2024, 1, 29),
        date(2024, 1, 30),
        date(2024, 1, 31),
        date(2024, 2, 1),
    ]
    assert [(d.day.isoformat(), d.measurements, d.anomalies, d.confirmed) for d in news] == plain_news
    assert sum(d.measurements for d in news) < sum(d.measurements for d in days) / 4
