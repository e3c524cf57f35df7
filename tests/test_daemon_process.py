"""The daemon runs each round in a process of its own (:mod:`probe.rounds.process`).

What that must hold: the idle daemon keeps none of a round's modules; a round's process killed
from outside costs its round only; a daemon killed outright takes its round's process along;
and a database only one process could see is refused at start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trustme

from tests.daemon_harness import (
    DaemonProcess,
    child_processes,
    loopback_targets,
    running_daemon,
    start_daemon,
    write_settings,
)
from tests.servers.tcp_server import closed_port
from tests.storage.workers import round_violations, statuses

STARTED = r"probe\.daemon: daemon started"
COMPLETE = r"probe\.daemon: round \d+ complete"


def round_processes(daemon: DaemonProcess) -> list[int]:
    """The processes the daemon started."""
    return child_processes(daemon.proc.pid)


def wait_for_round_process(daemon: DaemonProcess, url: str, timeout: float = 20.0) -> int:
    """The round's process, once its round is stored as ``running``."""
    deadline = time.monotonic() + timeout
    while True:
        children = round_processes(daemon)
        if children and "running" in statuses(url).values():
            (child,) = children
            return child
        assert time.monotonic() < deadline, "no round began:\n" + "\n".join(daemon.drain())
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_daemon_imports_nothing_that_measures_or_stores() -> None:
    """What the daemon process imports is all it holds between rounds (26-28 MB, bench/daemon_rss.py)."""
    heavy = ["httpx", "dns", "sqlalchemy", "pydantic", "aioquic", "measurements", "probe.rounds.service"]
    code = (
        "import sys\nfrom probe.cli import main\nfrom probe.cli.daemon import daemon\n"
        "import probe.rounds.daemon, probe.rounds.logs\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    jobs = subprocess.run(  # a guard on the guard: a job's process does import them
        [sys.executable, "-c", code.replace("probe.rounds.logs", "probe.rounds.jobs")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert jobs.stdout.strip() == str(sorted(set(heavy) - {"aioquic"}))


def test_the_idle_daemon_keeps_none_of_the_rounds_modules(tmp_path: Path, ca: trustme.CA) -> None:
    """The round runs the HTTP/3 test, which imports aioquic and cryptography (+11.5 MB); the
    daemon, between rounds, has mapped neither: they were the round's process's."""
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    quic = f"https://127.0.0.1:{closed_port()}/"  # nothing answers: the test runs and fails
    with loopback_targets(answering=2, silent=0, refused=1) as targets:
        settings = write_settings(tmp_path, targets.all, db_url=url, interval_s=3600, ca_file=ca_file)
        (tmp_path / "endpoints.toml").write_text(f'[[http3]]\nrole = "site"\nurl = "{quic}"\n')
        text = settings.read_text().replace("http3 = false", 'http3 = true\nendpoints = "endpoints.toml"')
        settings.write_text(text)
        with running_daemon(settings) as daemon:
            daemon.wait_for(COMPLETE)
            maps = Path(f"/proc/{daemon.proc.pid}/maps").read_text()
            assert daemon.stop() == 0
    from sqlalchemy import select

    from measurements.store.store import open_store
    from measurements.store.tables import MeasurementRecord

    with open_store(url) as store, store.snapshot() as conn:
        tests = conn.execute(select(MeasurementRecord.test_name)).scalars().all()
    assert sorted(set(tests)) == ["http3", "web_connectivity"]  # the HTTP/3 test ran in the round
    assert "site-packages/aioquic/" not in maps
    assert "site-packages/cryptography/" not in maps
    assert "_ssl" in maps  # the daemon's maps were read, not an empty file


def test_a_round_process_killed_outright_costs_that_round_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    with loopback_targets(answering=2, silent=1, refused=1) as targets:
        settings = write_settings(tmp_path, targets.all, db_url=url, interval_s=1.0, timeout_s=3.0)
        with running_daemon(settings) as daemon:
            daemon.wait_for(STARTED)
            child = wait_for_round_process(daemon, url)
            os.kill(child, signal.SIGKILL)
            daemon.wait_for(
                r"ERROR probe\.daemon: round failed: the round's process ended without a result "
                r"\(killed by SIGKILL\)$"
            )
            daemon.wait_for(COMPLETE)
            assert daemon.stop() == 0
    rounds = statuses(url)
    assert rounds[min(rounds)] == "interrupted"  # marked by the daemon's clean-up before the next
    assert "complete" in rounds.values() and "running" not in rounds.values()
    assert round_violations(url) == []
    assert not any("Traceback" in line for line in daemon.log), "\n".join(daemon.log)


def test_a_daemon_killed_outright_takes_its_round_process_along(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    with loopback_targets(answering=1, silent=2, refused=0) as targets:
        # The black holes hold the round for 30 s: the kill lands inside it.
        settings = write_settings(tmp_path, targets.all, db_url=url, interval_s=60, timeout_s=30)
        with running_daemon(settings) as daemon:
            daemon.wait_for(STARTED)
            child = wait_for_round_process(daemon, url)
            daemon.proc.kill()
            daemon.wait()
            deadline = time.monotonic() + 5
            while alive(child):
                assert time.monotonic() < deadline, "the round's process outlived its daemon"
                time.sleep(0.02)
    # As when the round ran inside the daemon: left running, for the next start to mark.
    assert list(statuses(url).values()) == ["running"]
    assert round_violations(url) == []


def test_an_in_memory_database_exits_2_at_start(tmp_path: Path) -> None:
    for db_url in (
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file::memory:?uri=true",
        "sqlite:///file:memdb1?mode=memory&cache=shared&uri=true",
    ):
        settings = write_settings(tmp_path, ["http://127.0.0.1:9/"], db_url=db_url)
        daemon = start_daemon(settings)
        assert daemon.wait() == 2
        assert daemon.log == [
            f"probe: error: {db_url}: an in-memory database lives and dies with one process, and the "
            "daemon measures in processes of its own: give a file (sqlite:///PATH) or a database server"
        ]


def test_the_wal_files_outlive_each_rounds_process(tmp_path: Path) -> None:
    """The last connection to close deletes the ``-wal`` and ``-shm`` files, which a full disk
    would then keep the next round's process from making again (an I/O error where "disk is
    full" is the truth): the daemon's idle connection keeps them between rounds."""
    db = tmp_path / "probe.sqlite3"
    url = f"sqlite:///{db}"
    wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
    with loopback_targets(answering=1, silent=0, refused=0) as targets:
        settings = write_settings(tmp_path, targets.all, db_url=url, interval_s=3600)
        with running_daemon(settings) as daemon:
            daemon.wait_for(COMPLETE)
            deadline = time.monotonic() + 10
            while round_processes(daemon):  # the round's process prunes, closes and exits
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert wal.exists() and shm.exists()
            assert daemon.stop() == 0
    assert not wal.exists() and not shm.exists()  # the daemon's was the last connection


def test_the_hold_never_creates_the_database(tmp_path: Path) -> None:
    from probe.rounds.walhold import WalHold

    hold = WalHold(tmp_path / "absent.sqlite3")
    hold.keep()
    assert not hold.held and list(tmp_path.iterdir()) == []
    WalHold(None).keep()  # another database: nothing to hold


def test_a_stop_request_that_comes_while_a_job_imports_waits_for_it(tmp_path: Path) -> None:
    """SIGUSR1 (a round began: the upload stops after its request) kills a process that has no
    handler yet; the daemon's jobs start with it blocked, and take it once they have one."""
    import asyncio

    from probe.rounds import process

    settings = tmp_path / "settings.toml"
    settings.write_text("[schedule]\ninterval_minutes = -1\n", encoding="utf-8")
    job = process.StartJob(config_file=settings, database_url=None)
    unblocked = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    try:
        process.hold_stop_requests()
        held = asyncio.run(process.run(job, object, spawned=process.request_stop))
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)  # a guard on the guard
        with pytest.raises(process.JobCrashed, match=r"the start's process .* \(killed by SIGUSR1\)"):
            asyncio.run(process.run(job, object, spawned=process.request_stop))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, unblocked)
    assert held == process.Invalid(f"{settings}: schedule.interval_minutes: Input should be greater than 0")
