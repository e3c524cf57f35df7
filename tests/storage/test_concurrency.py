"""Several processes at once: exports while writers write, and a fresh database opened by many."""

from __future__ import annotations

import time

from measurements.export import csv_rows, export_csv, export_jsonl
from measurements.store import open_store
from tests.storage.factories import make_round
from tests.storage.test_export import _Sink
from tests.storage.workers import FORK, round_violations, start_writer

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
    # Each export saw one consistent snapshot: whole rounds only, never fewer than before.
    assert len(exported) >= 4
    assert all(n % PER_ROUND == 0 for n in exported), exported
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
