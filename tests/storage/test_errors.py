"""A database that cannot be used gives one clear line, and never a half-written round.

Real files and real limits: a file that is not SQLite, a corrupted schema page, an immutable
(or, when not root, read-only) file, a file-size limit (RLIMIT_FSIZE) and, as root, a full
tmpfs.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from measurements.store.store import open_store
from probe.errors import DatabaseURLError, StorageError
from tests.storage.factories import make_round
from tests.storage.workers import FORK, round_violations


def one_line(err: pytest.ExceptionInfo[StorageError]) -> str:
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def _populated(path: Path) -> None:
    with open_store(f"sqlite:///{path}") as store:
        store.finish_round(store.begin_round(), make_round(5))


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("shopping list: milk, eggs, and definitely not a SQLite header\n" * 20)
    with pytest.raises(StorageError) as err:
        open_store(f"sqlite:///{path}")
    assert one_line(err) == f"{path}: cannot open: file is not a database"


def test_a_corrupted_schema_page(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    _populated(path)
    with path.open("r+b") as f:  # keep the 100-byte header, scribble over the schema table
        f.seek(100)
        f.write(b"\xa5" * 3000)
    with pytest.raises(StorageError) as err:
        open_store(f"sqlite:///{path}")
    assert one_line(err).startswith(f"{path}: cannot open: ")
    assert "malformed" in str(err.value)


@pytest.mark.parametrize(
    ("url", "error", "expected"),
    [
        ("not a url", DatabaseURLError, "not a url: not a database URL (e.g. sqlite:///path or postgresql://…)"),
        (
            "nosuchdb://h/db",
            DatabaseURLError,
            "nosuchdb://h/db: cannot open: unknown database type 'nosuchdb' (use sqlite or postgresql)",
        ),
        (
            "mysql://probe@h/m",
            DatabaseURLError,
            "mysql://probe@h/m: cannot open: the database driver 'MySQLdb' is not installed",
        ),
        # SQLite says the same for a missing directory and a forbidden one: the environment.
        (
            "sqlite:////nonexistent/m.db",
            StorageError,
            "/nonexistent/m.db: cannot open: unable to open database file",
        ),
    ],
)
def test_bad_urls(url: str, error: type[Exception], expected: str) -> None:
    """A URL that is not one is bad input (exit 2); one that cannot be opened, the environment (3)."""
    with pytest.raises(error) as err:
        open_store(url)
    assert type(err.value) is error
    assert one_line(err) == expected


def test_an_unreachable_postgresql_server_hides_the_password() -> None:
    with pytest.raises(StorageError) as err:
        open_store("postgresql://probe:s3cret@/m?host=/nonexistent-dir")
    message = one_line(err)
    assert message.startswith("postgresql+psycopg://probe:***@/m?host=%2Fnonexistent-dir: cannot open: ")
    assert "s3cret" not in message and "No such file or directory" in message


def test_a_database_from_a_newer_reachprobe(store_url: str) -> None:
    open_store(store_url).close()
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StorageError) as err:
        open_store(store_url)
    assert one_line(err).endswith(
        "cannot open: its schema revision '9999' is unknown to this reachprobe (a newer version wrote it)"
    )


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Path]:
    """A populated database file that this process cannot write (immutable when root)."""
    path = tmp_path / "m.sqlite3"
    _populated(path)
    if os.geteuid() == 0:
        if shutil.which("chattr") is None:
            pytest.skip(
                "root ignores file modes, and chattr (e2fsprogs) is missing to make the file immutable"
            )
        made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True, check=False)
        if made.returncode != 0:
            pytest.skip(f"root ignores file modes, and chattr +i failed: {made.stderr.strip()}")
        yield path
        subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o444)
        yield path
        path.chmod(0o644)


def test_a_read_only_database_file_reads_but_refuses_writes(read_only: Path) -> None:
    url = f"sqlite:///{read_only}"
    with open_store(url) as store:
        assert len(list(store.iter_measurements())) == 5
        with pytest.raises(StorageError) as err:
            store.begin_round()
        assert one_line(err) == f"{read_only}: cannot start a round: attempt to write a readonly database"
        with pytest.raises(StorageError, match=r"attempt to write a readonly database$"):
            store.prune(datetime.now(UTC))
    assert round_violations(url) == []


def _fill_past_the_limit(url: str, limit: int) -> None:
    """In a child: write a round that cannot fit under *limit* bytes, then retry without it."""
    store = open_store(url)
    rid = store.begin_round()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        store.finish_round(rid, make_round(400, first=1000))
    except StorageError as exc:
        message = str(exc)
    else:
        os._exit(3)
    expected = (
        f"{url.removeprefix('sqlite:///')}: cannot write round {rid}: disk I/O error (SQLITE_IOERR_WRITE)"
    )
    if message != expected:
        print(f"unexpected message: {message!r}", flush=True)
        os._exit(4)
    if len(list(store.iter_measurements())) != 5:
        os._exit(5)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    store.finish_round(rid, make_round(400, first=1000))  # space again: the same round goes through
    store.close()


def test_a_file_that_cannot_grow_fails_the_round_cleanly_and_the_retry_works(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    _populated(path)
    url = f"sqlite:///{path}"
    limit = path.stat().st_size + 64 * 1024
    child = FORK.Process(target=_fill_past_the_limit, args=(url, limit))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert round_violations(url) == []
    with open_store(url) as store:
        assert len(list(store.iter_measurements())) == 405


def test_a_full_disk(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the file-size-limit test covers the same path)")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        url = f"sqlite:///{disk / 'm.sqlite3'}"
        with open_store(url) as store:
            store.finish_round(store.begin_round(), make_round(5))
            rid = store.begin_round()
            with pytest.raises(StorageError) as err:
                store.finish_round(rid, make_round(400, first=1000))
            assert (
                one_line(err) == f"{disk / 'm.sqlite3'}: cannot write round {rid}: database or disk is full"
            )
            assert len(list(store.iter_measurements())) == 5
            assert store.last_rounds(1)[0].status == "running"
        assert round_violations(url) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)
