"""kill -9 at random points: the database stays valid and no measurement is ever half-written.

Each iteration forks a writer that behaves like the daemon (start-up marks crashed rounds
interrupted, then rounds back to back, each written in batches as it goes) and SIGKILLs it at
one of these kinds of moment, in turn: a random time after it starts (often inside opening or
migrating), a random time into a round's writes, a random time into the round after one it
committed (so every run has committed rounds to lose, however slow the machine), or — SQLite —
while it holds the write lock, i.e. inside one of the round's transactions (seen from outside
with ``BEGIN IMMEDIATE``). After every kill: ``PRAGMA integrity_check`` is ``ok``, each round
is complete with all its measurements, or not complete with exactly the batches its record
counts (issue 12: a crashed round keeps what it stored, and says it did not complete), every
round the writer reported committed is complete, and the next start marks the crashed round
interrupted.
"""

from __future__ import annotations

import random
import signal
import time
from multiprocessing.connection import Connection

import pytest

from measurements.store.store import open_store
from tests.storage.factories import make_round
from tests.storage.workers import round_violations, sqlite_write_locked, start_writer, statuses

PER_ROUND = 40
MOMENTS = {
    "sqlite": ("anywhere", "in the writes", "after a commit", "in the transaction"),
    "postgresql": ("anywhere", "in the writes", "after a commit"),
}


def _drain(pipe: Connection, committed: set[int], seen: list[str]) -> None:
    while pipe.poll():
        try:
            what, rid = pipe.recv()
        except EOFError:
            return
        seen.append(what)
        if what == "committed":
            committed.add(rid)


def _wait_for(pipe: Connection, event: str, committed: set[int], timeout: float = 10.0) -> None:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while event not in seen:
        assert time.monotonic() < deadline, f"writer never reported {event!r}"
        pipe.poll(0.01)
        _drain(pipe, committed, seen)


@pytest.mark.parametrize(("backend", "kills"), [("sqlite", 24), ("postgresql", 6)])
def test_kill_9_never_leaves_a_half_written_measurement(
    backend: str, kills: int, request: pytest.FixtureRequest, sqlite_url: str
) -> None:
    if backend == "sqlite":
        url = sqlite_url
    else:
        cluster = request.getfixturevalue("pg_cluster")
        url = cluster.url(cluster.database("crash"))
    rng = random.Random(20240120)
    template = make_round(PER_ROUND)
    committed: set[int] = set()
    in_transaction = 0
    for i in range(kills):
        proc, pipe = start_writer(url, template)
        moment = MOMENTS[backend][i % len(MOMENTS[backend])]
        if moment == "anywhere":  # including while opening/migrating the first time
            time.sleep(rng.uniform(0.0, 0.3))
        elif moment == "in the writes":
            _wait_for(pipe, "writing", committed)
            time.sleep(rng.uniform(0.0, 0.04))
        elif moment == "after a commit":
            _wait_for(pipe, "committed", committed)
            time.sleep(rng.uniform(0.0, 0.04))
        else:  # inside the write transaction itself
            _wait_for(pipe, "ready", committed)
            deadline = time.monotonic() + 10
            while not sqlite_write_locked(url.removeprefix("sqlite:///")):
                assert time.monotonic() < deadline, "never saw the writer's transaction"
                time.sleep(0.0005)
            in_transaction += 1
        proc.kill()
        proc.join(10)
        assert proc.exitcode == -signal.SIGKILL, (
            f"writer died on its own (exit {proc.exitcode}) before the kill"
        )
        _drain(pipe, committed, [])
        pipe.close()
        assert round_violations(url) == [], f"after kill {i + 1}"
        done = statuses(url)
        assert all(done[rid] == "complete" for rid in committed), "a committed round was lost"

    per_moment = kills // len(MOMENTS[backend])
    if backend == "sqlite":
        assert in_transaction == per_moment
    assert len(committed) >= per_moment, "too few rounds committed between kills to mean anything"
    with open_store(url) as store:  # the daemon's next start
        running = sum(1 for s in statuses(url).values() if s == "running")
        assert store.mark_interrupted() == running
        assert "running" not in statuses(url).values()
        assert sum(r.n_measurements for r in store.last_rounds(10_000)) >= PER_ROUND * len(committed)
