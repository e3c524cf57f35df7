"""``probe upload`` (cron's command) and what ``probe status`` says of the upload."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from measurements.store.store import open_store
from probe.cli import main
from tests.upload.fakecollector import fake_collector
from tests.upload.helpers import HOLD_UPLOAD_LOCK, fill


def _settings(tmp_path: Path, url: str | None) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(
        f'[upload]\ncollector_url = "{url}"\nbatch_size = 7\n' if url else "[upload]\nbatch_size = 7\n"
    )
    return path


def _store(tmp_path: Path, *, rounds: int = 2, per_round: int = 6, running: int = 0) -> str:
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    with open_store(url) as store:
        fill(store, rounds=rounds, per_round=per_round)
        if running:
            fill(store, rounds=1, per_round=running, first=1000, finish=False)
    return url


def test_upload_sends_everything_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _store(tmp_path, running=3)
    with fake_collector() as (fake, url):
        config = _settings(tmp_path, url)
        assert main(["upload", "--config", str(config), "--db", db]) == 0
        out = capsys.readouterr().out
        assert out == (
            f"uploaded 12 measurement(s) to {url} in 2 report(s); 0 not uploaded yet; "
            "3 in a round still running\n"
        )
        assert fake.stores == 12
        assert main(["upload", "--config", str(config), "--db", db, "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
    assert doc == {
        "collector": url,
        "uploaded": 0,
        "failed": 0,
        "rejected": 0,
        "reports_opened": 0,
        "reports_reopened": 0,
        "errors": {},
        "stopped": None,
        "left": {
            "pending": 0,
            "in_running_rounds": 3,
            "failed": 0,
            "failed_due": 0,
            "uploaded": 12,
            "oldest_pending_at": None,
            "next_attempt_at": None,
            "last_error": None,
        },
    }


def test_an_unreachable_collector_is_recorded_not_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _store(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/"
        config = _settings(tmp_path, url)
        assert main(["upload", "--config", str(config), "--db", db]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"uploaded 0 measurement(s) to {url}; 1 failed (1 connection_refused; tried again later); "
        "12 not uploaded yet (1 failed)\n"
    )
    assert main(["status", "--config", str(config), "--db", db, "--json"]) == 0
    up = json.loads(capsys.readouterr().out)["upload"]
    assert (up["collector"], up["pending"], up["failed"], up["uploaded"], up["last_error"]) == (
        url,
        11,
        1,
        0,
        "connection_refused",
    )
    assert main(["status", "--config", str(config), "--db", db]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("upload "))
    assert line.startswith(
        f"upload {url}: 0 uploaded, 11 pending, 1 failed (last: connection_refused, next try "
    )


def test_status_says_nothing_of_uploads_without_a_collector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _store(tmp_path, rounds=1, per_round=1)
    assert main(["status", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["upload"] is None


def test_no_collector_configured_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _store(tmp_path, rounds=1, per_round=1)
    config = _settings(tmp_path, None)
    assert main(["upload", "--config", str(config), "--db", db]) == 2
    assert capsys.readouterr().err == (
        f"probe: error: {config}: upload.collector_url: not set: nothing is uploaded unless a collector is "
        "configured (the [upload] section of the settings file, --config)\n"
    )


def test_a_missing_database_is_bad_input_and_an_unreadable_one_a_storage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _settings(tmp_path, "http://127.0.0.1:9/")
    assert main(["upload", "--config", str(config), "--db", f"sqlite:///{tmp_path / 'typo.sqlite3'}"]) == 2
    assert "no database here" in capsys.readouterr().err
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    assert main(["upload", "--config", str(config), "--db", f"sqlite:///{garbage}"]) == 3
    assert capsys.readouterr().err.startswith(f"probe: error: {garbage}: cannot ")


def test_an_upload_already_running_from_the_database_makes_the_next_send_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cron's ``probe upload`` beside the daemon's upload: the second finds the lock taken."""
    db = _store(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_UPLOAD_LOCK, db], stdout=subprocess.PIPE, text=True, env=os.environ
    )
    with fake_collector() as (fake, url):
        config = _settings(tmp_path, url)
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "held\n"
            assert main(["upload", "--config", str(config), "--db", db]) == 0
            assert capsys.readouterr().out == (
                "another upload from this database is running (the daemon's?): sent nothing; "
                "12 not uploaded yet\n"
            )
            assert main(["upload", "--config", str(config), "--db", db, "--json"]) == 0
            doc = json.loads(capsys.readouterr().out)
            assert (doc["stopped"], doc["uploaded"], doc["left"]["pending"]) == (
                "another_upload_running",
                0,
                12,
            )
            assert fake.stores == 0
        finally:
            holder.kill()
            holder.communicate()
        assert main(["upload", "--config", str(config), "--db", db]) == 0  # the kernel dropped the lock
        assert capsys.readouterr().out.startswith(f"uploaded 12 measurement(s) to {url} ")
        assert fake.stores == 12
