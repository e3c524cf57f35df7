"""``probe daemon``: rounds on a schedule — APScheduler wiring around :func:`probe.rounds.service.run_round`.

The scheduled job calls the very function ``probe run`` calls, so a round stored by the daemon
is the same thing as one started by hand. Everything else here is the life of a long-running
process:

- **Scheduler.** APScheduler 3's ``AsyncIOScheduler``: a round is a coroutine, so the job runs
  on the daemon's own event loop, where SIGTERM/SIGINT (``loop.add_signal_handler``) can
  cancel it directly — :func:`~probe.rounds.service.run_round` then marks its round ``interrupted``.
  A ``BlockingScheduler`` would run each round in a worker thread with a loop of its own,
  out of reach of the signal handler, and a round cannot be cancelled across threads.
- **Schedule.** An interval trigger: the first round at start, then every
  ``schedule.interval_minutes`` plus a random ``0…jitter_minutes`` (APScheduler 3 adds the
  jitter to the previous *fire* time, so the gap between two round starts is always in
  ``[interval, interval + jitter]``; ``probe status`` predicts the next run from that).
  ``max_instances=1``: a round that outlasts the interval makes the next run be skipped, never
  overlap. ``coalesce=True`` with no misfire grace limit: after the machine slept through
  several runs, exactly one round runs on wake-up — the gap itself is data (no heartbeat).
- **Failures.** The network being down is not a failure: the round records it. A database
  that cannot be opened or written (full disk, read-only file or directory, a server that is
  down: a :class:`~probe.errors.StorageError`, which makes other commands exit 3) costs that
  round: one line on stderr, the pool's connections are dropped (a SQLite connection opened
  on a read-only file stays read-only), and the next round tries again — also when the
  database cannot even be opened at start: the daemon starts all the same and opens it at
  the first round that can. Nothing half-written is ever stored (each batch of a round's
  measurements is one transaction; a round that could not be completed is marked
  ``interrupted`` with the batches stored before). Only bad input stops it at start (exit 2):
  settings, target lists, a database URL that is not one (:class:`~probe.errors.ConfigError`).
- **Crash clean-up.** At start, and before the round after any failure, the rounds that
  this installation left ``running`` and no process holds in flight any more are marked
  ``interrupted`` (:meth:`~measurements.store.store.Store.mark_interrupted`): never the rounds of
  other probes sharing the database, nor a round ``probe run`` is measuring beside the daemon.
- **Off the event loop.** Every database call (opening and migrating, the clean-up, the
  round's writes, the prune) and the re-reading of files before each round run in a worker
  thread (:func:`probe.rounds.service.off_loop`), so the loop keeps serving the round's measurements
  and the signal handlers while the database is slow or busy.
- **Files read each round.** Before each round the plan's TLS trust, fingerprints and ASN
  database are read again (:func:`probe.rounds.service.replan`): a rotated CA file is trusted from
  the next round on. If they cannot be read then, the round runs with the previous ones.
- **Shutdown.** The first SIGTERM or SIGINT stops the scheduler and cancels the round in flight
  at once: it is marked ``interrupted``, with the batches it stored (or, if its closing
  transaction already ran, it is complete).
  Waiting for the round instead could take its whole timeout budget, longer than
  ``docker stop`` (10 s) grants. A prune under way stops after its current small
  transaction (the rest goes at the next prune).
- **Upload.** With ``upload.collector_url`` set, each completed round is followed by an upload
  (:func:`probe.upload.upload_pending`) in a task of its own: the daemon never waits for it,
  so it never delays a round. Only one runs at a time (a round that ends while the previous
  upload still runs starts none; the next round's end will), nor beside a ``probe upload``
  from cron on the same database (the database's upload lock,
  :mod:`measurements.store.uploadlock`; the one that finds it taken sends nothing this time).
  When the next round starts, the upload in flight is asked to stop after its current request,
  so that upload traffic never shares the link with the round's measurements; and it has a
  deadline of one interval. What it did not send stays pending (or failed, with its back-off)
  in the store, and the next upload goes on from there. A shutdown cancels it at once: what
  the collector acknowledged is recorded first, a measurement in flight is sent again next
  time (the collector acknowledges it once).
- **Logging** goes to stderr through :mod:`logging`. It names rounds, counts and the database,
  never an address of the volunteer's (the store does not even know it).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]  # 3.x: no hints
from apscheduler.triggers.interval import IntervalTrigger  # type: ignore[import-untyped]  # 3.x: no hints

from measurements.store.engine import database_name
from measurements.store.store import Store, open_store
from measurements.store.summary import is_failed, summary_columns
from measurements.store.uploads import StoreUploads
from probe.errors import ConfigError, StorageError
from probe.rounds import runner, service
from probe.rounds.settings import Schedule

log = logging.getLogger("probe.daemon")

JOB_ID = "round"


def trigger(schedule: Schedule) -> IntervalTrigger:
    """The interval trigger for *schedule*: every interval, plus ``0…jitter`` each time."""
    jitter = round(schedule.jitter_minutes * 60) or None  # APScheduler wants whole seconds or None
    return IntervalTrigger(seconds=schedule.interval_minutes * 60, jitter=jitter, timezone=UTC)


def next_run_window(last_start: datetime, schedule: Schedule) -> tuple[datetime, datetime]:
    """When the round after one started at *last_start* will start: ``(earliest, latest)``.

    Exact for :func:`trigger` as APScheduler 3 applies it (jitter added to the previous fire
    time), give or take the few milliseconds between the fire time and the round's start —
    unless that round itself started late (the machine slept), when the next may come sooner.
    """
    earliest = last_start + timedelta(minutes=schedule.interval_minutes)
    return earliest, earliest + timedelta(minutes=schedule.jitter_minutes)


class Daemon:
    """Scheduled rounds of *plan* into the store *connect* opens, until :meth:`stop` is called.

    *connect* is called at start and, until it succeeds, again before each round; *name* is
    the database as log lines show it.
    """

    def __init__(self, plan: service.RoundPlan, connect: Callable[[], Store], *, name: str) -> None:
        self.plan = plan
        self.store: Store | None = None
        """The open store; ``None`` until *connect* has succeeded."""
        self.name = name
        self._connect = connect
        self.rounds_stored = 0
        self._cleanup_pending = True
        """Rounds a crash (or a failed write) left ``running`` are to be marked ``interrupted``."""
        self._round: asyncio.Task[object] | None = None
        self._stopping: asyncio.Event | None = None
        self._halt = threading.Event()
        """Set with :meth:`stop`: what the worker threads (the prune) see of it."""
        self._upload: asyncio.Task[None] | None = None
        """The upload after the last round, while it runs."""
        self._upload_stop = False
        """Asked of the upload before each request: a round has begun, or the daemon stops."""

    async def run(self) -> None:
        """Schedule rounds and return once :meth:`stop` was called and the round in flight ended.

        Raises:
            ConfigError: the database URL is invalid (before anything is scheduled).
        """
        self._stopping = asyncio.Event()
        if await self._open("will retry") is not None:
            await self._mark_crashed_rounds()
        scheduler = AsyncIOScheduler(timezone=UTC)
        scheduler.add_job(
            self._job,
            trigger(self.plan.settings.schedule),
            id=JOB_ID,
            name="measurement round",
            next_run_time=datetime.now(UTC),  # the first round right away, not an interval later
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        scheduler.start()
        schedule = self.plan.settings.schedule
        log.info(
            "daemon started: %d targets every %g min (+ up to %g min jitter) into %s",
            len(self.plan.targets),
            schedule.interval_minutes,
            schedule.jitter_minutes,
            self.name,
        )
        try:
            await self._stopping.wait()
        finally:
            scheduler.shutdown(wait=False)
            current = self._round
            if current is not None:
                current.cancel()
                await asyncio.gather(current, return_exceptions=True)
            upload = self._upload
            if upload is not None:
                upload.cancel()
                await asyncio.gather(upload, return_exceptions=True)
        log.info("daemon stopped")

    def stop(self, reason: str = "stop requested") -> None:
        """Stop scheduling and cancel the round in flight (it is marked ``interrupted``)."""
        if self._stopping is None or self._stopping.is_set():
            return
        log.info("%s: stopping", reason)
        self._stopping.set()
        self._halt.set()
        self._upload_stop = True
        if self._round is not None:
            self._round.cancel()

    async def _job(self) -> None:
        if self._stopping is not None and self._stopping.is_set():
            return
        self._round = asyncio.current_task()  # APScheduler runs the job as a task of its own
        try:
            await self._one_round()
        except asyncio.CancelledError:
            # Our own shutdown cancelled it (run_round has marked the round interrupted).
            # Not re-raised: the job ends normally, and run() is already shutting down.
            log.info("round interrupted by shutdown")
        finally:
            self._round = None

    async def _one_round(self) -> None:
        self._upload_stop = True  # the link is the round's: the upload stops after its request
        store = await self._open("round skipped")
        if store is None:  # measuring what cannot be stored would only load the network
            return
        await self._mark_crashed_rounds()
        await self._replan()
        t0 = time.monotonic()
        failed = 0

        def count(result: runner.Result) -> None:  # a count, not the measurement: memory stays flat
            nonlocal failed
            if result.measurement is not None and is_failed(summary_columns(result.measurement)):
                failed += 1

        try:
            report = await service.run_round(self.plan, store, on_result=count)
        except StorageError as exc:
            self._storage_failed(exc, "round not completed")
            return
        except Exception:  # a bug: log it with its traceback, keep the daemon (and its schedule) alive
            log.exception("round failed")
            self._cleanup_pending = True
            return
        self.rounds_stored += 1
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
        await self._prune()
        await self._idle(store)
        self._start_upload()

    async def _idle(self, store: Store) -> None:
        """Give back what the round held before the daemon idles until the next: the store's
        page caches and the memory the round freed."""
        await service.off_loop(store.shrink)
        await service.off_loop(release_memory)

    def _start_upload(self) -> None:
        """Start the upload of what is due, in a task of its own (never awaited by a round)."""
        settings = self.plan.settings
        if settings.upload.collector_url is None or self.store is None:
            return
        if self._upload is not None and not self._upload.done():
            log.info("upload: the previous upload is still running; none started")
            return
        self._upload_stop = False
        deadline = settings.schedule.interval_minutes * 60
        self._upload = asyncio.create_task(self._upload_job(self.store, deadline), name="upload")

    async def _upload_job(self, store: Store, deadline: float) -> None:
        from probe.upload import upload_pending  # httpx and the uploader load only when configured

        settings = self.plan.settings.upload
        try:
            lock = await service.off_loop(store.lock_uploads)  # PostgreSQL: a round trip
            if lock is None:
                log.info("upload: another upload from this database is running (probe upload?); none started")
                return
            with lock:
                async with asyncio.timeout(deadline):
                    summary = await upload_pending(
                        StoreUploads(store), settings, stop=lambda: self._upload_stop
                    )
        except TimeoutError:
            log.info("upload: stopped at its deadline (%g s); the rest goes next time", deadline)
            return
        except asyncio.CancelledError:
            log.info("upload: stopped by shutdown (the rest goes next time)")
            return
        except (StorageError, ConfigError) as exc:
            log.error("upload: %s (will retry after the next round)", exc)
            return
        except Exception:  # a bug: logged with its traceback; the daemon and its rounds go on
            log.exception("upload failed")
            return
        if self._round is None:  # no round began meanwhile: the daemon idles again
            await self._idle(store)
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

    async def _replan(self) -> None:
        """Read the plan's files again (a rotated CA file); keep the plan if they cannot be."""
        try:
            self.plan = await service.off_loop(partial(service.replan, self.plan))
        except ConfigError as exc:
            log.error("%s (measuring with what was read before)", exc)

    async def _open(self, consequence: str) -> Store | None:
        """The store, opened now if it is not yet; ``None`` (and one line logged) if it cannot be.

        Raises:
            ConfigError: the database URL is invalid: bad input, not worth retrying.
        """
        if self.store is None:
            try:
                self.store = await service.off_loop(self._connect)
            except ConfigError:
                raise
            except StorageError as exc:
                log.error("%s (%s)", exc, consequence)
                return None
        return self.store

    async def _mark_crashed_rounds(self) -> None:
        if not self._cleanup_pending or self.store is None:
            return
        try:
            # Only ever between rounds: a round the store still holds is one a failure left.
            n = await service.off_loop(self.store.mark_interrupted)
        except StorageError as exc:
            self._storage_failed(exc, "will retry before the next round")
            return
        self._cleanup_pending = False
        if n:
            log.info("marked %d unfinished round(s) of this probe as interrupted", n)

    async def _prune(self) -> None:
        if self.store is None:
            return
        days = self.plan.settings.storage.retention_days
        prune = partial(self.store.prune, datetime.now(UTC) - timedelta(days=days), stop=self._halt.is_set)
        try:
            n = await service.off_loop(prune)
        except asyncio.CancelledError:  # it stopped between two transactions; the job ends here
            log.info("prune stopped by shutdown (the rest goes at the next prune)")
            return
        except StorageError as exc:
            self._storage_failed(exc, "will retry after the next round")
            return
        if n:
            log.info("pruned %d measurement(s) older than %d days", n, days)

    def _storage_failed(self, exc: StorageError, consequence: str) -> None:
        log.error("%s (%s)", exc, consequence)
        # A round that failed to store may be left ``running``; and a pooled SQLite connection
        # that met a read-only file stays read-only even once the file is writable again.
        self._cleanup_pending = True
        if self.store is not None:
            self.store.close()  # drops the pool's connections; the next use reconnects


def release_memory() -> None:
    """Hand the memory a round freed back to the system before the daemon idles until the next.

    A round allocates from several threads (the writes run in worker threads), and glibc keeps
    what they free in per-thread arenas: without ``malloc_trim`` an idle daemon would keep a
    round's high-water mark for the hour until the next (issue 12). Elsewhere (musl, macOS)
    only the garbage collector runs.
    """
    gc.collect()
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols: libc's, when it is glibc
    except (OSError, AttributeError):  # not glibc
        return
    trim(0)


def run_daemon(plan: service.RoundPlan, database_url: str | None) -> None:
    """Run a :class:`Daemon` on *database_url* until SIGTERM or SIGINT; return once it has shut
    down cleanly.

    Storage failures, at start as during rounds, are logged and retried, never raised.

    Raises:
        ConfigError: *database_url* is not a database URL, or names a database type this
            installation cannot open.
    """
    opener = partial(open_store, database_url, migrate_in_child=True)  # Alembic never stays in the daemon
    daemon = Daemon(plan, opener, name=database_name(database_url))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, daemon.stop, signal.Signals(signum).name)
        try:
            await daemon.run()
        finally:
            if daemon.store is not None:
                daemon.store.close()

    asyncio.run(main())
