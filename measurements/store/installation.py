"""Who began a round, and whether it is still in flight: the installation id and its locks.

One database may be shared: several volunteers' probes writing to an operator's PostgreSQL,
or ``probe run`` beside the daemon on one SQLite file. A round therefore records the
:class:`Installation` that began it — a random id kept in the probe's data directory — and,
while it runs, the process that began it holds an exclusive ``flock`` on
``rounds/<database key>-<round id>.lock`` in that directory, which the kernel drops however
the process dies (``kill -9`` included). The crash clean-up
(:meth:`measurements.store.store.Store.mark_interrupted`) marks only this installation's rounds
whose lock it can take: never another probe's, never one still in flight.

A database's upload lock (:mod:`measurements.store.uploadlock`) lies beside a SQLite file or
in PostgreSQL; only a database with neither (an in-memory SQLite) has it in this directory
(``uploads/<database key>.lock``).

An installation is one machine's data directory: copied to a second machine, both are one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from sqlalchemy import URL

from probe.errors import StorageError

__all__ = ["FileLock", "Installation", "RoundLock", "data_dir", "database_key", "take_lock"]


def data_dir() -> Path:
    """The platform's user data directory for ``reachprobe`` (``$XDG_DATA_HOME/reachprobe`` on Linux).

    It holds the default database and the :class:`Installation`.
    """
    import platformdirs

    return platformdirs.user_data_path("reachprobe", appauthor=False)


@dataclass(frozen=True, slots=True)
class Installation:
    """One installed probe: the owner of the rounds it begins, in whichever database.

    :attr:`id` is a random UUID made the first time it is needed and kept in the file
    ``installation-id`` in :attr:`directory`. It is never derived from an address, a host
    name or hardware, never logged and never exported (no export selects ``rounds``): it
    only tells this installation's rounds from other probes' in a shared database. The
    directory also holds the locks of the rounds in flight.
    """

    id: str
    directory: Path

    @classmethod
    def load(cls, directory: Path | None = None) -> Installation:
        """The installation kept in *directory* (default: :func:`data_dir`), created on first use.

        Raises:
            StorageError: the directory or its ``installation-id`` cannot be created or read,
                or the file holds something other than an id (one line naming the file).
        """
        where = data_dir() if directory is None else directory
        return cls(_installation_id(where / "installation-id"), where)

    def lock_round(self, database: str, round_id: int) -> RoundLock | None:
        """Take the lock of round *round_id* of *database* (a :func:`database_key`) without waiting.

        Returns:
            The held lock, or ``None`` when a process holds it: the round is in flight.

        Raises:
            StorageError: the lock file cannot be created.
        """
        lock = take_lock(self.directory / "rounds" / f"{database}-{round_id}.lock", f"round {round_id}")
        return None if lock is None else RoundLock(lock.path, lock.file, round_id)

    def lock_uploads(self, database: str) -> FileLock | None:
        """Take the upload lock of *database* (a :func:`database_key`) in this directory,
        without waiting: for a database with neither a file beside which to lock nor a lock
        of its own (:mod:`measurements.store.uploadlock`).

        Returns:
            The held lock, or ``None`` when a process holds it: an upload to the collector is
            running (the daemon's, or a ``probe upload``).

        Raises:
            StorageError: the lock file cannot be created or opened.
        """
        return take_lock(self.directory / "uploads" / f"{database}.lock", "the uploads")


@dataclass(frozen=True, slots=True)
class FileLock:
    """A held lock: an open file with an exclusive ``flock`` on it. The file stays: a process
    that opened it meanwhile gets the lock once it is dropped, on the same file, never on
    a second file made at the same path."""

    path: Path
    file: IO[bytes]

    def release(self) -> None:
        """Drop the lock and close the file."""
        _flock(self.file, unlock=True)  # explicitly: a forked child may share the open file
        self.file.close()

    def __enter__(self) -> FileLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True, slots=True)
class RoundLock(FileLock):
    """A held round lock: the round is in flight while it is held."""

    round_id: int

    def release(self) -> None:
        """Remove the file, then drop the lock (one file per round: they must not pile up).

        In that order: a process that opened the file before gets the lock, finds the round
        no longer running and leaves it; one that opens the path later makes a new file.
        """
        with contextlib.suppress(OSError):
            self.path.unlink()
        FileLock.release(self)


def take_lock(path: Path, what: str) -> FileLock | None:
    """Lock *path* (created, with its directory, if need be) without waiting.

    The file is opened read-only when it exists (``flock`` needs no more), so a lock file
    another user made (a cron job as root beside the daemon's user) can still be taken.

    Returns:
        The held lock, or ``None`` if another process holds it.

    Raises:
        StorageError: the file cannot be created or opened (one line naming it).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        file = os.fdopen(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644), "rb")
    except OSError as exc:
        raise StorageError(f"{path}: cannot lock {what}: {exc.strerror or exc}") from exc
    if _flock(file):
        return FileLock(path, file)
    file.close()
    return None


def database_key(url: URL) -> str:
    """A short stable name of the database behind *url*, for its round lock files."""
    if url.get_backend_name() == "sqlite":
        name = url.database or ""
        if name in ("", ":memory:"):
            ident = f"memory:{uuid.uuid4()}"  # private to this store: no other process can see it
        else:
            ident = name if name.startswith("file:") else os.path.realpath(name)
    else:
        ident = url.set(drivername=url.get_backend_name(), password=None).render_as_string()
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def _flock(file: IO[bytes], *, unlock: bool = False) -> bool:
    """Lock *file* exclusively without waiting (or unlock it); ``False`` if another holds it."""
    if sys.platform == "win32":
        # No flock: every lock is "free", so a clean-up on Windows cannot see the rounds other
        # processes have in flight. (The daemon does not run there: it needs POSIX signals.)
        return True
    import fcntl

    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_UN if unlock else fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _installation_id(path: Path) -> str:
    """The id in *path*, written there first if the file does not exist yet."""
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".installation-id-", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="ascii") as f:
                    f.write(f"{uuid.uuid4()}\n")
                    f.flush()
                    os.fsync(f.fileno())  # never an empty id file after a power cut
                with contextlib.suppress(FileExistsError):  # another first start won: its id it is
                    os.link(tmp, path)  # unlike a rename, never replaces an id already given out
            finally:
                os.unlink(tmp)
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise StorageError(
            f"{path}: cannot create or read the installation id: {exc.strerror or exc}"
        ) from exc
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        problem = "not a reachprobe installation id (remove the file to make a new one)"
        raise StorageError(f"{path}: {problem}") from None
