"""Rounds belong to the installation that began them: crash clean-up touches only its own.

Several probes may write to one database (an operator's PostgreSQL), and ``probe run`` may
run beside the daemon on one SQLite file. A "crash" here is a real forked process killed
with SIGKILL in the middle of its round (tests/storage/workers.py).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import signal
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, insert, select

from measurements.store.export import CSV_COLUMNS, export
from measurements.store.installation import Installation
from measurements.store.rows import RoundInfo
from measurements.store.store import Store, open_store
from measurements.store.tables import Round
from probe.cli.status import collect
from probe.errors import StorageError
from probe.rounds.settings import Schedule
from tests.storage.factories import BASE, make_measurement, make_round
from tests.storage.workers import start_round_holder, statuses


def _owners(url: str) -> dict[int, str | None]:
    """Round id → the installation that began it."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {rid: owner for rid, owner in conn.execute(select(Round.id, Round.installation))}
    finally:
        engine.dispose()


def _locks(installation: Installation) -> list[str]:
    where = installation.directory / "rounds"
    return sorted(p.name for p in where.iterdir()) if where.exists() else []


# --- the installation id ----------------------------------------------------------------------


def test_the_installation_id_is_random_made_once_and_kept_private(tmp_path: Path) -> None:
    first = Installation.load(tmp_path / "a")
    assert Installation.load(tmp_path / "a") == first  # kept: the same on every start
    assert Installation.load(tmp_path / "b").id != first.id  # random: nothing of the machine in it
    assert uuid.UUID(first.id).version == 4
    path = tmp_path / "a" / "installation-id"
    assert path.read_text(encoding="ascii") == first.id + "\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["installation-id"]  # no temp file left


def test_the_default_installation_is_in_the_platform_data_directory(
    store: Store, probe_data_dir: Path
) -> None:
    assert not probe_data_dir.exists()  # opening and reading never touch it (probe status, export)
    store.last_rounds()
    list(store.iter_measurements())
    assert not probe_data_dir.exists()
    rid = store.begin_round()
    assert store.installation == Installation(
        (probe_data_dir / "installation-id").read_text(encoding="ascii").strip(), probe_data_dir
    )
    assert _locks(store.installation) != []  # held while the round is in flight
    store.finish_round(rid, [make_measurement(0)])
    assert _locks(store.installation) == []


def test_an_installation_id_file_with_something_else_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "installation-id"
    path.write_text("my-laptop\n", encoding="ascii")
    with pytest.raises(StorageError) as err:
        Installation.load(tmp_path)
    assert str(err.value) == f"{path}: not a reachprobe installation id (remove the file to make a new one)"


def test_a_data_directory_that_cannot_be_made_costs_the_round_not_the_store(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("", encoding="ascii")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "file"))  # a file where the directory goes
    path = tmp_path / "file" / "reachprobe" / "installation-id"
    with pytest.raises(StorageError) as err:
        store.begin_round()
    assert str(err.value) == f"{path}: cannot create or read the installation id: Not a directory"
    assert store.last_rounds() == []  # nothing written


# --- who marks what ---------------------------------------------------------------------------


def test_two_probes_on_one_database_each_clean_up_only_their_own_crash(
    store_url: str, tmp_path: Path
) -> None:
    a, b = Installation.load(tmp_path / "probe-a"), Installation.load(tmp_path / "probe-b")
    open_store(store_url).close()  # migrated before the fork
    crashed, a_round = start_round_holder(store_url, a.directory)  # probe A, mid-round
    try:
        with open_store(store_url, installation=b) as probe_b:
            # B starts up while A measures: A's round is not B's to mark.
            assert probe_b.mark_interrupted() == 0
            b_round = probe_b.begin_round()
            # A second process of A (a daemon starting beside `probe run`): A's round is in flight.
            with open_store(store_url, installation=a) as a_beside:
                assert a_beside.mark_interrupted() == 0
            assert statuses(store_url) == {a_round: "running", b_round: "running"}

            crashed.kill()  # A crashes mid-round
            crashed.join(10)
            assert crashed.exitcode == -signal.SIGKILL
            # B starting again leaves A's crashed round alone, and its own round in flight too.
            with open_store(store_url, installation=b) as b_again:
                assert b_again.mark_interrupted() == 0
            assert statuses(store_url) == {a_round: "running", b_round: "running"}
            # A restarting marks its own.
            with open_store(store_url, installation=a) as a_again:
                assert a_again.mark_interrupted() == 1
                assert a_again.mark_interrupted() == 0
            assert statuses(store_url) == {a_round: "interrupted", b_round: "running"}
            probe_b.finish_round(b_round, [make_measurement(0)])
    finally:
        if crashed.is_alive():
            crashed.kill()
            crashed.join(10)
    assert statuses(store_url) == {a_round: "interrupted", b_round: "complete"}
    assert _owners(store_url) == {a_round: a.id, b_round: b.id}
    assert _locks(a) == _locks(b) == []


def test_a_round_its_store_gave_up_is_marked_by_the_next_clean_up(store: Store, store_url: str) -> None:
    rid = store.begin_round()
    store.close()  # given up: unlocked, still running
    assert statuses(store_url) == {rid: "running"}
    with open_store(store_url) as again:  # the same installation (the default one)
        assert again.mark_interrupted() == 1
    assert statuses(store_url) == {rid: "interrupted"}
    store.finish_round(rid, [make_measurement(0)])  # its data is genuine all the same
    assert statuses(store_url) == {rid: "complete"}


def test_rounds_without_an_installation_are_never_marked(store: Store, store_url: str) -> None:
    """A round begun by a reachprobe older than revision 0003: nothing tells whether it is in flight."""
    legacy = {"started_at": BASE, "status": "running", "probe_asn": "AS0", "probe_cc": "ZZ",
              "software_version": "0.0.9", "config_digest": "", "n_targets": 3, "n_measurements": 0,
              "n_failed": 0, "n_errors": 0}  # fmt: skip
    with store.transaction("insert a legacy round") as conn:
        (old,) = conn.execute(insert(Round).values(legacy)).inserted_primary_key or (None,)
    mine = store.begin_round()
    store.close()
    assert store.mark_interrupted() == 1
    assert statuses(store_url) == {old: "running", mine: "interrupted"}
    assert _owners(store_url) == {old: None, mine: store.installation.id}


# --- privacy ----------------------------------------------------------------------------------


def test_the_installation_id_is_in_no_export_and_not_in_status(store: Store) -> None:
    store.finish_round(store.begin_round(), make_round(5))
    store.begin_round()
    secret = store.installation.id
    assert not any("installation" in column for column in CSV_COLUMNS)
    for format in ("csv", "jsonl"):
        out = io.StringIO()
        assert export(store, out, format=format) == 5
        assert secret not in out.getvalue()
    status = collect(store, Schedule(), now=datetime.now(UTC))
    assert secret not in json.dumps(status)
    assert len(status["rounds"]) == 2 and not any("installation" in r for r in status["rounds"])
    assert "installation" not in RoundInfo.__slots__


def test_no_lock_file_is_left_after_a_crash_is_cleaned_up(sqlite_url: str, tmp_path: Path) -> None:
    mine = Installation.load(tmp_path / "probe")
    crashed, rid = start_round_holder(sqlite_url, mine.directory)
    assert len(_locks(mine)) == 1
    os.kill(crashed.pid or 0, signal.SIGKILL)
    crashed.join(10)
    assert len(_locks(mine)) == 1  # what a kill -9 leaves behind
    with open_store(sqlite_url, installation=mine) as store:
        assert store.mark_interrupted() == 1
    assert _locks(mine) == []
    assert statuses(sqlite_url) == {rid: "interrupted"}


def test_a_sqlite_files_upload_lock_is_beside_it_whoever_takes_it(tmp_path: Path) -> None:
    """The daemon (its own data directory) and a cron job (another user's) lock the same file."""
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    daemon = open_store(url, installation=Installation.load(tmp_path / "daemon-home"))
    cron = open_store(url, installation=Installation.load(tmp_path / "cron-home"))
    with daemon, cron:
        held = daemon.lock_uploads()
        assert held is not None and held.path == tmp_path / "probe.sqlite3-upload.lock"
        assert cron.lock_uploads() is None
        held.release()
        again = cron.lock_uploads()
        assert again is not None
        again.release()


def test_an_upload_lock_released_while_another_process_opens_it_is_still_one_lock(tmp_path: Path) -> None:
    """A released lock keeps its file: a process that had opened it before the release, and
    one that opens it after, contend for one lock (a removed file would give them one each)."""
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    with open_store(url, installation=Installation.load(tmp_path / "home")) as store:
        first = store.lock_uploads()
        assert first is not None
        with first.path.open("rb") as opened_before:  # another process, between open and flock
            first.release()
            second = store.lock_uploads()
            assert second is not None
            with pytest.raises(BlockingIOError):
                fcntl.flock(opened_before.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            second.release()
            fcntl.flock(opened_before.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # free now


def test_one_upload_lock_per_database_on_each_backend(store_url: str, tmp_path: Path) -> None:
    """Two probes' processes (their own data directories) contend for one lock per database:
    beside a SQLite file, an advisory lock in PostgreSQL."""
    first = open_store(store_url, installation=Installation.load(tmp_path / "daemon-home"))
    second = open_store(store_url, installation=Installation.load(tmp_path / "cron-home"))
    with first, second:
        held = first.lock_uploads()
        assert held is not None
        assert second.lock_uploads() is None
        first._engine.dispose()  # the pool emptied meanwhile: the lock's connection is its own
        assert second.lock_uploads() is None
        held.release()
        again = second.lock_uploads()
        assert again is not None
        with again:
            assert first.lock_uploads() is None
        later = first.lock_uploads()
        assert later is not None
        later.release()
