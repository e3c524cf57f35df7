"""Connections to the measurement database: the URL, the engine, and failures in one line.

SQLite (the default, at the platform data directory) runs in WAL mode with a 10 s busy
timeout, so an export reading while the daemon writes never sees "database is locked", and
``synchronous=NORMAL``, which in WAL mode loses nothing committed when a process dies. Its
write transactions begin with ``BEGIN IMMEDIATE`` when asked (``sqlite_begin``), so they
never fail half-way on a lock. ``postgresql://…`` uses psycopg 3; any other SQLAlchemy URL
is passed through. (The daemon never holds Alembic: it opens the database only in its jobs'
processes, :mod:`probe.rounds.jobs`.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from measurements.store.installation import data_dir
from probe.errors import DatabaseURLError, StorageError

__all__ = [
    "BUSY_TIMEOUT_MS",
    "create_engine_for",
    "database_name",
    "default_path",
    "display_name",
    "in_memory",
    "parse_url",
    "reason",
    "sqlite_file",
]

BUSY_TIMEOUT_MS = 10_000


def default_path() -> Path:
    """``measurements.sqlite3`` in :func:`~measurements.store.installation.data_dir`."""
    return data_dir() / "measurements.sqlite3"


def create_engine_for(url: str | None) -> tuple[Engine, str]:
    """The engine for *url* (``None``: SQLite at :func:`default_path`) and its display name.

    Nothing is connected yet. The name is what messages show: the SQLite file, or the URL
    without its password.

    Raises:
        DatabaseURLError: the URL is invalid, or its database type or driver is unknown or
            not installed (bad input: one line naming the URL and the problem).
        StorageError: the data directory cannot be created (the environment).
    """
    if url is None:
        path = default_path()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"{path}: cannot create the data directory: {exc.strerror}") from exc
        sa_url = URL.create("sqlite", database=str(path))
    else:
        sa_url = parse_url(url)
    name = display_name(sa_url)
    try:
        return _engine(sa_url), name
    except NoSuchModuleError as exc:
        problem = f"unknown database type {sa_url.get_backend_name()!r} (use sqlite or postgresql)"
        raise DatabaseURLError(f"{name}: cannot open: {problem}") from exc
    except (ArgumentError, ImportError) as exc:
        raise DatabaseURLError(f"{name}: cannot open: {reason(exc)}") from exc


def database_name(url: str | None) -> str:
    """The display name of the database at *url* (``None``: :func:`default_path`), opening nothing.

    Raises:
        DatabaseURLError: *url* is not a database URL.
    """
    return str(default_path()) if url is None else display_name(parse_url(url))


def parse_url(url: str) -> URL:
    """*url* as a SQLAlchemy URL, ``postgresql://`` meaning psycopg 3.

    Raises:
        DatabaseURLError: *url* is not a database URL (``URL: not a database URL (e.g. …)``).
    """
    try:
        sa_url = make_url(url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise DatabaseURLError(f"{url}: not a database URL (e.g. sqlite:///path or postgresql://…)") from exc
    if sa_url.drivername == "postgresql":
        sa_url = sa_url.set(drivername="postgresql+psycopg")
    return sa_url


def _engine(url: URL) -> Engine:
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        # Transactions are begun by _begin below: pysqlite's own implicit BEGIN is deferred and
        # would let a read transaction fail to upgrade to a write under contention.
        dbapi_conn.isolation_level = None
        for pragma in (
            f"busy_timeout = {BUSY_TIMEOUT_MS}",
            "journal_mode = WAL",
            "synchronous = NORMAL",
            "foreign_keys = ON",
        ):
            dbapi_conn.execute(f"PRAGMA {pragma}").close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get("sqlite_begin", "BEGIN"))

    return engine


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite database at *url*; ``None`` for another database, an in-memory
    one, or a ``file:`` URI (whose path SQLite resolves itself)."""
    name = url.database or ""
    if url.get_backend_name() != "sqlite" or name in ("", ":memory:") or name.startswith("file:"):
        return None
    return Path(name)


def in_memory(url: URL) -> bool:
    """Whether *url* is an in-memory SQLite database: one only the process that opens it sees."""
    name = url.database or ""
    uri_in_memory = name.startswith("file:") and (
        name.startswith("file::memory:") or "mode=memory" in name or url.query.get("mode") == "memory"
    )
    return url.get_backend_name() == "sqlite" and (name in ("", ":memory:") or uri_in_memory)


def display_name(url: URL) -> str:
    """The database as messages show it: the SQLite file, or the URL without its password."""
    if url.get_backend_name() == "sqlite":
        return url.database or ":memory:"
    return url.render_as_string(hide_password=True)


def reason(exc: BaseException) -> str:
    """The cause of *exc* on one line (the driver's message, not SQLAlchemy's wrapping)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, ModuleNotFoundError):
        return f"the database driver {exc.name!r} is not installed"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = " ".join(lines) or type(exc).__name__
    code = getattr(exc, "sqlite_errorname", "")  # e.g. SQLITE_IOERR_WRITE: which I/O failed
    return f"{reason} ({code})" if code.startswith("SQLITE_IOERR_") else reason
