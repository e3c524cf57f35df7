"""A round: many targets measured at once, with bounded concurrency and progress events.

Every target is measured independently: its steps carry their own timeouts, and a target
whose measurement raises (a bug, not a network outcome — those are data) is reported as an
error for that target alone, never aborting the round.

Two bounds apply. *concurrency* measurements are **active** at once: each holds a slot
while the network is giving it something. A measurement that has had nothing from the
network for *stall_after* seconds (a dropped connect, a silent server, a helper that does
not answer) gives its slot up for good and runs on to its own timeouts; without this, a
list in a country that blackholes its blocked sites would queue behind those timeouts,
``concurrency`` at a time. *max_open* bounds the measurements in progress, stalled or not
(sockets, memory); ``max_open == concurrency`` makes the bound strict. Each measurement
tells its slot it is at work through the progress callback the runner hands it
(:mod:`probe.rounds.activity`).

A round holds nothing per target: :func:`stream_round` hands each finished result to a
*sink* (the round's writer) and forgets it, and starts the next target only once one of the
*max_open* in progress has been handed over, so its memory is bounded by *max_open*, not by
the length of the list. :func:`measure_round` collects the results instead, for the callers
that want them all (a handful of targets).

A round ends as a whole: when it is cancelled, or when *on_result* or the sink raises, the
measurements still running are cancelled and awaited before the cancellation or the error is
raised.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from probe import serialize, webconnectivity
from probe.model import Measurement
from probe.rounds.targets import Target

Measure = Callable[..., Awaitable[Measurement]]
"""Called as :func:`probe.webconnectivity.measure` is: ``(url, *, config, on_progress)``."""

DEFAULT_CONCURRENCY = 16
DEFAULT_MAX_OPEN = 64
DEFAULT_STALL_AFTER = 0.5
"""Seconds without anything from the network after which a measurement counts as waiting.

Half a second is a few round trips even on a mobile link (100 to 300 ms to hosts abroad); a
measurement that has had nothing for that long waits on a timeout or a slow server, and
neither uses the link. Giving the slot up too early costs little: the next target starts a
little sooner, within ``max_open``."""


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
    (:func:`probe.webconnectivity.prepare`), for all of the round's measurements.

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
    active = asyncio.Semaphore(concurrency)
    in_progress = asyncio.Semaphore(max_open)
    tasks: set[asyncio.Task[None]] = set()
    failed: list[asyncio.Task[None]] = []

    async def one(target: Target) -> None:
        try:
            async with _Slot(active, stall_after) as slot:
                try:
                    measured = await measure(target.url, config=config, on_progress=slot.touch)
                    result = Result(target, measured)
                except Exception as exc:  # a bug in one target must not cost the round the others
                    result = Result(target, None, error=f"{type(exc).__name__}: {exc}")
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


class _Slot:
    """One of the round's active slots, held until the measurement ends or stalls."""

    def __init__(self, gate: asyncio.Semaphore, stall_after: float) -> None:
        self._gate = gate
        self._stall_after = stall_after
        self._loop = asyncio.get_running_loop()
        self._held = False
        self._last = 0.0
        self._timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> _Slot:
        await self._gate.acquire()
        self._held = True
        self._last = self._loop.time()
        self._timer = self._loop.call_later(self._stall_after, self._check)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._give_up()

    def touch(self) -> None:
        """The network gave the measurement something: it is not stalled."""
        self._last = self._loop.time()

    def _check(self) -> None:
        quiet = self._loop.time() - self._last
        if quiet >= self._stall_after:
            self._give_up()
        else:
            self._timer = self._loop.call_later(self._stall_after - quiet, self._check)

    def _give_up(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._held:
            self._held = False
            self._gate.release()
