"""``probe daemon`` as a real process: kill -9 at random points, SIGTERM/SIGINT, a full disk, a
read-only database, and the schedule arithmetic ``probe status`` relies on.

Every round measures loopback servers only (tests/daemon_harness.py): answering, black-holed
(accepts, never replies: the HTTP step times out) and refused targets, on a 1 s interval.
The daemon and the test share a private platform data directory (``XDG_DATA_HOME``), so they
are one installation — and never the real user's.
"""

from __future__ import annotations

import contextlib
import random
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from measurements.store.store import Installation, open_store
from probe.rounds.daemon import next_run_window, trigger
from probe.rounds.settings import Schedule
from tests.daemon_harness import loopback_targets, running_daemon, start_daemon, write_settings
from tests.servers.http_server import http_server
from tests.storage.factories import BASE, make_round
from tests.storage.workers import round_violations, sqlite_write_locked, statuses

STARTED = r"probe\.daemon: daemon started"
COMPLETE = r"probe\.daemon: round \d+ complete"


def _integrity(path: Path) -> list[tuple[str]]:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return db.execute("PRAGMA integrity_check").fetchall()


# --- the schedule -----------------------------------------------------------------------------


@pytest.mark.parametrize(("interval", "jitter"), [(60, 5), (1 / 60, 0), (30, 0.5)])
def test_next_run_window_brackets_every_fire_time_the_trigger_picks(interval: float, jitter: float) -> None:
    schedule = Schedule(interval_minutes=interval, jitter_minutes=jitter)
    fire = datetime(2024, 1, 20, 10, 0, tzinfo=UTC)
    trig = trigger(schedule)
    for _ in range(200):
        earliest, latest = next_run_window(fire, schedule)
        nxt = trig.get_next_fire_time(fire, fire)
        assert earliest <= nxt <= latest
        assert latest - earliest == timedelta(minutes=jitter)
        fire = nxt


# --- kill -9 ----------------------------------------------------------------------------------


def test_kill_9_at_random_points_never_corrupts_and_the_next_start_continues(tmp_path: Path) -> None:
    """21 kills: at a random moment after spawn, at a random moment into the rounds, and while
    the daemon holds SQLite's write lock (inside a round's transaction, or marking/pruning)."""
    db = tmp_path / "probe.sqlite3"
    url = f"sqlite:///{db}"
    rng = random.Random(20240120)
    kinds = {"spawn": 0, "rounds": 0, "transaction": 0}
    logged_complete = 0
    with loopback_targets(answering=4, silent=2, refused=2) as targets:
        settings = write_settings(tmp_path, targets.all, db_url=url, interval_s=1.0, timeout_s=0.4)
        for i in range(21):
            left_running = {rid for rid, s in statuses(url).items() if s == "running"}
            daemon = start_daemon(settings)
            try:
                kind = ("spawn", "rounds", "transaction")[i % 3]
                if kind == "spawn":  # anywhere: opening, migrating, marking, the first round
                    time.sleep(rng.uniform(0.0, 1.8))
                else:
                    daemon.wait_for(STARTED)
                    # The start marked what the previous kill left running.
                    assert not left_running & {r for r, s in statuses(url).items() if s == "running"}
                    if kind == "rounds":
                        # After a round completed (each round's process takes ~1 s to start):
                        # in its prune, between rounds, or in the next round.
                        daemon.wait_for(COMPLETE)
                        time.sleep(rng.uniform(0.0, 2.5))
                    else:  # past begin_round, so mostly inside finish_round's transaction (or prune's)
                        time.sleep(rng.uniform(0.1, 0.35))
                        deadline = time.monotonic() + 10
                        while not sqlite_write_locked(str(db)):
                            assert time.monotonic() < deadline, "never saw the daemon's write transaction"
                            time.sleep(0.0005)
                kinds[kind] += 1
                daemon.proc.kill()
                assert daemon.wait() == -signal.SIGKILL, "\n".join(daemon.log)
            finally:
                if daemon.proc.poll() is None:
                    daemon.proc.kill()
                daemon.wait()
            assert not any("Traceback" in line for line in daemon.log), "\n".join(daemon.log)
            logged_complete += sum(1 for line in daemon.log if re.search(COMPLETE, line))
            if db.exists():
                assert _integrity(db) == [("ok",)], f"after kill {i + 1}"
                assert round_violations(url) == [], f"after kill {i + 1}"

        # The next start continues: it marks the crashed round and stores complete rounds again.
        with running_daemon(settings) as daemon:
            daemon.wait_for(STARTED)
            daemon.wait_for(COMPLETE)
            assert daemon.stop() == 0
        logged_complete += sum(1 for line in daemon.log if re.search(COMPLETE, line))
    done = statuses(url)
    assert kinds == {"spawn": 7, "rounds": 7, "transaction": 7}
    assert set(done.values()) <= {"complete", "interrupted"}
    # Every round logged complete stayed so through the kills (one may be complete unlogged:
    # killed between its commit and its log line): each "rounds" kill came after one, and the
    # last start logged one.
    assert sum(1 for s in done.values() if s == "complete") >= logged_complete >= 7 + 1, done
    assert _integrity(db) == [("ok",)]
    assert round_violations(url) == []


def test_start_up_marks_this_probes_crashed_round_and_leaves_other_probes_rounds(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    other = Installation.load(tmp_path / "another-probe")
    with open_store(url, installation=other) as store:  # another probe on this database, crashed
        foreign = store.begin_round()
    with open_store(url) as store:  # this probe (the daemon's installation), crashed
        crashed = store.begin_round()
    with loopback_targets(answering=1, silent=0, refused=0) as targets:
        settings = write_settings(tmp_path, targets.all, db_url=url, interval_s=60)
        with running_daemon(settings) as daemon:
            daemon.wait_for(COMPLETE)
            assert daemon.stop() == 0
    assert any(
        line.endswith("marked 1 unfinished round(s) of this probe as interrupted") for line in daemon.log
    )
    done = statuses(url)
    assert (done.pop(foreign), done.pop(crashed), set(done.values())) == (
        "running",
        "interrupted",
        {"complete"},
    )


# --- SIGTERM / SIGINT -------------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_round_marks_it_interrupted_and_exits_0(tmp_path: Path, signum: int) -> None:
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    with loopback_targets(answering=2, silent=2, refused=1) as targets:
        # The black holes hold the first round for 30 s: the signal surely lands inside it.
        settings = write_settings(tmp_path, targets.all, db_url=url, interval_s=60, timeout_s=30)
        with running_daemon(settings) as daemon:
            daemon.wait_for(STARTED)
            deadline = time.monotonic() + 10
            while "running" not in statuses(url).values():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            time.sleep(0.3)
            t0 = time.monotonic()
            daemon.proc.send_signal(signum)
            assert daemon.wait() == 0, "\n".join(daemon.log)
            assert time.monotonic() - t0 < 5, "shutdown waited for the round instead of interrupting it"
    assert list(statuses(url).values()) == ["interrupted"]
    assert round_violations(url) == []
    assert any("round interrupted by shutdown" in line for line in daemon.log)
    assert daemon.log[-1].endswith("probe.daemon: daemon stopped")


def test_sigterm_between_rounds_exits_0_with_every_round_complete(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    with loopback_targets(answering=2, silent=0, refused=1) as targets:
        settings = write_settings(tmp_path, targets.all, db_url=url, interval_s=60)
        with running_daemon(settings) as daemon:
            daemon.wait_for(COMPLETE)
            assert daemon.stop() == 0
    assert list(statuses(url).values()) == ["complete"]
    with open_store(url) as store:
        (info,) = store.last_rounds(5)
    assert (info.n_targets, info.n_measurements, info.n_failed, info.network_up) == (3, 3, 1, True)


def test_each_round_prunes_what_is_older_than_the_retention(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    with open_store(url) as store:  # a round from 2024, long past a 30-day retention
        rid = store.begin_round(started_at=BASE, n_targets=7)
        store.finish_round(rid, make_round(7), ended_at=BASE)
    with loopback_targets(answering=1, silent=0, refused=0) as targets:
        settings = write_settings(tmp_path, targets.all, db_url=url, interval_s=60, retention_days=30)
        with running_daemon(settings) as daemon:
            daemon.wait_for(r"probe\.daemon: pruned 7 measurement\(s\) older than 30 days")
            assert daemon.stop() == 0
    with open_store(url) as store:
        assert [(r.status, r.n_measurements) for r in store.last_rounds(5)] == [("complete", 1)]


def test_sigterm_during_a_long_prune_stops_the_daemon_promptly(tmp_path: Path) -> None:
    """The prune runs off the event loop and stops between its small transactions: a SIGTERM
    does not wait for the rest of it (docker stop grants 10 s)."""
    db = tmp_path / "probe.sqlite3"
    url = f"sqlite:///{db}"
    with open_store(url) as store:  # 8000 measurements from 2024, long past a 30-day retention
        rid = store.begin_round(started_at=BASE, n_targets=8000)
        store.finish_round(rid, make_round(8000), ended_at=BASE)
    with contextlib.closing(sqlite3.connect(db)) as slow:  # ~1 ms per deleted row: ~10 s in all
        slow.executescript(
            """
            CREATE TABLE slow_filler(x);
            WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300)
                INSERT INTO slow_filler SELECT x FROM c;
            CREATE TRIGGER slow_prune BEFORE DELETE ON measurements
                BEGIN SELECT count(*) FROM slow_filler a, slow_filler b; END;
            """
        )
    with loopback_targets(answering=1, silent=0, refused=0) as targets:
        settings = write_settings(tmp_path, targets.all, db_url=url, interval_s=60, retention_days=30)
        with running_daemon(settings) as daemon:
            daemon.wait_for(COMPLETE)  # the prune follows the round at once
            time.sleep(1.0)
            t0 = time.monotonic()
            daemon.proc.send_signal(signal.SIGTERM)
            assert daemon.wait(30) == 0, "\n".join(daemon.log)
            stopped_in = time.monotonic() - t0
    assert stopped_in < 4, f"shutdown waited {stopped_in:.1f} s for the prune"
    assert daemon.log[-1].endswith("probe.daemon: daemon stopped")
    assert not any("Traceback" in line for line in daemon.log), "\n".join(daemon.log)
    assert _integrity(db) == [("ok",)]
    with open_store(url) as store:
        (old, new) = sorted(store.last_rounds(5), key=lambda r: r.id)
    assert (old.status, new.status, new.n_measurements) == ("complete", "complete", 1)
    assert old.n_measurements > 0  # the round row keeps its count; some measurements remain
    with contextlib.closing(sqlite3.connect(db)) as check:
        (left,) = check.execute("SELECT count(*) FROM measurements WHERE round_id = ?", (old.id,)).fetchone()
    assert 0 < left < 8000  # stopped part-way, between two of its transactions


def test_a_rotated_ca_file_is_trusted_from_the_next_round_on(tmp_path: Path) -> None:
    """The daemon builds each round's TLS trust from the CA file as it is then, not once."""
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    old_ca, new_ca = trustme.CA(), trustme.CA()
    ca_file = tmp_path / "ca.pem"
    old_ca.cert_pem.write_to_path(str(ca_file))
    with (
        http_server(old_ca.issue_cert("127.0.0.1")) as old_site,
        http_server(new_ca.issue_cert("127.0.0.1")) as new_site,
    ):
        old_url, new_url = f"https://127.0.0.1:{old_site.port}/", f"https://127.0.0.1:{new_site.port}/"
        settings = write_settings(
            tmp_path, [old_url, new_url], db_url=url, interval_s=2.0, timeout_s=2.0, ca_file=ca_file
        )
        with running_daemon(settings) as daemon:
            daemon.wait_for(COMPLETE)
            rotated = tmp_path / "ca.pem.new"  # as an operator (or certbot) rotates it: a new file renamed
            new_ca.cert_pem.write_to_path(str(rotated))
            rotated.replace(ca_file)
            daemon.wait_for(COMPLETE, count=2)
            assert daemon.stop() == 0
    with contextlib.closing(sqlite3.connect(tmp_path / "probe.sqlite3")) as db:
        rows = db.execute(
            "SELECT round_id, input, tls_failure FROM measurements ORDER BY round_id, input"
        ).fetchall()
    first, second = sorted({rid for rid, _, _ in rows})[:2]
    by_round = {rid: {u: failure for r, u, failure in rows if r == rid} for rid in (first, second)}
    assert by_round == {
        first: {old_url: None, new_url: "ssl_unknown_authority"},
        second: {old_url: "ssl_unknown_authority", new_url: None},
    }


def test_bad_settings_exit_2_with_one_line_before_anything_is_written(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text("[schedule]\ninterval_minutes = -1\n", encoding="utf-8")
    daemon = start_daemon(settings)
    assert daemon.wait() == 2
    assert daemon.log == [
        f"probe: error: {settings}: schedule.interval_minutes: Input should be greater than 0"
    ]


# --- a database that cannot be written --------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs mounted for this test (root only): a disk that can really fill up."""
    where = tmp_path / "disk"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill up (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:
        for chunk in (65536, 512):  # then the last partial page too
            with contextlib.suppress(OSError):  # ENOSPC: full
                while True:
                    f.write(b"\0" * chunk)
    return filler


def test_a_full_disk_costs_rounds_not_the_daemon(tmp_path: Path, small_tmpfs: Path) -> None:
    db = small_tmpfs / "probe.sqlite3"
    url = f"sqlite:///{db}"
    with loopback_targets(answering=3, silent=0, refused=1) as targets:
        settings = write_settings(tmp_path, targets.all, db_url=url, interval_s=0.6)
        with running_daemon(settings) as daemon:
            daemon.wait_for(COMPLETE)
            filler = _fill(small_tmpfs)
            errors = daemon.wait_for(r"ERROR probe\.daemon: .*database or disk is full", count=2)
            assert daemon.proc.poll() is None
            before = len(daemon.wait_for(COMPLETE))
            filler.unlink()
            daemon.wait_for(COMPLETE, count=before + 2)  # it kept trying, and stores again
            assert daemon.stop() == 0
    assert all(re.fullmatch(rf"\S+ ERROR probe\.daemon: {re.escape(str(db))}: cannot .+", e) for e in errors)
    assert not any("Traceback" in line for line in daemon.log), "\n".join(daemon.log)
    # Not SQLite's I/O error of a -shm file it could not make again (the daemon keeps them).
    assert not any("disk I/O error" in line for line in daemon.log), "\n".join(daemon.log)
    assert _integrity(db) == [("ok",)]
    assert round_violations(url) == []
    assert "running" not in statuses(url).values()  # a round the full disk left running was marked


def test_a_read_only_database_file_is_reported_and_retried(tmp_path: Path) -> None:
    db = tmp_path / "probe.sqlite3"
    url = f"sqlite:///{db}"
    with open_store(url) as store:  # a crash left a round running: the start-up must write
        crashed = store.begin_round()
    # As root, permissions do not stop writes; the immutable attribute does.
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True, check=False).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system")
    try:
        with loopback_targets(answering=2, silent=0, refused=1) as targets:
            settings = write_settings(tmp_path, targets.all, db_url=url, interval_s=0.6)
            with running_daemon(settings) as daemon:
                errors = daemon.wait_for(r"ERROR probe\.daemon: .*readonly database", count=3)
                assert daemon.proc.poll() is None
                assert not any(re.search(COMPLETE, line) for line in daemon.log)
                subprocess.run(["chattr", "-i", str(db)], check=True)
                daemon.wait_for(COMPLETE, count=2)
                assert daemon.stop() == 0
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=False)
    assert errors[0].endswith(
        f"ERROR probe.daemon: {db}: cannot mark interrupted rounds: attempt to write a readonly database "
        "(will retry before the next round)"
    )
    round_failed = f"{db}: cannot start a round: attempt to write a readonly database (round not completed)"
    assert any(e.endswith(round_failed) for e in errors)
    assert not any("Traceback" in line for line in daemon.log), "\n".join(daemon.log)
    assert _integrity(db) == [("ok",)]
    assert round_violations(url) == []
    assert statuses(url)[crashed] == "interrupted"


# --- started where the database cannot be opened ----------------------------------------------


def test_started_on_a_full_disk_it_retries_each_round_until_there_is_space(
    tmp_path: Path, small_tmpfs: Path
) -> None:
    db = small_tmpfs / "probe.sqlite3"
    url = f"sqlite:///{db}"
    filler = _fill(small_tmpfs)
    with loopback_targets(answering=2, silent=0, refused=1) as targets:
        settings = write_settings(tmp_path, targets.all, db_url=url, interval_s=0.6)
        with running_daemon(settings) as daemon:
            errors = daemon.wait_for(r"ERROR probe\.daemon: ", count=3)
            assert daemon.proc.poll() is None
            filler.unlink()
            daemon.wait_for(COMPLETE)
            assert daemon.stop() == 0
    assert errors[0].endswith(f"ERROR probe.daemon: {db}: cannot open: database or disk is full (will retry)")
    assert all(e.endswith(f"{db}: cannot open: database or disk is full (round skipped)") for e in errors[1:])
    assert not any("Traceback" in line for line in daemon.log), "\n".join(daemon.log)
    assert _integrity(db) == [("ok",)]
    assert set(statuses(url).values()) == {"complete"}


@pytest.fixture
def read_only_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """An empty tmpfs mounted read-only (root only): nothing can be created in it, not even by root."""
    where = tmp_path / "ro"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=4m,mode=0755", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a read-only tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_started_where_the_database_cannot_be_created_it_retries_until_it_can(
    tmp_path: Path, read_only_tmpfs: Path
) -> None:
    db = read_only_tmpfs / "probe.sqlite3"
    url = f"sqlite:///{db}"
    with loopback_targets(answering=2, silent=0, refused=1) as targets:
        settings = write_settings(tmp_path, targets.all, db_url=url, interval_s=0.6)
        with running_daemon(settings) as daemon:
            errors = daemon.wait_for(r"ERROR probe\.daemon: ", count=3)
            assert daemon.proc.poll() is None
            subprocess.run(["mount", "-o", "remount,rw", str(read_only_tmpfs)], check=True)
            daemon.wait_for(COMPLETE)
            assert daemon.stop() == 0
    cannot = f"ERROR probe.daemon: {db}: cannot open: unable to open database file"
    assert errors[0].endswith(f"{cannot} (will retry)")
    assert all(e.endswith(f"{cannot} (round skipped)") for e in errors[1:])
    assert not any("Traceback" in line for line in daemon.log), "\n".join(daemon.log)
    assert set(statuses(url).values()) == {"complete"}


def test_a_bad_database_url_exits_2_at_start(tmp_path: Path) -> None:
    settings = write_settings(tmp_path, ["http://127.0.0.1:9/"], db_url="nosuchdb://x")
    daemon = start_daemon(settings)
    assert daemon.wait() == 2
    assert daemon.log == [
        "probe: error: nosuchdb://x: cannot open: unknown database type 'nosuchdb' (use sqlite or postgresql)"
    ]
