"""``probe daemon``: rounds on a schedule — APScheduler wiring around processes that do the work.

Each scheduled round runs :func:`probe.rounds.service.run_round`, the very function ``probe run``
calls, so a round stored by the daemon is the same thing as one started by hand. The daemon
runs it, as everything that measures or touches the database, in a process of its own
(:mod:`probe.rounds.process`, :mod:`probe.rounds.jobs`), which gives back all its memory when it
exits. Between rounds the daemon holds its schedule and its plan, pickled: it imports neither
what measures nor the database layer (the idle daemon is 28 to 29 MB, where one that measured in its
own process kept 78 to 84 MB). Everything else here is the life of a long-running process:

- **Scheduler.** APScheduler 3's ``AsyncIOScheduler``: the job is a coroutine on the daemon's
  own event loop, where SIGTERM/SIGINT (``loop.add_signal_handler``) can cancel it directly;
  cancelled, it stops the round's process, whose :func:`~probe.rounds.service.run_round` then
  marks its round ``interrupted``. A ``BlockingScheduler`` would run each job in a worker
  thread, out of reach of the signal handler.
- **Schedule.** An interval trigger: the first round at start, then every
  ``schedule.interval_minutes`` plus a random ``0…jitter_minutes`` (APScheduler 3 adds the
  jitter to the previous *fire* time, so the gap between two round starts is always in
  ``[interval, interval + jitter]``; ``probe status`` predicts the next run from that).
  ``max_instances=1``: a round that outlasts the interval makes the next run be skipped, never
  overlap. ``coalesce=True`` with no misfire grace limit: after the machine slept through
  several runs, exactly one round runs on wake-up — the gap itself is data (no heartbeat).
- **Start.** The start job reads the settings and target lists, opens (creating and migrating)
  the database and marks the rounds a crash left ``running``. Only bad input stops the daemon
  (exit 2 with one line): settings, target lists, a database URL that is not one
  (:class:`~probe.errors.ConfigError`), or an in-memory database, which no round's process
  could see.
- **Failures.** The network being down is not a failure: the round records it. A database
  that cannot be opened or written (full disk, read-only file or directory, a server that is
  down: a :class:`~probe.errors.StorageError`, which makes other commands exit 3) costs that
  round: one line on stderr, and the next round tries again — also when the database cannot
  even be opened at start: the daemon starts all the same. Nothing half-written is ever
  stored (each batch of a round's measurements is one transaction; a round that could not be
  completed is marked ``interrupted`` with the batches stored before). A round's process
  that dies (killed by hand, a bug) costs its round only; its round is marked
  ``interrupted`` before the next.
- **Crash clean-up.** At start, and before the round after any failure, the rounds that
  this installation left ``running`` and no process holds in flight any more are marked
  ``interrupted`` (:meth:`~measurements.store.store.Store.mark_interrupted`): never the rounds of
  other probes sharing the database, nor a round ``probe run`` is measuring beside the daemon.
- **Files read each round.** Before each round the plan's TLS trust, fingerprints and ASN
  database are read again (:func:`probe.rounds.service.replan`): a rotated CA file is trusted from
  the next round on. If they cannot be read then, the round runs with the previous ones (the
  CA file's text as it was read travels in the plan).
- **Shutdown.** The first SIGTERM or SIGINT stops the scheduler and the round in flight at
  once: it is marked ``interrupted``, with the batches it stored (or, if its closing
  transaction already ran, it is complete). Waiting for the round instead could take its
  whole timeout budget, longer than ``docker stop`` (10 s) grants. A prune under way stops
  after its current small transaction (the rest goes at the next prune).
- **Upload.** With ``upload.collector_url`` set, each completed round is followed by an upload
  in a process of its own: the daemon never waits for it, so it never delays a round. Only
  one runs at a time (a round that ends while the previous upload still runs starts none; the
  next round's end will), nor beside a ``probe upload`` from cron on the same database (the
  database's upload lock, :mod:`measurements.store.uploadlock`; the one that finds it taken
  sends nothing this time). When the next round starts, the upload in flight is asked to stop
  after its current request, so that upload traffic never shares the link with the round's
  measurements; and it has a deadline of one interval. What it did not send stays pending (or
  failed, with its back-off) in the store, and the next upload goes on from there. A shutdown
  stops it at once: what the collector acknowledged is recorded first, a measurement in
  flight is sent again next time (the collector acknowledges it once).
- **The WAL files.** For a SQLite database the daemon keeps an idle connection open
  (:mod:`probe.rounds.walhold`), so that the rounds' processes do not delete and make again
  the ``-wal`` and ``-shm`` files each time: on a full disk that would turn "database or disk
  is full" into an I/O error.
- **Logging** goes to stderr through :mod:`logging`, from the daemon and its jobs alike. It
  names rounds, counts and the database, never an address of the volunteer's (the store does
  not even know it).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]  # 3.x: no hints
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]  # 3.x: no hints

from probe.errors import ConfigError
from probe.rounds import process
from probe.rounds.walhold import WalHold

log = logging.getLogger("probe.daemon")

JOB_ID = "round"


class Cadence(Protocol):
    """How often rounds run (:class:`probe.rounds.settings.Schedule`, or what the start read)."""

    @property
    def interval_minutes(self) -> float: ...

    @property
    def jitter_minutes(self) -> float: ...


def trigger(schedule: Cadence) -> IntervalTrigger:
    """The interval trigger for *schedule*: every interval, plus ``0…jitter`` each time."""
    jitter = round(schedule.jitter_minutes * 60) or None  # APScheduler wants whole seconds or None
    return IntervalTrigger(seconds=schedule.interval_minutes * 60, jitter=jitter, timezone=UTC)


def next_run_window(last_start: datetime, schedule: Cadence) -> tuple[datetime, datetime]:
    """When the round after one started at *last_start* will start: ``(earliest, latest)``.

    Exact for :func:`trigger` as APScheduler 3 applies it (jitter added to the previous fire
    time), give or take the second or so between the fire time and the round's start (the
    round's process imports what measures) — unless that round itself started late (the
    machine slept), when the next may come sooner.
    """
    earliest = last_start + timedelta(minutes=schedule.interval_minutes)
    return earliest, earliest + timedelta(minutes=schedule.jitter_minutes)


class Daemon:
    """Scheduled rounds of what the start job read, until :meth:`stop` is called."""

    def __init__(self, started: process.Started, *, log_level: int = logging.INFO) -> None:
        self.started = started
        self.plan = started.plan
        """The plan as last read (pickled): each round reads its files again."""
        self._log_level = log_level
        self._clean = started.clean
        """No failure left rounds ``running`` since the last crash clean-up."""
        self._round: asyncio.Task[object] | None = None
        self._stopping: asyncio.Event | None = None
        self._upload: asyncio.Task[object] | None = None
        """The upload after the last round, while it runs."""
        self._upload_process: asyncio.subprocess.Process | None = None
        self._upload_stop = False
        """A round began while the upload ran: it stops after its current request."""
        self._wal = WalHold(started.sqlite_file)

    async def run(self) -> None:
        """Schedule rounds and return once :meth:`stop` was called and the jobs in flight ended."""
        self._stopping = asyncio.Event()
        await asyncio.to_thread(self._wal.keep)
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_job(
            self._job,
            trigger(self.started),
            id=JOB_ID,
            name="measurement round",
            next_run_time=datetime.now(UTC),  # the first round right away, not an interval later
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        scheduler.start()
        log.info(
            "daemon started: %d targets every %g min (+ up to %g min jitter) into %s",
            self.started.n_targets,
            self.started.interval_minutes,
            self.started.jitter_minutes,
            self.started.database_name,
        )
        try:
            await self._stopping.wait()
        finally:
            scheduler.shutdown(wait=False)
            for task in (self._round, self._upload):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            self._wal.close()
        log.info("daemon stopped")

    def stop(self, reason: str = "stop requested") -> None:
        """Stop scheduling and stop the round in flight (it is marked ``interrupted``)."""
        if self._stopping is None or self._stopping.is_set():
            return
        log.info("%s: stopping", reason)
        self._stopping.set()
        for task in (self._round, self._upload):
            if task is not None:
                task.cancel()

    async def _job(self) -> None:
        if self._stopping is not None and self._stopping.is_set():
            return
        self._round = asyncio.current_task()  # APScheduler runs the job as a task of its own
        try:
            await self._one_round()
        except asyncio.CancelledError:
            # Our own shutdown stopped it (its process logged the round interrupted). Not
            # re-raised: the job ends normally, and run() is already shutting down.
            pass
        finally:
            self._round = None

    async def _one_round(self) -> None:
        if self._upload is not None and not self._upload.done():
            self._upload_stop = True  # the link is the round's: stop after the request
            if self._upload_process is not None:  # else as soon as it is spawned
                process.request_stop(self._upload_process)
        job = process.RoundJob(
            plan=self.plan,
            database_url=self.started.database_url,
            clean_up=not self._clean,
            log_level=self._log_level,
        )
        try:
            ended = await process.run(job, process.RoundEnded)
        except process.JobCrashed as exc:  # it logged why, if it could; the daemon goes on
            log.error("round failed: %s", exc)
            self._clean = False
            return
        self._clean = ended.clean
        if not self._wal.held:  # the database may exist only now
            await asyncio.to_thread(self._wal.keep)
        if ended.plan is not None:
            self.plan = ended.plan
        if ended.completed:
            self._start_upload()

    def _start_upload(self) -> None:
        """Start the upload of what is due, in a task of its own (never awaited by a round)."""
        if self.started.upload is None:
            return
        if self._upload is not None and not self._upload.done():
            log.info("upload: the previous upload is still running; none started")
            return
        self._upload_stop = False
        job = process.UploadJob(
            settings=self.started.upload,
            database_url=self.started.database_url,
            deadline_s=self.started.interval_minutes * 60,
            log_level=self._log_level,
        )
        self._upload = asyncio.create_task(self._upload_job(job), name="upload")

    async def _upload_job(self, job: process.UploadJob) -> None:
        def spawned(upload: asyncio.subprocess.Process) -> None:
            self._upload_process = upload
            if self._upload_stop:  # a round began while it was being started
                process.request_stop(upload)

        try:
            await process.run(job, process.UploadEnded, spawned=spawned)
        except process.JobCrashed as exc:
            log.error("upload failed: %s", exc)
        finally:
            self._upload_process = None


def run_daemon(*, config_file: Path | None, database_url: str | None) -> None:
    """Start (the start job), then run a :class:`Daemon` until SIGTERM or SIGINT; return once it
    has shut down cleanly.

    Storage failures, at start as during rounds, are logged and retried, never raised.

    Raises:
        ConfigError: the settings, a target list or *database_url* (``--db``; else the
            settings') is invalid, names a database type this installation cannot open, or is
            an in-memory database.
        JobCrashed: the start job's process ended without an outcome (a bug).
    """
    level = logging.getLogger("probe").getEffectiveLevel()
    process.hold_stop_requests()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        daemon: Daemon | None = None

        def on_signal(name: str) -> None:
            if daemon is None:
                task.cancel()  # during the start: stop its process, then exit 0
            else:
                daemon.stop(name)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signal.Signals(signum).name)
        job = process.StartJob(config_file=config_file, database_url=database_url, log_level=level)
        try:
            started = await process.run(job, object)
        except asyncio.CancelledError:
            log.info("stopped while starting")
            return
        if isinstance(started, process.Invalid):
            raise ConfigError(started.message)
        if not isinstance(started, process.Started):
            raise process.JobCrashed(f"the start job answered {type(started).__name__}")
        daemon = Daemon(started, log_level=level)
        await daemon.run()

    asyncio.run(main())
