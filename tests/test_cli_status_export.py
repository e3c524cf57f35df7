"""``probe status`` and ``probe export``: exact JSON, strict inputs, atomic files, and export while
a real daemon writes (no "database is locked")."""

from __future__ import annotations

import io
import json
import re
import resource
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from measurements.store.export import export
from measurements.store.rows import TargetInfo
from measurements.store.store import open_store
from probe.cli import main
from probe.cli.params import When
from probe.rounds.service import WRITE_BATCH
from tests.daemon_harness import loopback_targets, running_daemon, write_settings
from tests.storage.factories import BASE, make_measurement, make_round

COMPLETE = r"probe\.daemon: round \d+ complete"


def _store_rounds(url: str) -> None:
    """Two complete rounds (7 verdict kinds each, at BASE and BASE + 1 h) and one interrupted."""
    with open_store(url) as store:
        for hour in (0, 1):
            at = BASE + timedelta(hours=hour)
            rid = store.begin_round(started_at=at, n_targets=7, probe_asn="AS17557", probe_cc="PK")
            targets = [TargetInfo(f"https://site{j}.example/", "NEWS", "News Media") for j in range(7)]
            store.finish_round(
                rid, make_round(7, first=7 * hour, at=at), targets=targets, ended_at=at + timedelta(seconds=9)
            )
        store.begin_round(started_at=BASE + timedelta(hours=2), n_targets=7)
        store.mark_interrupted()


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    _store_rounds(url)
    return url


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- status -----------------------------------------------------------------------------------


def test_status_json(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "settings.toml"
    config.write_text("[schedule]\ninterval_minutes = 30\njitter_minutes = 2\n", encoding="utf-8")
    code, out, err = _run(capsys, "status", "--db", db, "--config", str(config), "--json")
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert doc["database"] == db.removeprefix("sqlite:///")
    assert doc["size_bytes"] > 0
    assert doc["schedule"] == {"interval_minutes": 30.0, "jitter_minutes": 2.0}
    # From the newest round's start (the interrupted one, BASE + 2 h) + 30 min, + up to 2 min.
    assert {k: v for k, v in doc["next_run"].items() if k != "basis"} == {
        "earliest": "2024-01-20T12:30:00Z",
        "latest": "2024-01-20T12:32:00Z",
        "overdue": True,
    }
    assert [(r["id"], r["status"], r["n_measurements"], r["n_failed"]) for r in doc["rounds"]] == [
        (3, "interrupted", 0, 0),
        (2, "complete", 7, 5),
        (1, "complete", 7, 5),
    ]
    assert doc["rounds"][1] == {
        "id": 2,
        "status": "complete",
        "started_at": "2024-01-20T11:00:00Z",
        "ended_at": "2024-01-20T11:00:09Z",
        "duration_s": 9.0,
        "n_targets": 7,
        "n_measurements": 7,
        "n_failed": 5,
        "n_errors": 0,
        "network_up": True,
        "control_reachable": True,
        "probe_asn": "AS17557",
        "probe_cc": "PK",
        "software_version": "",
    }
    # Currently failing, as of the newest complete round: the DNS, TCP, SNI, blockpage and down sites.
    failing = {f["url"]: (f["measured_at"], f["mechanism"]) for f in doc["failing_targets"]}
    assert sorted(failing) == [f"https://site{j}.example/" for j in range(1, 6)]
    assert {at for at, _ in failing.values()} == {f"2024-01-20T11:00:0{j}Z" for j in range(1, 6)}


def test_status_table_for_people(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "status", "--db", db)
    assert (code, err) == (0, "")
    assert "interrupted" in out and "complete" in out
    assert "next run 2024-01-20 13:00:00 … 2024-01-20 13:05:00 UTC" in out  # defaults: 60 + 5 min
    assert "overdue" in out
    assert "failing targets 5" in out


def test_status_of_a_database_that_does_not_exist_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.sqlite3"
    code, out, err = _run(capsys, "status", "--db", f"sqlite:///{missing}")
    assert (code, out) == (2, "")
    assert err == f"probe: error: {missing}: no database here (`probe run` or `probe daemon` creates it)\n"
    assert not missing.exists()


# --- export: inputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-20", datetime(2024, 1, 20, tzinfo=UTC)),
        ("2024-01-20T14:00", datetime(2024, 1, 20, 14, tzinfo=UTC)),
        ("2024-01-20 14:00:30", datetime(2024, 1, 20, 14, 0, 30, tzinfo=UTC)),
        ("2024-01-20T14:00:00Z", datetime(2024, 1, 20, 14, tzinfo=UTC)),
        ("2024-01-20T19:00+05:00", datetime(2024, 1, 20, 14, tzinfo=UTC)),
    ],
)
def test_export_times_are_iso_8601_utc_unless_an_offset_is_given(text: str, expected: datetime) -> None:
    assert When().convert(text, None, None) == expected


@pytest.mark.parametrize(
    ("text", "ago"), [("36h", timedelta(hours=36)), ("7d", timedelta(days=7)), ("2w", timedelta(weeks=2))]
)
def test_times_may_be_ages_before_now(text: str, ago: timedelta) -> None:
    now = datetime(2024, 2, 17, 9, tzinfo=UTC)
    assert When(now=now).convert(text, None, None) == now - ago


@pytest.mark.parametrize(
    "argv",
    [
        ["--since", "2024-13-01"],
        ["--since", "2024-02-30"],
        ["--since", "yesterday"],
        ["--since", "20240120"],  # ISO basic format: Python accepts it, we do not (ambiguous to people)
        ["--until", "2024-1-20"],
        ["--until", "2024-01-20T25:00"],
        ["--since", "2024-01-21", "--until", "2024-01-20"],
        ["--asn", "ASX"],
        ["--format", "xml"],
    ],
)
def test_export_bad_input_is_one_line_and_exit_2(
    db: str, argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_file = tmp_path / "out.csv"
    args = ["--format", "csv", *argv] if "--format" not in argv else argv
    code, out, err = _run(capsys, "export", *args, "--db", db, "-o", str(out_file))
    assert (code, out) == (2, "")
    assert err.startswith("probe: error: ") and err.count("\n") == 1, err
    assert not out_file.exists()


# --- export: output ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_to_stdout_and_to_a_file_are_the_same_bytes_as_the_library(
    db: str, fmt: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = io.StringIO(newline="")
    with open_store(db) as store:
        assert export(store, expected, format=fmt, since=BASE + timedelta(hours=1), asn="AS17557") == 7  # type: ignore[arg-type]
    filters = ["--since", "2024-01-20T11:00Z", "--asn", "17557"]
    code, out, err = _run(capsys, "export", "--format", fmt, *filters, "--db", db)
    assert (code, out, err) == (0, expected.getvalue(), "exported 7 measurements to stdout\n")
    target = tmp_path / f"out.{fmt}"
    code, out, err = _run(capsys, "export", "--format", fmt, *filters, "--db", db, "-o", str(target))
    assert (code, out, err) == (0, "", f"exported 7 measurements to {target}\n")
    assert target.read_bytes() == expected.getvalue().encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["probe.sqlite3", target.name])


def test_export_into_a_missing_directory_is_one_line(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "no" / "such" / "out.csv"
    code, out, err = _run(capsys, "export", "--format", "csv", "--db", db, "-o", str(target))
    assert (code, out) == (2, "")
    assert err == f"probe: error: {target}: cannot write: No such file or directory\n"


def test_an_export_that_fails_half_way_leaves_the_old_file_and_no_part_file(db: str, tmp_path: Path) -> None:
    """The exporting process may write at most 4 KiB per file (RLIMIT_FSIZE): the CSV is bigger."""
    target = tmp_path / "out.csv"
    target.write_text("the previous export\n", encoding="utf-8")

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))

    with open_store(db) as store:  # keeps the WAL index open, so the child need not grow any file
        store.last_rounds(1)
        done = subprocess.run(
            [sys.executable, "-m", "probe.cli", "export", "--format", "jsonl", "--db", db, "-o", str(target)],
            capture_output=True,
            text=True,
            preexec_fn=small_files,
            timeout=60,
            check=False,
        )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"probe: error: {target}: cannot write: File too large\n"
    assert target.read_text(encoding="utf-8") == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["probe.sqlite3", "out.csv"])


# --- export while the daemon writes -----------------------------------------------------------


def test_export_while_the_daemon_writes_never_sees_a_locked_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    with loopback_targets(answering=10, silent=0, refused=10) as targets:
        settings = write_settings(tmp_path, targets.all, db_url=url, interval_s=0.3, timeout_s=2)
        with running_daemon(settings) as daemon:
            daemon.wait_for(COMPLETE)
            # In this process: as many exports as fit in 3 s, each a full consistent snapshot.
            exports, deadline = 0, time.monotonic() + 3
            with open_store(url) as store:
                while time.monotonic() < deadline:
                    out = io.StringIO()
                    n = export(store, out, format="jsonl")
                    # Whole batches only: complete rounds of 20, and the round in flight's
                    # committed batches of WRITE_BATCH (16) measurements.
                    assert n % 20 in (0, WRITE_BATCH) and out.getvalue().count("\n") == n
                    exports += 1
            # And the command itself, twice, to a file.
            for fmt in ("csv", "jsonl"):
                target = tmp_path / f"out.{fmt}"
                done = subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "probe.cli",
                        "export",
                        "--format",
                        fmt,
                        "--db",
                        url,
                        "-o",
                        str(target),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                assert done.returncode == 0, done.stderr
                assert "locked" not in done.stderr
            assert daemon.stop() == 0
    rounds = sum(1 for line in daemon.log if re.search(COMPLETE, line))
    assert rounds >= 3, "the daemon hardly wrote while we exported"
    assert exports >= 3
    assert not any("locked" in line or "ERROR" in line for line in daemon.log), "\n".join(daemon.log)


def test_status_lists_a_confirmed_blockpage_that_ooni_calls_accessible(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Surf Safely every round: OONI's keys say (false, true); status said "failing targets none"."""
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    surf_safely = "cp.b_nat_pak_isp_common_blockpage"
    with open_store(url) as store:
        for hour in (0, 1):
            at = BASE + timedelta(hours=hour)
            rid = store.begin_round(started_at=at, n_targets=2, probe_asn="AS17557", probe_cc="PK")
            blockpaged = make_measurement(
                2 * hour,
                url="http://www.youtube.com/",
                at=at,
                mechanism="http.blockpage",
                confirmed=surf_safely,
            )
            fine = make_measurement(2 * hour + 1, url="https://en.wikipedia.org/", at=at)
            store.finish_round(rid, [blockpaged, fine], ended_at=at + timedelta(seconds=5))
    code, out, err = _run(capsys, "status", "--db", url)
    assert (code, err) == (0, "")
    lines = [line.rstrip() for line in out.splitlines()]
    start = lines.index("failing targets 1: 1 blocked (confirmed)")
    assert lines[start + 1 :] == [
        " target                   network     measured (UTC)       outcome"
        + " " * 49
        + "mechanism       failure",
        " http://www.youtube.com/  AS17557 PK  2024-01-20 11:00:00  blocked (confirmed: "
        "cp.b_nat_pak_isp_common_blockpage)  http.blockpage",
    ]
    code, out, _ = _run(capsys, "status", "--db", url, "--json")
    [failing] = json.loads(out)["failing_targets"]
    assert (failing["url"], failing["outcome"], failing["blocking"], failing["accessible"]) == (
        "http://www.youtube.com/",
        "blocked.confirmed",
        "false",
        True,
    )


def test_status_orders_failing_targets_by_outcome_and_counts_them(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "status", "--db", db)
    assert code == 0
    assert "failing targets 5: 1 blocked (confirmed), 3 blocked (anomaly), 1 site down" in out
    rows = [line.split()[0] for line in out.splitlines() if line.startswith(" https://site")]
    assert rows == [f"https://site{j}.example/" for j in (4, 1, 2, 3, 5)]
