"""A round: many targets measured at once, with bounded concurrency and progress events.

Every target is measured independently: its steps carry their own timeouts, and a target
whose measurement raises (a bug, not a network outcome — those are data) is reported as an
error for that target alone, never aborting the round.

Two bounds apply. *concurrency* measurements are **active** at once: each holds a slot
while the network is giving it something, so their transfers never compete more than
*concurrency* at once (competing fetches slow each other down and would bend the timings that
are the evidence of throttling). A measurement that has had nothing from the network for a
while (a dropped connect, a silent server, a helper that does not answer) gives its slot up
and runs on to its own timeouts; without this, a list in a country that blackholes its
blocked sites would queue behind those timeouts, ``concurrency`` at a time. *max_open*
bounds the measurements in progress, stalled or not (sockets, memory);
``max_open == concurrency`` makes the bound strict. Each measurement tells its slot it is at
work through the progress callback the runner hands it (:mod:`probe.rounds.activity`).

How long is "a while" is learned from the round itself (:class:`_Pace`): twice the time
within which the round's measurements got their answers (the 95th percentile of the recent
gaps between two things from the network), never less than :data:`STALL_FLOOR` and never
more than *stall_after*. On loopback or a fast link a silent server costs its slot a tenth
of a second instead of half a second, so silent targets no longer queue behind each other;
on a slow link the threshold grows with the answers, up to *stall_after*. A measurement
judged stalled whose network then gives it something again takes a slot back at once, over
the bound if none is free (its timings are evidence: it is never made to wait), and no new
target starts until the active ones are fewer than *concurrency* again: the round never
adds a transfer to *concurrency* others.

A round holds nothing per target: :func:`stream_round` hands each finished result to a
*sink* (the round's writer) and forgets it, and starts the next target only once one of the
*max_open* in progress has been handed over, so its memory is bounded by *max_open*, not by
the length of the list. A measurement that ended at work keeps its active slot until the sink
has its result, so a sink that falls behind holds the next transfers back: the results (and
their bodies) waiting for it are at most *concurrency*, however large *max_open*.
:func:`measure_round` collects the results instead, for the callers that want them all (a
handful of targets).

A round ends as a whole: when it is cancelled, or when *on_result* or the sink raises, the
measurements still running are cancelled and awaited before the cancellation or the error is
raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from probe import serialize, webconnectivity
from probe.model import Measurement
from probe.rounds.targets import Target
from probe.steps import urls

Measure = Callable[..., Awaitable[Measurement]]
"""Called as :func:`probe.webconnectivity.measure` is: ``(url, *, config, on_progress)``."""

DEFAULT_CONCURRENCY = 16
DEFAULT_MAX_OPEN = 256
"""Measurements in progress at once, stalled ones included.

A stalled measurement holds a few sockets and a few kilobytes until its timeouts, and
transfers nothing (it has no slot), so many can wait at once: 256 let silent targets arriving
at 25 a second each wait out a 10 s timeout without queueing behind each other (64 capped
them at 6.4 a second, 72 s for the 460 silent targets of a 2,300-target list), in far less
memory than the measurements that hold a slot and a body."""
DEFAULT_STALL_AFTER = 0.5
"""The most seconds without anything from the network before a measurement counts as waiting.

Half a second is a few round trips even on a mobile link (100 to 300 ms to hosts abroad); a
measurement that has had nothing for that long waits on a timeout or a slow server, and
neither uses the link. The round lowers it when its own answers come faster (:class:`_Pace`)."""
STALL_FLOOR = 0.1
"""The fewest seconds of silence the round ever calls a stall, however fast its answers: a
busy event loop (a Raspberry Pi measuring hundreds of targets) can delay a measurement's
answer by tens of milliseconds, and that is not the network's silence."""
LOOP_LATE = 0.02
"""Seconds late a stall check may fire before the round doubts it (see :class:`_Slot`)."""
LOOK_AGAIN = 0.01
"""Seconds after a late stall check before the one more look."""
PACE_WINDOW = 128
"""How many recent measurements the round learns its stall threshold from."""
PACE_MIN = 8
"""Answered measurements the round waits for before it trusts what it learned."""


SOCKETS_PER_MEASUREMENT = webconnectivity.MAX_ENDPOINTS_PER_HOP + 8
"""Room for one measurement's sockets: a hop's endpoints, its lookups, the control."""


def raise_file_limit(max_open: int) -> int:
    """Raise this process's soft limit on open files to fit *max_open* measurements.

    A measurement that cannot open a socket would be recorded as a network failure that the
    network never caused, so the round makes room first, as far as the hard limit allows (1024,
    a common soft default, is less than 64 busy measurements may need). Never lowers a limit.

    Returns:
        The soft limit now in force.
    """
    want = max_open * SOCKETS_PER_MEASUREMENT + 256  # and the database, the logs, the event loop
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return soft
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError):  # forbidden (a seccomp filter, a container): keep what we have
            return soft
        soft = target
    return soft


def fit_max_open(max_open: int, concurrency: int) -> int:
    """*max_open*, lowered to what this process's file limit fits once raised as far as it
    goes (:func:`raise_file_limit`), but never below *concurrency*.

    Stalled measurements that wait for more sockets than the process may open would fail
    with errors the network never caused; they wait for their turn instead.
    """
    soft = raise_file_limit(max_open)
    if soft == resource.RLIM_INFINITY:
        return max_open
    room = (soft - 256) // SOCKETS_PER_MEASUREMENT
    return max(concurrency, min(max_open, room))


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome for one target: a measurement, or the error that prevented one."""

    target: Target
    measurement: Measurement | None
    error: str | None = None


ProgressHook = Callable[[Result], None]
Sink = Callable[[Result], Awaitable[None]]
"""Takes one finished result; the target's slot in progress is held until it returns."""


async def measure_round(
    targets: Sequence[Target],
    *,
    config: webconnectivity.MeasureConfig,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_open: int = DEFAULT_MAX_OPEN,
    stall_after: float = DEFAULT_STALL_AFTER,
    on_result: ProgressHook | None = None,
    measure: Measure = webconnectivity.measure,
) -> list[Result]:
    """:func:`stream_round` with every result kept: for short lists (``probe lab``, tests).

    Returns:
        One result per target, in the order of *targets*.

    Raises:
        ConfigError: *config*'s CA file cannot be read.
        Exception: what *on_result* raised (the other measurements are cancelled first).
    """
    places: dict[int, list[int]] = {}
    for i, target in enumerate(targets):
        places.setdefault(id(target), []).append(i)
    results: list[Result | None] = [None] * len(targets)

    async def keep(result: Result) -> None:  # a target listed twice fills its places in turn
        results[places[id(result.target)].pop(0)] = result

    await stream_round(
        targets,
        config=config,
        concurrency=concurrency,
        max_open=max_open,
        stall_after=stall_after,
        on_result=on_result,
        sink=keep,
        measure=measure,
    )
    return [r for r in results if r is not None]


async def stream_round(
    targets: Iterable[Target],
    *,
    config: webconnectivity.MeasureConfig,
    sink: Sink,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_open: int = DEFAULT_MAX_OPEN,
    stall_after: float = DEFAULT_STALL_AFTER,
    on_result: ProgressHook | None = None,
    measure: Measure = webconnectivity.measure,
) -> None:
    """Measure *targets*, at most *concurrency* active and *max_open* in progress at once, and
    hand each result to *on_result* (progress, a summary) and then to *sink*, in the order they end.

    A target counts as in progress until *sink* has taken its result, so a sink that makes
    the round wait (a store writing behind) holds the next targets back: the round never has
    more than *max_open* results in memory besides what the sink keeps. Tasks are made as
    targets start, never for the whole list at once.

    The round is one OONI report: unless *config* names one, every measurement of the round
    gets the same new ``report_id`` (with the round's network, ``config.probe_cc``/``asn``).
    A *config* not yet prepared gets its TLS contexts and fingerprints built once, here
    (:func:`probe.webconnectivity.prepare`), for all of the round's measurements; the
    volunteer's addresses to scrub are gathered for the round too
    (:func:`probe.webconnectivity.round_addresses`), not per measurement.

    Raises:
        ConfigError: *config*'s CA file cannot be read.
        Exception: what *on_result* or *sink* raised (the other measurements are cancelled
            and awaited first).
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    if max_open < concurrency:
        raise ValueError("max_open must be at least concurrency")
    if stall_after <= 0:
        raise ValueError("stall_after must be positive")
    if config.report_id is None:
        report_id = serialize.new_report_id(
            datetime.now(UTC),
            test_name="web_connectivity",
            probe_cc=config.probe_cc,
            probe_asn=config.probe_asn,
        )
        config = replace(config, report_id=report_id)
    config = webconnectivity.prepare(config)
    config = replace(config, addresses=webconnectivity.round_addresses(config))
    active = _Gate(concurrency)
    pace = _Pace(stall_after)
    in_progress = asyncio.Semaphore(max_open)
    tasks: set[asyncio.Task[None]] = set()
    failed: list[asyncio.Task[None]] = []

    async def one(target: Target) -> None:
        try:
            async with _Slot(active, pace) as slot:
                try:
                    measured = await measure(target.url, config=config, on_progress=slot.touch)
                    result = Result(target, measured)
                except Exception as exc:  # a bug in one target must not cost the round the others
                    result = Result(target, None, error=f"{type(exc).__name__}: {exc}")
                # A result that holds a body keeps its slot until the sink has it: a store that
                # falls behind then holds the next transfers back, and the results waiting for
                # it stay as few as the slots, whatever max_open.
                slot.finish()
                if on_result is not None:
                    on_result(result)
                await sink(result)
        finally:
            in_progress.release()

    def ended(task: asyncio.Task[None]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            failed.append(task)

    try:
        for target in targets:
            await in_progress.acquire()
            if failed:
                in_progress.release()
                break
            task = asyncio.ensure_future(one(target))
            tasks.add(task)
            task.add_done_callback(ended)
        while tasks and not failed:
            await asyncio.wait(set(tasks), return_when=asyncio.FIRST_EXCEPTION)
        if failed:
            raise failed[0].exception()  # type: ignore[misc]  # set only for a task that raised
    except BaseException:
        # The round ends with none in flight, whatever ended it.
        pending = set(tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        raise
    finally:
        urls.forget_splits()


class _Gate:
    """The round's active slots: a new measurement waits for one of *size*; a measurement whose
    network comes back after a stall takes one at once, over *size* if it must, and new
    measurements then wait until the slots taken are fewer than *size* again."""

    def __init__(self, size: int) -> None:
        self._size = size
        self.taken = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        """Wait for a free slot (first come, first served) and take it."""
        if self.taken < self._size and not self._waiters:
            self.taken += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot as the cancellation came: pass it on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def take_over(self) -> None:
        """Take a slot now, free or not (a measurement that is at work again)."""
        self.taken += 1

    def release(self) -> None:
        """Give a slot back; the longest waiting measurement gets it if the bound allows."""
        self.taken -= 1
        while self._waiters and self.taken < self._size:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.taken += 1
                waiter.set_result(None)


class _Pace:
    """How soon this round's network answers, and so how long a silence means a stall.

    Each measurement that ends at work (not stalled) tells the longest the network made it
    wait while it held its slot (its connect, its first response byte, a pause in its body).
    The threshold is twice the 95th percentile of the last :data:`PACE_WINDOW` of those waits,
    within [:data:`STALL_FLOOR`, *ceiling*]; *ceiling* until :data:`PACE_MIN` have ended.
    A measurement that stalled and came back tells its whole wait, which raises the threshold:
    the round learns that its answers can be that slow.
    """

    def __init__(self, ceiling: float) -> None:
        self._ceiling = ceiling
        self._waits: deque[float] = deque(maxlen=PACE_WINDOW)
        self.stall_after = ceiling

    def answered(self, longest_wait: float) -> None:
        self._waits.append(longest_wait)
        if len(self._waits) >= PACE_MIN:
            ordered = sorted(self._waits)
            p95 = ordered[(len(ordered) - 1) * 95 // 100]
            self.stall_after = min(self._ceiling, max(STALL_FLOOR, 2 * p95))


class _Slot:
    """One of the round's active slots, held while the measurement is at work."""

    def __init__(self, gate: _Gate, pace: _Pace) -> None:
        self._gate = gate
        self._pace = pace
        self._loop = asyncio.get_running_loop()
        self._held = False
        self._ended = False
        self._last = 0.0
        self._longest = 0.0
        self._due = 0.0
        self._looked_again = False
        self._timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> _Slot:
        await self._gate.acquire()
        self._take()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.finish()
        self._give_up()

    def finish(self) -> None:
        """The measurement ended: no more stall checks; a slot held stays held until the exit."""
        if self._ended:
            return
        self._ended = True
        if self._held:  # at work to its end: its waits say how soon this network answers
            self._pace.answered(self._longest)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def touch(self) -> None:
        """The network gave the measurement something: it is at work (again)."""
        if self._ended:
            return
        now = self._loop.time()
        self._longest = max(self._longest, now - self._last)
        if self._held:
            self._last = now
        else:  # back from a stall: a slot at once, its timings must not wait for one
            self._gate.take_over()
            self._take()

    def _take(self) -> None:
        self._held = True
        self._last = self._loop.time()
        self._arm(self._pace.stall_after)

    def _arm(self, delay: float) -> None:
        self._due = self._loop.time() + delay
        self._timer = self._loop.call_later(delay, self._check)

    def _check(self) -> None:
        now = self._loop.time()
        if now - self._due > LOOP_LATE and not self._looked_again:
            # The loop was busy past the check: what the network sent meanwhile may not be
            # read yet. Look again once it has had a turn; a busy loop is not a silent peer.
            self._looked_again = True
            self._arm(LOOK_AGAIN)
            return
        self._looked_again = False
        threshold = self._pace.stall_after
        quiet = now - self._last
        if quiet >= threshold:
            self._give_up()
        else:
            self._arm(threshold - quiet)

    def _give_up(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._held:
            self._held = False
            self._gate.release()
