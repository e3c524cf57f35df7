"""Writer processes for the crash and concurrency tests, and the checks run after them.

Writers are forked (``multiprocessing`` "fork" context): a real separate process with its
own database connections, killed with a real SIGKILL, without paying the interpreter's
start-up for each of the dozens of kills. A forked child opens its own store after the
fork and never touches a connection of the parent.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3
import time
import uuid
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from sqlalchemy import create_engine, text

from measurements.store.store import Installation, open_store
from probe.model import Measurement

FORK = multiprocessing.get_context("fork")


BATCH = 16
"""Measurements per ``add_measurements`` call, as a round writes them (``service.WRITE_BATCH``)."""


def write_rounds(url: str, pipe: Connection, template: list[Measurement], until: float | None) -> None:
    """Like a daemon: mark crashed rounds, then write rounds of ``len(template)`` forever (or *until*).

    Each round is written as the daemon writes it: batches of :data:`BATCH` with
    ``add_measurements``, the rest with ``finish_round``. Reports ``("ready", 0)``, then
    ``("writing", id)`` / ``("committed", id)`` per round and ``("done", rounds)`` at the end.
    """
    store = open_store(url)
    store.mark_interrupted()
    pipe.send(("ready", 0))
    rounds = 0
    while until is None or time.monotonic() < until:
        rid = store.begin_round(n_targets=len(template))
        ms = [dataclasses.replace(m, measurement_uid=str(uuid.uuid4())) for m in template]
        pipe.send(("writing", rid))
        whole = len(ms) - len(ms) % BATCH if len(ms) % BATCH else len(ms) - BATCH
        for i in range(0, whole, BATCH):
            store.add_measurements(rid, ms[i : i + BATCH])
        store.finish_round(rid, ms[whole:])
        pipe.send(("committed", rid))
        rounds += 1
    store.close()
    pipe.send(("done", rounds))


def hold_round(url: str, directory: str, pipe: Connection) -> None:
    """A probe mid-round: begin a round as the installation in *directory*, report its id, wait."""
    store = open_store(url, installation=Installation.load(Path(directory)))
    pipe.send(store.begin_round(n_targets=1))
    while True:  # until killed: a crash in the middle of the round
        time.sleep(60)


def start_round_holder(url: str, directory: Path) -> tuple[BaseProcess, int]:
    """Fork a :func:`hold_round` process; return it and the id of the round it holds in flight."""
    receive, send = FORK.Pipe(duplex=False)
    proc = FORK.Process(target=hold_round, args=(url, str(directory), send), daemon=True)
    proc.start()
    send.close()
    assert receive.poll(30), "the round holder never began its round"
    round_id: int = receive.recv()
    receive.close()
    return proc, round_id


def start_writer(
    url: str, template: list[Measurement], *, seconds: float | None = None
) -> tuple[BaseProcess, Connection]:
    """Fork a :func:`write_rounds` process; return it and the read end of its report pipe."""
    receive, send = FORK.Pipe(duplex=False)
    until = None if seconds is None else time.monotonic() + seconds
    proc = FORK.Process(target=write_rounds, args=(url, send, template, until), daemon=True)
    proc.start()
    send.close()
    return proc, receive


def sqlite_write_locked(path: str) -> bool:
    """Does another connection hold the database's write lock (is a write transaction open)?"""
    probe = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc)
    else:
        probe.execute("ROLLBACK")
        return False
    finally:
        probe.close()


def round_violations(url: str) -> list[str]:
    """Every way the database breaks "a measurement is whole or absent, and the round's record
    says how much of it was stored" (empty list: none).

    A complete round has every measurement; a round that did not complete (a crash left it
    ``running``, or it was marked ``interrupted``) has the batches it committed, which its
    ``n_measurements`` counts, and never more than its targets.
    """
    problems: list[str] = []
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as db:
            check = db.execute("PRAGMA integrity_check").fetchall()
        db.close()
        if check != [("ok",)]:
            problems.append(f"integrity_check: {check}")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not conn.dialect.has_table(conn, "rounds"):
                return problems
            rows = conn.execute(
                text(
                    "SELECT r.id, r.status, r.n_targets, r.n_measurements, r.n_errors, COUNT(m.id) "
                    "FROM rounds r LEFT JOIN measurements m ON m.round_id = r.id "
                    "GROUP BY r.id, r.status, r.n_targets, r.n_measurements, r.n_errors"
                )
            ).all()
    finally:
        engine.dispose()
    for rid, status, n_targets, n_measurements, n_errors, stored in rows:
        expected = n_targets - n_errors if n_targets else n_measurements
        if status == "complete" and not stored == n_measurements == expected:
            problems.append(f"round {rid} complete with {stored} of {expected} measurements")
        if status != "complete" and not stored == n_measurements <= (n_targets or stored):
            problems.append(
                f"round {rid} {status} has {stored} measurements, its record says {n_measurements}"
            )
    if sum(1 for row in rows if row[1] == "running") > 1:
        problems.append("more than one round running: start-up did not mark the crashed one interrupted")
    return problems


def statuses(url: str) -> dict[int, str]:
    """Round id → status."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if not conn.dialect.has_table(conn, "rounds"):
                return {}
            return {rid: status for rid, status in conn.execute(text("SELECT id, status FROM rounds"))}
    finally:
        engine.dispose()
