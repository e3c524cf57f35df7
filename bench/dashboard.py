"""Benchmark the dashboard: the now page and a year-long timeline over ~1 M stored measurements.

Usage (from the repository root)::

    python bench/dashboard.py                     # a synthetic year, 4 networks x 29 targets: ~1,000,000 rows
    python bench/dashboard.py --n 100000          # quicker (fewer days)
    python bench/dashboard.py --db /tmp/year.db   # keep (or reuse) the store between runs

It writes the synthetic Pakistan year (:mod:`measurements.patterns.synthetic`, healthy filler
targets to reach the volume; made to read as a probe stores it by
``tests/dashboard/synthstore.py``) into a SQLite file, starts the real ``probe dashboard`` on
127.0.0.1 (whose start-up runs the detection once, timed), and times each page as a browser
gets it: one HTTP GET, the whole body read, the median of ``--repeat`` after one warm-up.

The baseline, measured in the same run on the same file: the database queries of the page
alone (the same SELECTs the page runs, in a fresh connection, rows fetched and dropped). For
scale: what a timeline drawn from the raw measurements would read (every ``(target, network,
time, outcome)`` of the year; the timeline reads the detection the dashboard keeps in memory
instead, ``measurements/views/dashboard/analysis.py``), and the latest measurement of each
series found by one aggregate over every row (``failing_query``, what ``probe status`` runs;
the now page seeks each series on the index instead).

Prints numbers and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select

from measurements.patterns.synthetic import NETWORKS, SyntheticConfig, targets_of
from measurements.store.installation import Installation
from measurements.store.queries import failing_query
from measurements.store.store import open_store
from measurements.store.tables import MeasurementRecord
from measurements.views.dashboard import data
from measurements.views.dashboard.filters import Filters
from tests.dashboard.conftest import running_dashboard
from tests.dashboard.synthstore import write_store


def config_for(n: int) -> SyntheticConfig:
    """A year on four networks with enough filler targets for about *n* rows (fewer days below 350,000)."""
    per_target_year = 365 * 24 * len(NETWORKS)
    base = len(targets_of(SyntheticConfig()))
    if n >= per_target_year * base:
        return SyntheticConfig(extra_targets=max(0, round(n / per_target_year) - base))
    days = max(30, n // (24 * len(NETWORKS) * base))
    return SyntheticConfig.small(
        days=days, x_block=(12, 9, None), outages=((6, 13, 6),), shutdown=(20, 0, 24)
    )


def timed(action: Callable[[], Any], repeat: int) -> float:
    """Median seconds of *repeat* runs after one warm-up."""
    action()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        action()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def get(url: str) -> Callable[[], int]:
    def fetch() -> int:
        with urllib.request.urlopen(url, timeout=120) as response:
            return len(response.read())

    return fetch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="measurements to store (default 1,000,000)")
    parser.add_argument("--db", type=Path, help="SQLite file to write, or to reuse if it exists")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per page; the median counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "dashboard.sqlite3"
        url = f"sqlite:///{db}"
        if not db.exists():
            t0 = time.perf_counter()
            with open_store(url, installation=Installation.load(db.parent)) as store:
                n = write_store(store, config_for(args.n))
            print(f"wrote {n:,} synthetic measurements in {time.perf_counter() - t0:.1f} s to {db}")
        with open_store(url, installation=Installation.load(db.parent)) as store:
            with store.snapshot() as conn:
                total = data.count(conn, Filters())
                first, last = data.span(conn, Filters())
            assert first is not None and last is not None
            year = Filters(since=first, until=last)
            size_mb = db.stat().st_size / 1e6
            print(f"store: {total:,} measurements, {first:%Y-%m-%d} to {last:%Y-%m-%d}, {size_mb:.0f} MB")

            def now_queries() -> None:
                with store.snapshot() as conn:
                    data.latest(conn, Filters())
                    data.networks(conn)
                    data.targets(conn)

            def timeline_queries() -> None:
                with store.snapshot() as conn:
                    data.networks(conn)
                    data.targets(conn)

            def raw_year() -> None:
                m = MeasurementRecord
                stmt = select(m.target_id, m.probe_asn, m.measured_at, m.outcome).where(
                    m.measured_at >= year.since, m.measured_at < year.until
                )
                for _ in store.stream(stmt, batch=10_000):
                    pass

            def counts_queries() -> None:
                with store.snapshot() as conn:
                    data.daily(conn, year)

            baselines = {
                "now": timed(now_queries, args.repeat),
                "timeline": timed(timeline_queries, args.repeat),
                "counts": timed(counts_queries, args.repeat),
            }
            raw = timed(raw_year, max(1, args.repeat // 2))

            def aggregate_latest() -> None:
                with store.snapshot() as conn:
                    conn.execute(failing_query(only_failing=False)).all()

            aggregate = timed(aggregate_latest, args.repeat)
        t0 = time.perf_counter()
        with running_dashboard(url) as base:
            started = time.perf_counter() - t0
            query = year.query()
            pages = {
                "now": base,
                "timeline": f"{base}timeline?{query}",
                "counts": f"{base}counts?{query}",
            }
            results = {name: (timed(get(page), args.repeat), get(page)()) for name, page in pages.items()}
            measurement = timed(get(f"{base}measurement/evidence-1"), args.repeat)
    print(f"probe dashboard start-up (open, detect over every round, serve): {started:.2f} s")
    print(f"{'page':<34} {'served':>9} {'size':>9} {'queries alone':>14} {'ratio':>6}")
    for name, (seconds, size) in results.items():
        label = {
            "now": "now (/)",
            "timeline": "timeline, the whole year",
            "counts": "daily counts, the whole year",
        }
        base_s = baselines[name]
        print(f"{label[name]:<34} {seconds * 1000:7.0f} ms {size / 1000:6.0f} kB {base_s * 1000:11.1f} ms "
              f"{seconds / base_s:6.1f}")  # fmt: skip
    print(f"{'a measurement page':<34} {measurement * 1000:7.0f} ms")
    print(f"for scale: reading the year's raw (target, network, time, outcome) rows: {raw * 1000:.0f} ms")
    print(f"for scale: the latest per series by one aggregate (failing_query): {aggregate * 1000:.0f} ms")


if __name__ == "__main__":
    main()
