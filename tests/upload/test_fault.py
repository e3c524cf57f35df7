"""The issue's fault test: 20 probes x 500 measurements upload at once to ``probe collector serve``
on a real PostgreSQL, while the collector is killed with -9 and started again twice and
PostgreSQL is restarted once. At the end every measurement is in the collector's database
exactly once, and every probe's upload state says uploaded.

The faults are set off by progress (how many measurements the collector's database holds),
not by time, so they land mid-upload on a fast machine and a slow one alike; the test checks
that they did (each fault at a count strictly between 0 and the total, and failed attempts
recorded). Each probe runs its uploader in a loop, as ``probe upload`` from cron would, with
short back-offs (seconds, not the default minutes).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from measurements.store.store import Store, open_store
from measurements.store.tables import MeasurementRecord, UploadRecord
from measurements.store.uploads import StoreUploads, counts
from probe.upload import upload_pending
from tests.upload.collectorproc import CollectorProcess
from tests.upload.helpers import fill, now, settings

PROBES = 20
PER_PROBE = 500
TOTAL = PROBES * PER_PROBE


def _collector_count(cluster: Any, database: str) -> int | None:
    import psycopg

    where = {"host": str(cluster.dir), "port": cluster.port, "user": "reachprobe", "dbname": database}
    try:
        with psycopg.connect(**where, connect_timeout=2) as conn:  # type: ignore[arg-type]
            row = conn.execute("SELECT count(*) FROM measurements").fetchone()
    except psycopg.Error:
        return None  # restarting
    return int(row[0]) if row else None


class Faults(threading.Thread):
    """Sets off each fault once the collector's database holds its share of the measurements."""

    def __init__(
        self, plan: list[tuple[float, str, Callable[[], None]]], count: Callable[[], int | None]
    ) -> None:
        super().__init__(daemon=True)
        self.plan = plan
        self.count = count
        self.done: list[tuple[str, int]] = []
        self.error: BaseException | None = None
        self.finished = threading.Event()

    def run(self) -> None:
        try:
            for share, name, action in self.plan:
                while not self.finished.is_set():
                    n = self.count()
                    if n is not None and n >= share * TOTAL:
                        break
                    time.sleep(0.05)
                else:
                    return
                action()
                self.done.append((name, n))
        except BaseException as exc:
            self.error = exc


@pytest.fixture
def probes(tmp_path: Path) -> Iterator[list[Store]]:
    stores = []
    try:
        for p in range(PROBES):
            store = open_store(f"sqlite:///{tmp_path / f'probe{p}.sqlite3'}")
            stores.append(store)
            fill(store, rounds=5, per_round=PER_PROBE // 5, first=p * PER_PROBE, asn=f"AS{64500 + p}")
        yield stores
    finally:
        for store in stores:
            store.close()


@pytest.mark.timeout(300)
def test_twenty_probes_upload_through_kills_and_a_database_restart(
    tmp_path: Path, pg_cluster: Any, probes: list[Store]
) -> None:
    database = pg_cluster.database("collector")
    # The test cluster trades durability for speed (synchronous_commit off): a commit may be
    # acknowledged before its WAL is written, and an immediate restart then loses it. A
    # collector acknowledges only what its database says is committed, so it runs on
    # PostgreSQL's default, as an operator's does.
    pg_cluster.admin(f"ALTER DATABASE {database} SET synchronous_commit = on")
    collector = CollectorProcess(pg_cluster.url(database), tmp_path / "collector.log")
    config = settings(
        collector.url, batch_size=50, timeout=5.0, retry_min_minutes=0.005, retry_max_minutes=0.02
    )
    collector.start()

    def kill_and_restart() -> None:
        collector.kill9()
        collector.start()

    def restart_postgresql() -> None:
        # -l as at its start: the server must not hold our pipes (run() reads them to the end).
        log = str(pg_cluster.dir / "log")
        pg_cluster.run("pg_ctl", "-D", str(pg_cluster.data), "-m", "immediate", "-l", log, "-w", "restart")

    faults = Faults(
        [
            (0.15, "collector kill -9", kill_and_restart),
            (0.45, "postgresql restart", restart_postgresql),
            (0.70, "collector kill -9", kill_and_restart),
        ],
        lambda: _collector_count(pg_cluster, database),
    )
    attempts_failed = [0]
    runs = [0]

    async def probe(store: Store) -> None:
        while True:
            summary = await upload_pending(StoreUploads(store), config)
            runs[0] += 1
            attempts_failed[0] += summary.failed
            left = await asyncio.to_thread(counts, store, now=now())
            if left.uploaded == PER_PROBE:
                return
            await asyncio.sleep(0.2)

    async def fleet() -> None:
        async with asyncio.timeout(240):
            await asyncio.gather(*(probe(store) for store in probes))

    t0 = time.monotonic()
    faults.start()
    try:
        asyncio.run(fleet())
    finally:
        faults.finished.set()
        faults.join(60)
        collector.stop()
    elapsed = time.monotonic() - t0
    assert faults.error is None, faults.error
    print(
        f"\n{TOTAL} measurements from {PROBES} probes in {elapsed:.1f} s ({TOTAL / elapsed:.0f}/s) through "
        f"{collector.starts} collector starts; faults at {faults.done}; {attempts_failed[0]} failed attempts "
        f"retried over {runs[0]} upload runs"
    )
    # Every fault landed mid-upload, and cost the probes attempts they made again.
    assert [name for name, _ in faults.done] == [
        "collector kill -9",
        "postgresql restart",
        "collector kill -9",
    ]
    assert all(0 < n < TOTAL for _, n in faults.done), faults.done
    assert collector.starts == 3
    assert attempts_failed[0] > 0

    # Exactly once at the collector: every uid, no other, no duplicate.
    import psycopg

    where = {"host": str(pg_cluster.dir), "port": pg_cluster.port, "user": "reachprobe", "dbname": database}
    with psycopg.connect(**where) as conn:  # type: ignore[arg-type]
        uids = [uid for (uid,) in conn.execute("SELECT measurement_uid FROM measurements")]
    expected: set[str] = set()
    for store in probes:
        m, u = MeasurementRecord, UploadRecord
        with store.snapshot() as conn:
            pairs = conn.execute(
                select(m.measurement_uid, u.state, u.collector_uid).outerjoin(u, u.measurement_id == m.id)
            ).all()
        assert len(pairs) == PER_PROBE
        assert all(state == "uploaded" and collector_uid == uid for uid, state, collector_uid in pairs)
        expected.update(uid for uid, _, _ in pairs)
        left = counts(store, now=now())
        assert (left.uploaded, left.pending, left.failed) == (PER_PROBE, 0, 0)
    assert len(uids) == TOTAL
    assert set(uids) == expected
    pg_cluster.admin(f"DROP DATABASE {database} WITH (FORCE)")
