"""Alembic migrations of the measurement store, run in code by :func:`upgrade` (no ``alembic.ini``).

:func:`upgrade` builds an Alembic ``Config`` with ``script_location = "measurements.store:migrations"``
and hands ``env.py`` an open connection inside a write transaction (SQLite
``BEGIN IMMEDIATE``; on PostgreSQL a transaction-level advisory lock), so two processes
opening a fresh database at once migrate it exactly once.

To write a new revision during development (from the repository root)::

    python -c "from alembic import command; from measurements.store.migrations import config; \\
        c = config('sqlite:///dev.sqlite3'); command.upgrade(c, 'head'); \\
        command.revision(c, message='what changed', autogenerate=True, rev_id='0002')"

then review the generated file (make it use plain SQLAlchemy types) and set :data:`HEAD` to
its id (a test checks that HEAD is the head).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Connection, Engine

HEAD = "0005"
"""The newest revision in ``versions/``: when the database is there, Alembic is not even loaded."""

_PG_LOCK_KEY = 0x72656163  # "reac": any constant shared by every reachprobe process


class UnknownRevision(Exception):
    """The database is at a schema revision this code does not know (a newer reachprobe wrote it)."""


def config(url: str | None = None) -> Config:
    """An Alembic ``Config`` for these migrations, optionally with a database *url*."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", "measurements.store:migrations")
    if url is not None:
        cfg.set_main_option("url", url)
    return cfg


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at, ``None`` for an empty database."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> None:
    """Bring the database behind *engine* to :data:`HEAD`, in one transaction.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read or written.
        UnknownRevision: the database is at a revision this code does not know.
    """
    with engine.connect() as conn:
        current = current_revision(conn)
        if current == HEAD:
            return
        conn.rollback()
        from alembic.script import ScriptDirectory
        from alembic.util import CommandError

        cfg = config()
        try:
            if current is not None:
                ScriptDirectory.from_config(cfg).get_revision(current)
        except CommandError:
            raise UnknownRevision(
                f"its schema revision {current!r} is unknown to this reachprobe (a newer version wrote it)"
            ) from None
        conn.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            from alembic import command

            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
