"""The upload lock of a database: one upload to the collector at a time, whoever starts it.

The daemon uploads after each round and ``probe upload`` from cron; two at once would send
the same measurements side by side (the collector keeps each once, but the link carries
them twice and each process records the other's answers over its own). The lock belongs to
the database, so that every process that writes it takes the same one:

- **SQLite:** an ``flock`` on the file ``<database>-upload.lock`` beside the database (as its
  ``-wal`` is), whatever the user or data directory of the process
  (:func:`~measurements.store.installation.take_lock`);
- **PostgreSQL:** a session-level advisory lock (``pg_try_advisory_lock``) held on a
  connection of its own for the upload's length; the server drops it with the session,
  when the lock is released or the process dies;
- **anything else** (an in-memory SQLite): a file in the installation's directory.
"""

from __future__ import annotations

import hashlib
from typing import Final, Protocol

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from measurements.store.engine import sqlite_file
from measurements.store.installation import Installation, database_key, take_lock
from probe.errors import StorageError

__all__ = ["HeldLock", "lock_uploads"]

ADVISORY_KEY: Final = int.from_bytes(hashlib.sha256(b"reachprobe uploads").digest()[:8], "big", signed=True)
"""The advisory lock's 64-bit key in PostgreSQL (one per database: advisory locks are)."""


class HeldLock(Protocol):
    """A lock that is held until released (or the ``with`` block ends)."""

    def release(self) -> None: ...

    def __enter__(self) -> HeldLock: ...

    def __exit__(self, *exc: object) -> None: ...


def lock_uploads(engine: Engine, installation: Installation) -> HeldLock | None:
    """Take the upload lock of *engine*'s database without waiting.

    Returns:
        The held lock, or ``None``: another process is uploading from this database.

    Raises:
        StorageError: the lock cannot be taken (a file that cannot be created, a database
            that does not answer).
    """
    url = engine.url
    file = sqlite_file(url)
    if file is not None:
        return take_lock(file.with_name(file.name + "-upload.lock"), "the uploads")
    if url.get_backend_name() == "postgresql":
        return _AdvisoryLock.take(engine)
    return installation.lock_uploads(database_key(url))


class _AdvisoryLock:
    """PostgreSQL's session-level advisory lock, on a connection kept for the purpose."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @classmethod
    def take(cls, engine: Engine) -> _AdvisoryLock | None:
        try:
            conn = engine.connect()
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot lock the uploads: {exc.__class__.__name__}") from exc
        try:
            held = conn.execute(select(func.pg_try_advisory_lock(ADVISORY_KEY))).scalar()
            conn.commit()  # the lock is the session's: no transaction stays open meanwhile
        except SQLAlchemyError as exc:
            conn.invalidate()
            conn.close()
            raise StorageError(f"cannot lock the uploads: {exc.__class__.__name__}") from exc
        if not held:
            conn.close()
            return None
        return cls(conn)

    def release(self) -> None:
        """End the lock's session: PostgreSQL drops a session's advisory locks with it.

        The connection is closed for good, not returned to the pool: the pool may have been
        emptied meanwhile (``Engine.dispose``, :meth:`~measurements.store.store.Store.close`),
        and a connection returned to an emptied pool would stay open until it is collected.
        """
        self._conn.invalidate()
        self._conn.close()

    def __enter__(self) -> _AdvisoryLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
