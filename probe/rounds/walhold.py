"""Keep a SQLite database's ``-wal`` and ``-shm`` files from one of the daemon's jobs to the next.

When the last connection to a database in WAL mode closes, SQLite checkpoints the WAL and
deletes both files; the next connection makes them again. With each round in a process of its
own (:mod:`probe.rounds.process`), every round would close the last connection and open the
first: on a full disk the next round could not make its ``-shm`` again, and SQLite would say
``disk I/O error (SQLITE_IOERR_SHMSIZE)`` where the truth the volunteer must read is "database
or disk is full". So the daemon keeps one idle connection open to the file, with the standard
library's ``sqlite3`` (not SQLAlchemy: the daemon stays small). It holds no transaction and no
lock on the database, only SQLite's shared lock on the ``-shm`` file, which tells the jobs'
connections that theirs is not the last.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path


class WalHold:
    """An idle connection to the SQLite file *path* (``None``: another database, nothing to hold)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    @property
    def held(self) -> bool:
        """Whether the connection is open."""
        return self._conn is not None

    def keep(self) -> None:
        """Open the connection unless it is open; best effort (a database that does not exist
        yet, or cannot be read, is left to the jobs, which report it). Blocking: it opens a
        file and reads the schema, which maps the ``-shm`` file."""
        if self.path is None or self._conn is not None:
            return
        uri = f"{self.path.resolve().as_uri()}?mode=rw"  # never create it: the start job does
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
        except sqlite3.Error:
            if conn is not None:
                conn.close()
            return
        self._conn = conn

    def close(self) -> None:
        """Close the connection (the jobs' last connection then cleans the files up)."""
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
