"""A round's life in the store when things go wrong: cancelled, a broken hook, a slow write.

Every round measures real loopback servers and is written to a real SQLite file. The store is
slowed or made to fail the way a real one is: another connection holds SQLite's write lock
(a long export's checkpoint, another probe's prune), so a write waits for it, or — with a
short busy timeout — fails with "database is locked".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from measurements.store import engine
from measurements.store.store import open_store
from probe.rounds import runner, service
from probe.rounds.settings import load_settings
from tests.daemon_harness import write_settings
from tests.servers.http_server import http_server
from tests.servers.tcp_server import tcp_server
from tests.storage.workers import statuses


@contextlib.contextmanager
def write_locked(db: Path) -> Iterator[None]:
    """Hold *db*'s write lock from another connection (as another writer would) until exit."""
    holder = sqlite3.connect(db, timeout=0, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


async def _until_running(url: str) -> int:
    deadline = time.monotonic() + 10
    while True:
        running = [rid for rid, status in statuses(url).items() if status == "running"]
        if running:
            return running[0]
        assert time.monotonic() < deadline, "the round never began"
        await asyncio.sleep(0.02)


def test_a_cancelled_round_whose_store_fails_still_raises_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(engine, "BUSY_TIMEOUT_MS", 200)  # a locked database fails fast
    db = tmp_path / "probe.sqlite3"
    url = f"sqlite:///{db}"
    with tcp_server("accept") as hole:  # a black hole: the round runs until cancelled
        path = write_settings(tmp_path, [f"http://127.0.0.1:{hole}/"], db_url=url, timeout_s=30)
        plan = service.plan_round(load_settings(path))
        with open_store(url) as store:

            async def main() -> int:
                task = asyncio.create_task(service.run_round(plan, store))
                rid = await _until_running(url)
                with write_locked(db):  # mark_interrupted cannot write: StorageError
                    task.cancel()
                    with pytest.raises(asyncio.CancelledError):
                        await task
                return rid

            rid = asyncio.run(main())
            # Given up all the same (unlocked): the next clean-up marks it.
            assert statuses(url) == {rid: "running"}
            assert store.mark_interrupted() == 1
    assert statuses(url) == {rid: "interrupted"}
    assert [r.getMessage() for r in caplog.records if r.name == "probe.rounds.service"] == [
        f"{db}: cannot mark interrupted rounds: database is locked "
        f"(round {rid} left running: the next clean-up marks it interrupted)"
    ]


def test_an_on_result_hook_that_raises_ends_the_round_and_releases_its_lock(
    tmp_path: Path, probe_data_dir: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    with http_server() as web:
        urls = [f"http://127.0.0.1:{web.port}/?n={i}" for i in range(3)]
        plan = service.plan_round(load_settings(write_settings(tmp_path, urls, db_url=url)))

        def broken(result: runner.Result) -> None:
            raise RuntimeError("the progress bar broke")

        with open_store(url) as store:
            with pytest.raises(RuntimeError, match="the progress bar broke"):
                asyncio.run(service.run_round(plan, store, on_result=broken))
            assert list(statuses(url).values()) == ["interrupted"]
            assert list((probe_data_dir / "rounds").glob("*.lock")) == []  # its lock released


def test_the_event_loop_keeps_running_while_a_round_is_written(tmp_path: Path) -> None:
    db = tmp_path / "probe.sqlite3"
    url = f"sqlite:///{db}"
    locked = threading.Event()

    def hold_the_write_lock_for_a_second() -> None:
        with write_locked(db):
            locked.set()
            time.sleep(1.0)

    with http_server() as web:
        urls = [f"http://127.0.0.1:{web.port}/?n={i}" for i in range(3)]
        plan = service.plan_round(load_settings(write_settings(tmp_path, urls, db_url=url)))
        done: list[runner.Result] = []

        def hook(result: runner.Result) -> None:
            done.append(result)
            if len(done) == len(urls):  # the round's write comes next: make it wait a second
                threading.Thread(target=hold_the_write_lock_for_a_second, daemon=True).start()
                assert locked.wait(5)

        async def main() -> tuple[service.RoundReport, float]:
            loop = asyncio.get_running_loop()
            gaps: list[float] = []

            async def tick() -> None:
                last = loop.time()
                while True:
                    await asyncio.sleep(0.01)
                    gaps.append(loop.time() - last)
                    last = loop.time()

            ticker = asyncio.create_task(tick())
            try:
                report = await service.run_round(plan, store, on_result=hook)
                await asyncio.sleep(0.05)  # the ticker's next tick records the gap the write left
            finally:
                ticker.cancel()
            return report, max(gaps)

        with open_store(url) as store:
            t0 = time.monotonic()
            report, worst_gap = asyncio.run(main())
            elapsed = time.monotonic() - t0
    assert statuses(url) == {report.round_id: "complete"}
    assert elapsed > 0.9  # the write did wait for the lock
    assert worst_gap < 0.5, f"the event loop stood still for {worst_gap:.2f} s during the write"


def test_measurements_are_stored_as_they_end_and_a_cancelled_round_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 12: a round holds no measurement once stored; cut short, it keeps the batches it
    stored, marked ``interrupted`` (its record says it did not complete, and how much it stored)."""
    monkeypatch.setattr(service, "WRITE_BATCH", 2)
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    with http_server() as web, tcp_server("accept") as hole:
        answering = [f"http://127.0.0.1:{web.port}/?n={i}" for i in range(4)]
        urls = [f"http://127.0.0.1:{hole}/", *answering]  # the black hole holds the round open
        plan = service.plan_round(load_settings(write_settings(tmp_path, urls, db_url=url, timeout_s=30)))
        with open_store(url) as store:

            async def main() -> int:
                task = asyncio.create_task(service.run_round(plan, store))
                rid = await _until_running(url)
                deadline = time.monotonic() + 10
                while store.last_rounds(1)[0].n_measurements < 4:  # two batches, the round still on
                    assert time.monotonic() < deadline, "the batches were never stored"
                    await asyncio.sleep(0.02)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                return rid

            rid = asyncio.run(main())
            (info,) = store.last_rounds(1)
            stored = sorted(m.input for m in store.iter_measurements())
    assert (info.id, info.status, info.n_targets, info.n_measurements) == (rid, "interrupted", 5, 4)
    assert stored == sorted(answering)


@pytest.fixture(autouse=True)
def _service_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="probe.rounds.service")
