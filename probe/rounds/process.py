"""The daemon's work in processes of their own, so that the daemon itself idles small.

``probe daemon`` is a scheduler. Everything that measures or touches the database runs in a
short-lived process it starts (:mod:`probe.rounds.jobs`): the start (settings, target lists,
opening and migrating the database, the crash clean-up), each round (with its clean-up and
the prune after it) and each upload. A round allocates as it goes and frees most of it, but
the allocators keep what was freed and modules stay imported: run inside the daemon, a round
of 5,000 targets left it at 84 MB for the hour until the next (issue 12: a volunteer's
Raspberry Pi). A process of its own gives all of it back when it exits; between rounds the
daemon holds its schedule and the plan, pickled.

This module is the daemon's side and imports nothing heavy: no httpx, no SQLAlchemy.

- **The exchange.** :func:`run` starts ``python -P -m probe.rounds.jobs PID`` with the daemon's
  interpreter and environment, writes the pickled job to its stdin and reads one pickled
  outcome from its stdout. The job's log lines go to the stderr both share.
- **Stopping.** A cancelled :func:`run` sends the process SIGTERM, which cancels its work
  there (a round marks itself ``interrupted``, a prune stops between two transactions, an
  upload records what the collector acknowledged), then waits up to :data:`STOP_GRACE_S`
  before it kills it. The jobs run in sessions of their own, so a terminal's Ctrl-C reaches
  only the daemon, which stops them as it stops. :data:`STOP_REQUEST` (SIGUSR1) asks an upload
  to stop after its current request; the daemon blocks it, so that its jobs start with it
  blocked and none is lost or fatal while a job still imports (:func:`hold_stop_requests`).
- **A daemon killed outright** (``kill -9``, the OOM killer) takes its jobs along: their
  parent-death signal is SIGKILL (Linux). As when the round ran inside the daemon, the round is
  left ``running`` and the next start marks it ``interrupted``.
- **A job that ends without an outcome** (killed by hand, a crash, an upgrade whose code
  cannot read the running daemon's plan): :class:`JobCrashed`; the job logged why, if it could.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from probe.rounds.settle import settled

log = logging.getLogger("probe.daemon")

STOP_GRACE_S = 20.0
"""Seconds a stopped job gets to end its work cleanly (a round: mark itself ``interrupted``
after the write in flight) before it is killed."""

STOP_REQUEST = signal.SIGUSR1
"""Sent to an upload when a round begins: stop after the current request."""

Outcome = TypeVar("Outcome")


@dataclass(frozen=True, slots=True)
class StartJob:
    """Read the settings and target lists, open (and migrate) the database, clean up."""

    config_file: Path | None
    database_url: str | None
    """``--db``; ``None``: the settings' ``storage.database_url``."""
    log_level: int = logging.INFO


@dataclass(frozen=True, slots=True)
class Started:
    """The daemon may start: what it schedules with."""

    plan: bytes
    """The round's plan (:class:`~probe.rounds.service.RoundPlan`), pickled: the daemon never
    unpickles it, so it never imports what measures."""
    database_url: str | None
    database_name: str
    sqlite_file: Path | None
    """The database's file if it is SQLite's: the daemon keeps its WAL files (:mod:`probe.rounds.walhold`)."""
    n_targets: int
    interval_minutes: float
    jitter_minutes: float
    upload: bytes | None
    """The ``[upload]`` settings, pickled, when a collector is configured: each completed
    round is then followed by an upload."""
    clean: bool
    """The crash clean-up was done (else the next round does it)."""


@dataclass(frozen=True, slots=True)
class Invalid:
    """Bad input: the settings, a target list or the database URL (one line; exit 2)."""

    message: str


@dataclass(frozen=True, slots=True)
class RoundJob:
    """Measure one round of *plan* into the database, then prune it."""

    plan: bytes
    database_url: str | None
    clean_up: bool
    """Mark this installation's crashed rounds ``interrupted`` first (after a failure)."""
    log_level: int = logging.INFO


@dataclass(frozen=True, slots=True)
class RoundEnded:
    """How a round job ended (its log lines say the rest)."""

    completed: bool
    """The round is stored and complete."""
    clean: bool
    """Nothing a failure left needs cleaning up before the next round."""
    plan: bytes | None
    """The plan with its files read again (a rotated CA file), for the next round; ``None``:
    they could not be read, and the round measured with the previous plan."""


@dataclass(frozen=True, slots=True)
class UploadJob:
    """Upload what is due (:func:`probe.upload.upload_pending`), within *deadline_s*."""

    settings: bytes
    """The ``[upload]`` settings (:attr:`Started.upload`), pickled."""
    database_url: str | None
    deadline_s: float
    log_level: int = logging.INFO


@dataclass(frozen=True, slots=True)
class UploadEnded:
    """The upload job ended (its log lines say what it sent)."""


_NAMES: dict[type, str] = {StartJob: "start", RoundJob: "round", UploadJob: "upload"}
"""What log lines call each job."""


class JobCrashed(Exception):
    """A job's process ended without an outcome: a bug or an outside kill, not bad input."""


async def run(
    job: object, expect: type[Outcome], *, spawned: Callable[[asyncio.subprocess.Process], None] | None = None
) -> Outcome:
    """Run *job* in a new process; return its outcome, an *expect*.

    *spawned* sees the process once it is started (to signal it while it works).

    Raises:
        JobCrashed: the process ended without an outcome of that type.
        asyncio.CancelledError: cancelled; the process was stopped (or killed) first.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-P",  # not the daemon's working directory first on sys.path: a stray httpx.py there
        "-m",
        "probe.rounds.jobs",
        str(os.getpid()),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,  # no terminal's Ctrl-C: the daemon stops its jobs as it stops
    )
    if spawned is not None:
        spawned(process)
    try:
        out, _ = await process.communicate(pickle.dumps(job))
    except BaseException:
        await _stop(process)
        raise
    what = _NAMES.get(type(job), type(job).__name__)
    if process.returncode != 0 or not out:
        raise JobCrashed(f"the {what}'s process ended without a result ({_status(process.returncode)})")
    try:
        outcome = pickle.loads(out)
    except Exception as exc:  # a stray write on its stdout, or code upgraded under the daemon
        raise JobCrashed(f"the {what}'s process answered what cannot be read ({exc!r})") from None
    if not isinstance(outcome, expect):
        raise JobCrashed(f"the {what}'s process answered {type(outcome).__name__}")
    return outcome


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Stop *process* (SIGTERM, then SIGKILL after :data:`STOP_GRACE_S`) and reap it, however
    often the waiting task is cancelled meanwhile."""
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    await settled(asyncio.ensure_future(_reap(process)))


async def _reap(process: asyncio.subprocess.Process) -> None:
    try:
        await asyncio.wait_for(process.wait(), STOP_GRACE_S)
    except TimeoutError:
        log.error("a job's process did not stop within %g s: killed", STOP_GRACE_S)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def _status(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:  # a real-time signal: no name
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def hold_stop_requests() -> None:
    """Block :data:`STOP_REQUEST` in the daemon (which has no use for it) before it starts a
    job: a job inherits the blocked signal, so a request sent while it still imports waits,
    pending, until the job has its handler (:func:`probe.rounds.jobs.main`), instead of
    killing it (SIGUSR1's default)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {STOP_REQUEST})


def request_stop(process: asyncio.subprocess.Process) -> None:
    """Ask *process* (an upload) to stop after its current request."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(STOP_REQUEST)
