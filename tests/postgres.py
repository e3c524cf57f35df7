"""The run's throw-away PostgreSQL cluster, and ``store_url`` over SQLite and over it.

Registered for every test by tests/conftest.py; one cluster serves the whole run (storage,
collector, upload, patterns, …), started on first use.

PostgreSQL is a throw-away cluster made with the Debian server binaries
(``/usr/lib/postgresql/*/bin`` or ``initdb`` on ``PATH``) in a temp directory, listening on a
unix socket there and a free loopback port, with fsync off; it is stopped and deleted at the
end of the run. initdb refuses to run as root, so as root the cluster runs as the
``postgres`` user. Each test gets its own database.

Without PostgreSQL (binaries, the ``postgres`` user when root, or psycopg) the PostgreSQL
half skips with the reason — except under ``CI=true``, where it fails: CI installs it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["free_port", "pg_cluster", "store_url"]


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI=true: {reason}")
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    """A loopback TCP port free a moment ago (the cluster's; the upload tests' collector's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _Cluster:
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="reachprobe-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self.user = ["runuser", "-u", "postgres", "--"]

    def run(self, *args: str) -> None:
        cmd = [*self.user, str(self.bindir / args[0]), *args[1:]]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> None:
        initdb = ("initdb", "-D", str(self.data), "-U", "reachprobe", "--auth=trust", "-E", "UTF8")
        self.run(*initdb, "--no-sync")
        options = (
            f"-k {self.dir} -p {self.port} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self.run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        try:
            self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://reachprobe@/{database}?host={self.dir}&port={self.port}"

    def database(self, prefix: str) -> str:
        """Create a new empty database (dropped with the cluster) and return its name."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.admin(f"CREATE DATABASE {name}")
        return name

    def admin(self, sql: str) -> None:
        import psycopg

        where = {"host": str(self.dir), "port": self.port, "user": "reachprobe", "dbname": "postgres"}
        with psycopg.connect(**where, autocommit=True) as conn:  # type: ignore[arg-type]
            conn.execute(sql.encode())  # psycopg types SQL as LiteralString; these names are ours


def _start() -> _Cluster | str:
    """A started cluster, or why there is none."""
    bindir = _pg_bin()
    if bindir is None:
        return "no initdb (install the Debian package 'postgresql')"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the psycopg driver is not installed (pip install 'psycopg[binary]')"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run initdb as"
    cluster = _Cluster(bindir)
    try:
        cluster.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        cluster.stop()
        return f"cannot start a cluster: {exc}"
    return cluster


_CLUSTER = pytest.StashKey["_Cluster | str"]()
"""The run's cluster, or why there is none: kept on the run's config, not on a fixture's cache."""


@pytest.fixture(scope="session")
def pg_cluster(request: pytest.FixtureRequest) -> _Cluster:
    """The run's throw-away PostgreSQL cluster (skips or, under CI, fails when unavailable).

    Started on first use and stopped when the run ends. It lives on the run's config rather
    than in this fixture's cache so that one cluster serves the whole run even where a
    conftest registers the fixture again (importing it makes a second fixture of it).
    """
    config = request.config
    if _CLUSTER not in config.stash:
        found = config.stash[_CLUSTER] = _start()
        if isinstance(found, _Cluster):
            config.add_cleanup(found.stop)
    found = config.stash[_CLUSTER]
    if isinstance(found, str):
        _missing(found)
    assert isinstance(found, _Cluster)
    return found


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'measurements.sqlite3'}"
        return
    cluster: _Cluster = request.getfixturevalue("pg_cluster")
    name = cluster.database("t")
    yield cluster.url(name)
    cluster.admin(f"DROP DATABASE {name} WITH (FORCE)")
