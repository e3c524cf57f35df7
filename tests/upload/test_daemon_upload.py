"""The daemon uploads after each round, in the background: a slow collector never delays a round."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from measurements.store.store import open_store
from measurements.store.uploads import counts
from tests.daemon_harness import loopback_targets, running_daemon, write_settings
from tests.upload.fakecollector import Reply, fake_collector
from tests.upload.helpers import HOLD_UPLOAD_LOCK, now

COMPLETE = r"probe\.daemon: round \d+ complete"
INTERVAL_S = 4.0
"""Rounds in these tests: each round's process and each upload's takes about a second to
start (its imports), and a round that begins stops the upload in flight after its request;
an interval shorter than the two starts would stop every upload before its first request."""


def _with_upload(settings: Path, url: str, **extra: object) -> None:
    lines = [f'collector_url = "{url}"', *(f"{k} = {v!r}" for k, v in extra.items())]
    with settings.open("a", encoding="utf-8") as f:
        f.write("\n[upload]\n" + "\n".join(lines) + "\n")


def test_every_completed_round_is_uploaded_once(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    with fake_collector() as (fake, url), loopback_targets(answering=2, silent=0, refused=1) as targets:
        settings = write_settings(tmp_path, targets.all, db_url=db, interval_s=INTERVAL_S)
        _with_upload(settings, url)
        with running_daemon(settings) as daemon:
            # Each round's three measurements, in one report per round (a busy machine may
            # leave a round's upload to the next one's: then two reports in one line).
            uploaded = daemon.wait_for(
                r"probe\.daemon: upload: \d+ measurement\(s\) uploaded", timeout=90, count=3
            )
            assert all(re.search(r"uploaded in \d+ report\(s\), 0 failed", line) for line in uploaded)
            assert daemon.stop() == 0
        # No upload lost to a round's stop request (nor anything else).
        assert not any(" ERROR " in line for line in daemon.log), "\n".join(daemon.log)
        with open_store(db) as store:
            complete = [r for r in store.last_rounds(100) if r.status == "complete"]
            state = counts(store, now=now())
        # Every measurement of a complete round is at the collector, once; a round the stop
        # interrupted keeps its measurements for the next upload.
        assert state.uploaded == fake.stores == len(fake.measurements)
        assert state.uploaded >= 3 * 3
        assert state.uploaded + state.pending == sum(r.n_measurements for r in store.last_rounds(100))
        assert len(fake.reports) == len({rid for rid, r in fake.reports.items() if r["uids"]})
        # One report per round, but for an upload a round began in: it stopped after its
        # request, and the next upload sends the rest of that round in a report of its own.
        stopped = sum(1 for line in daemon.log if line.endswith("; stopped for the round"))
        assert len(complete) + stopped >= len(fake.reports)


def test_a_collector_that_hangs_delays_no_round_and_no_shutdown(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    release = threading.Event()

    def hang(path: str, body: Any) -> Reply | None:
        release.wait(60)
        return None

    with fake_collector() as (fake, url), loopback_targets(answering=1, silent=0, refused=0) as targets:
        fake.script = hang
        settings = write_settings(tmp_path, targets.all, db_url=db, interval_s=INTERVAL_S)
        _with_upload(settings, url, timeout=60.0)
        try:
            with running_daemon(settings) as daemon:
                # An upload reaches the collector and waits on it; rounds go on meanwhile, and
                # no second upload starts beside it (its deadline is one interval from its
                # start, a second after its round ended: the next round ends before that).
                deadline = time.monotonic() + 60
                while not fake.requests:
                    assert time.monotonic() < deadline, "\n".join(daemon.drain())
                    time.sleep(0.05)
                rounds = len(daemon.wait_for(COMPLETE))
                daemon.wait_for(
                    r"probe\.daemon: upload: the previous upload is still running; none started", timeout=90
                )
                assert len(fake.requests) == 1
                daemon.wait_for(COMPLETE, count=rounds + 1, timeout=90)
                assert daemon.stop() == 0
        finally:
            release.set()
        # The upload that hangs ends at its deadline (one interval, 4 s here) or, if one is
        # under way at the stop, by the shutdown: either way it never held a round or the stop.
        ends = ("upload: stopped by shutdown", "upload: stopped at its deadline")
        assert any(end in line for line in daemon.log for end in ends)
        with open_store(db) as store:
            assert counts(store, now=now()).uploaded == 0


def test_no_daemon_upload_beside_another_upload_from_the_database(tmp_path: Path) -> None:
    """While ``probe upload`` (here: a process holding the store's upload lock) runs, the
    daemon's rounds start no upload; once it ends, the next round's upload sends everything."""
    db = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    with fake_collector() as (fake, url), loopback_targets(answering=1, silent=0, refused=0) as targets:
        settings = write_settings(tmp_path, targets.all, db_url=db, interval_s=INTERVAL_S)
        _with_upload(settings, url)
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_UPLOAD_LOCK, db], stdout=subprocess.PIPE, text=True, env=os.environ
        )
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            with running_daemon(settings) as daemon:
                daemon.wait_for(
                    r"probe\.daemon: upload: another upload from this database is running", count=2
                )
                assert fake.stores == 0
                holder.kill()
                holder.communicate()
                # The rounds of the locked time are caught up (an upload a round stops part-way
                # leaves the rest to the next).
                deadline = time.monotonic() + 60
                while fake.stores < 2:
                    assert time.monotonic() < deadline, "\n".join(daemon.log)
                    time.sleep(0.05)
                assert daemon.stop() == 0
        finally:
            if holder.poll() is None:
                holder.kill()
                holder.communicate()
