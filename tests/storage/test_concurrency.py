"""Several processes at once: exports while writers write, and a fresh database opened by many."""

from __future__ import annotations

import dataclasses
import io
import os
import time
import uuid
from collections.abc import Callable
from typing import Literal

import pytest

from measurements.store.export import csv_rows, export, export_csv, export_jsonl
from measurements.store.store import open_store
from tests.storage.factories import make_round, stream
from tests.storage.test_export import _Sink
from tests.storage.workers import BATCH, FORK, round_violations, start_writer

PER_ROUND = 25


def test_export_while_two_processes_write(store_url: str) -> None:
    open_store(store_url).close()  # migrated before the writers race to open it
    template = make_round(PER_ROUND)
    writers = [start_writer(store_url, template, seconds=2.0) for _ in range(2)]
    exported: list[int] = []
    with open_store(store_url) as store:
        while any(proc.is_alive() for proc, _ in writers):
            in_csv = export_csv(csv_rows(store), _Sink())
            in_jsonl = export_jsonl(store.iter_measurements(with_body=True, batch=100), _Sink())
            exported += [in_csv, in_jsonl]
        rounds = 0
        for proc, pipe in writers:
            proc.join(10)
            assert proc.exitcode == 0, "a writer failed (its traceback is on stderr above)"
            reports = []
            try:
                while pipe.poll():
                    reports.append(pipe.recv())
            except EOFError:  # the writer exited and its end of the pipe closed
                pass
            assert reports[-1][0] == "done"
            rounds += reports[-1][1]
        total = export_csv(csv_rows(store), _Sink())
    # Each export saw one consistent snapshot: whole batches only (each writer's rounds so far,
    # and its running round's first batch or not), never fewer than before.
    assert len(exported) >= 4
    partial = {0, BATCH, 2 * BATCH % PER_ROUND}  # neither writer, one, or both mid-round
    assert all(n % PER_ROUND in partial for n in exported), exported
    assert exported == sorted(exported)
    assert rounds >= 4 and total == rounds * PER_ROUND
    assert round_violations(store_url) == []


def _open_and_write(url: str) -> None:
    with open_store(url) as store:
        store.finish_round(store.begin_round(), [])


def test_a_fresh_database_opened_by_four_processes_at_once_is_migrated_once(store_url: str) -> None:
    procs = [FORK.Process(target=_open_and_write, args=(store_url,)) for _ in range(4)]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + 30
    for proc in procs:
        proc.join(max(0.1, deadline - time.monotonic()))
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    with open_store(store_url) as store:
        assert [r.status for r in store.last_rounds(10)] == ["complete"] * 4


class _SlowSink(io.StringIO):
    """An export's output that a writer races: every *every* lines written, *then* runs."""

    def __init__(self, every: int, then: Callable[[], None]) -> None:
        super().__init__(newline="")
        self.every, self.then, self.lines = every, then, 0

    def write(self, s: str, /) -> int:
        for _ in range((self.lines + s.count("\n")) // self.every - self.lines // self.every):
            self.then()
        self.lines += s.count("\n")
        return super().write(s)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_long_export_beside_a_writer_keeps_the_wal_bounded(
    sqlite_url: str, fmt: Literal["csv", "jsonl"]
) -> None:
    # 10,000 rows exported slowly: after every 1,000 lines written, the writer commits 10 rounds
    # of 100 measurements (~6 MB of WAL). A read transaction held for the whole export stops
    # every checkpoint (the WAL then holds all 100 rounds: 8 MB to 156 MB); short ones let them run
    # (about 6 MB throughout: the checkpoint threshold, 4 MB, and a round).
    wal = sqlite_url.removeprefix("sqlite:///") + "-wal"
    template = make_round(100)
    sizes: list[int] = []
    with open_store(sqlite_url) as store, open_store(sqlite_url) as writer:
        for ms in stream(10_000, per_round=500):
            store.finish_round(store.begin_round(), ms)
        quiet = io.StringIO(newline="")
        assert export(store, quiet, format=fmt) == 10_000

        def commit_rounds() -> None:
            for _ in range(10):
                fresh = [dataclasses.replace(m, measurement_uid=str(uuid.uuid4())) for m in template]
                writer.finish_round(writer.begin_round(), fresh)
            sizes.append(os.path.getsize(wal))

        out = _SlowSink(1_000, commit_rounds)
        assert export(store, out, format=fmt) == 10_000
        assert len(sizes) >= 9 and len(writer.last_rounds(1_000)) == 20 + 10 * len(sizes)
    # Exactly the rows committed before the export began, as a quiet export writes them.
    assert out.getvalue() == quiet.getvalue()
    assert max(sizes) < 10_000_000, f"WAL sizes after each batch of rounds: {sizes}"
