"""The daemon's jobs, each run in a process of its own (:mod:`probe.rounds.process`).

``python -P -m probe.rounds.jobs PID`` reads one pickled job from stdin, does it, and writes
one pickled outcome to stdout; its log lines, on the ``probe.daemon`` logger, join the
daemon's on the stderr they share. What each job does is what the daemon did itself before
its jobs had processes of their own, with the same log lines:

- :class:`~probe.rounds.process.StartJob`: read the settings and target lists and plan the
  round (bad input: :class:`~probe.rounds.process.Invalid`, and the daemon exits 2); open the
  database, creating and migrating it; mark the rounds a crash left ``running``. A database
  that cannot be opened or written now is logged ("will retry"): the rounds try again.
- :class:`~probe.rounds.process.RoundJob`: open the database (or skip the round); after a
  failure, the crash clean-up; read the plan's files again (:func:`probe.rounds.service.replan`;
  if they cannot be read, the round runs with the previous ones); the round
  (:func:`probe.rounds.service.run_round`); then the prune, which SIGTERM stops between two
  of its transactions.
- :class:`~probe.rounds.process.UploadJob`: the store-and-forward upload under the database's
  upload lock, within its deadline; SIGUSR1 (a round began) stops it after its current
  request, SIGTERM (the daemon stops) at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pickle
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from functools import partial

from measurements.store.engine import database_name, default_path, in_memory, parse_url, sqlite_file
from measurements.store.store import Store, open_store
from measurements.store.summary import is_failed, summary_columns
from probe.errors import ConfigError, StorageError
from probe.rounds import process, runner, service
from probe.rounds.logs import setup_logging

log = logging.getLogger("probe.daemon")

_PR_SET_PDEATHSIG = 1

_stop_requested = threading.Event()
"""Set by :data:`~probe.rounds.process.STOP_REQUEST` (a round began): an upload stops after
its current request. The daemon's jobs start with the signal blocked
(:func:`probe.rounds.process.hold_stop_requests`): one sent while this module was imported
is delivered once :func:`main` has its handler."""

_NAMES = {process.StartJob: "start", process.RoundJob: "round", process.UploadJob: "upload"}


def main(argv: list[str]) -> int:
    """Do the job on stdin; write its outcome to stdout.

    Returns:
        0 with an outcome written; 1 after a bug (logged with its traceback); 143 when
        stopped by SIGTERM (what it was doing ended as the job says).
    """
    signal.signal(process.STOP_REQUEST, lambda _signum, _frame: _stop_requested.set())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {process.STOP_REQUEST})  # one pending comes now
    try:
        return _main(argv)
    finally:  # the interpreter's exit restores SIGUSR1's default (kill): none may land then
        signal.pthread_sigmask(signal.SIG_BLOCK, {process.STOP_REQUEST})


def _main(argv: list[str]) -> int:
    _die_with(int(argv[1]))
    job = pickle.load(sys.stdin.buffer)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # the outcome's alone: a stray print goes to the log
    setup_logging(job.log_level)
    outcome: object
    try:
        if isinstance(job, process.StartJob):
            outcome = start(job)
        elif isinstance(job, process.RoundJob):
            outcome = asyncio.run(measure(job))
        elif isinstance(job, process.UploadJob):
            outcome = asyncio.run(upload(job))
        else:
            raise TypeError(f"not a job: {type(job).__name__}")
    except asyncio.CancelledError:
        return 128 + signal.SIGTERM
    except Exception:
        log.exception("%s failed", _NAMES.get(type(job), "job"))
        return 1
    with out:
        pickle.dump(outcome, out)
    return 0


def _die_with(parent: int) -> None:
    """Have the kernel kill this process when *parent* (the daemon) dies; exit if it already has."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the job runs to its end
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above: nobody waits for this job
        raise SystemExit(0)


# --- the start ---------------------------------------------------------------------------------


def start(job: process.StartJob) -> process.Started | process.Invalid:
    """Plan, open the database, clean up: what the daemon starts with, or the bad input."""
    from probe.rounds.settings import load_settings

    try:
        settings = load_settings(job.config_file)
        plan = service.plan_round(settings)
        url = job.database_url or settings.storage.database_url
        parsed = None if url is None else parse_url(url)
        if parsed is not None and in_memory(parsed):
            raise ConfigError(
                f"{url}: an in-memory database lives and dies with one process, and the daemon "
                "measures in processes of its own: give a file (sqlite:///PATH) or a database server"
            )
        name = database_name(url)
        file = default_path() if parsed is None else sqlite_file(parsed)
        clean = False
        try:
            store = open_store(url)
        except StorageError as exc:
            log.error("%s (will retry)", exc)
        else:
            with store:
                clean = _mark_crashed_rounds(store)
        collector = settings.upload.collector_url is not None
    except ConfigError as exc:  # a database URL that is not one (DatabaseURLError) included
        return process.Invalid(str(exc))
    return process.Started(
        plan=pickle.dumps(plan),
        database_url=url,
        database_name=name,
        sqlite_file=file,
        n_targets=len(plan.targets),
        interval_minutes=settings.schedule.interval_minutes,
        jitter_minutes=settings.schedule.jitter_minutes,
        upload=pickle.dumps(settings.upload) if collector else None,
        clean=clean,
    )


def _mark_crashed_rounds(store: Store) -> bool:
    """Mark the rounds this installation left ``running`` (and nobody holds); whether it could."""
    try:
        n = store.mark_interrupted()
    except StorageError as exc:
        log.error("%s (will retry before the next round)", exc)
        return False
    if n:
        log.info("marked %d unfinished round(s) of this probe as interrupted", n)
    return True


# --- a round -----------------------------------------------------------------------------------


async def measure(job: process.RoundJob) -> process.RoundEnded:
    """One scheduled round, its clean-up before and its prune after."""
    halt = threading.Event()
    task = asyncio.current_task()
    assert task is not None

    def on_sigterm() -> None:
        halt.set()  # what the prune's worker thread sees
        task.cancel()

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, on_sigterm)
    plan: service.RoundPlan = pickle.loads(job.plan)  # a .mmdb gone meanwhile: no ASNs, logged
    try:
        store = await service.off_loop(partial(open_store, job.database_url))
    except StorageError as exc:  # measuring what cannot be stored would only load the network
        log.error("%s (round skipped)", exc)
        return process.RoundEnded(completed=False, clean=not job.clean_up, plan=None)
    try:
        clean = await service.off_loop(partial(_mark_crashed_rounds, store)) if job.clean_up else True
        replanned = await _replan(plan)
        plan = replanned or plan
        pickled = None if replanned is None else pickle.dumps(replanned)
        if not await _round(plan, store):
            return process.RoundEnded(completed=False, clean=False, plan=pickled)
        clean = await _prune(store, plan, halt) and clean
        return process.RoundEnded(completed=True, clean=clean, plan=pickled)
    finally:
        await service.off_loop(store.close)


async def _replan(plan: service.RoundPlan) -> service.RoundPlan | None:
    """*plan* with its files read again (a rotated CA file); ``None`` if they cannot be."""
    try:
        return await service.off_loop(partial(service.replan, plan))
    except ConfigError as exc:
        log.error("%s (measuring with what was read before)", exc)
        return None


async def _round(plan: service.RoundPlan, store: Store) -> bool:
    """Run and store the round, logging how it went; whether it completed."""
    t0 = time.monotonic()
    failed = 0

    def count(result: runner.Result) -> None:  # a count, not the measurement: memory stays flat
        nonlocal failed
        if result.measurement is not None and is_failed(summary_columns(result.measurement)):
            failed += 1

    try:
        report = await service.run_round(plan, store, on_result=count)
    except StorageError as exc:
        log.error("%s (round not completed)", exc)
        return False
    except asyncio.CancelledError:
        log.info("round interrupted by shutdown")  # run_round marked it interrupted
        raise
    except Exception:  # a bug: logged with its traceback; the daemon and its schedule go on
        log.exception("round failed")
        return False
    network = {True: "network up", False: "network DOWN (no TCP connect succeeded)", None: "no data"}
    log.info(
        "round %d complete in %.1f s: %d measured, %d failed, %d errors; %s",
        report.round_id,
        time.monotonic() - t0,
        report.n_measured,
        failed,
        report.n_errors,
        network[report.network_up],
    )
    return True


async def _prune(store: Store, plan: service.RoundPlan, halt: threading.Event) -> bool:
    """Delete what is older than the retention; whether the database could be written."""
    days = plan.settings.storage.retention_days
    prune = partial(store.prune, datetime.now(UTC) - timedelta(days=days), stop=halt.is_set)
    try:
        n = await service.off_loop(prune)
    except asyncio.CancelledError:  # it stopped between two transactions
        log.info("prune stopped by shutdown (the rest goes at the next prune)")
        raise
    except StorageError as exc:
        log.error("%s (will retry after the next round)", exc)
        return False
    if n:
        log.info("pruned %d measurement(s) older than %d days", n, days)
    return True


# --- an upload ---------------------------------------------------------------------------------


async def upload(job: process.UploadJob) -> process.UploadEnded:
    """Send what is due to the collector, unless another upload from the database runs."""
    from measurements.store.uploads import StoreUploads
    from probe.upload import upload_pending

    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    settings = pickle.loads(job.settings)
    try:
        store = await service.off_loop(partial(open_store, job.database_url))
        try:
            lock = await service.off_loop(store.lock_uploads)  # PostgreSQL: a round trip
            if lock is None:
                log.info("upload: another upload from this database is running (probe upload?); none started")
                return process.UploadEnded()
            with lock:
                async with asyncio.timeout(job.deadline_s):
                    summary = await upload_pending(StoreUploads(store), settings, stop=_stop_requested.is_set)
        finally:
            await service.off_loop(store.close)
    except TimeoutError:
        log.info("upload: stopped at its deadline (%g s); the rest goes next time", job.deadline_s)
        return process.UploadEnded()
    except asyncio.CancelledError:
        log.info("upload: stopped by shutdown (the rest goes next time)")
        raise
    except (StorageError, ConfigError) as exc:
        log.error("upload: %s (will retry after the next round)", exc)
        return process.UploadEnded()
    if summary.uploaded or summary.failed:
        errors = ", ".join(f"{n} {error}" for error, n in sorted(summary.errors.items()))
        log.info(
            "upload: %d measurement(s) uploaded in %d report(s), %d failed%s%s",
            summary.uploaded,
            summary.reports_opened,
            summary.failed,
            f" ({errors})" if errors else "",
            "; stopped for the round" if summary.stopped == "stopped" else "",
        )
    return process.UploadEnded()


if __name__ == "__main__":
    # Through the module's import name, so that what it unpickles and pickles is
    # probe.rounds.process's, never __main__'s.
    from probe.rounds import jobs

    raise SystemExit(jobs.main(sys.argv))
