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

A round ends as a whole: when it is cancelled, or when *on_result* raises, the measurements
still running are cancelled and awaited before the cancellation or the error is raised.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import Awaitable, Callable, Sequence
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
    """Measure *targets*, at most *concurrency* active and *max_open* in progress at once.

    The round is one OONI report: unless *config* names one, every measurement of the round
    gets the same new ``report_id`` (with the round's network, ``config.probe_cc``/``asn``).
    A *config* not yet prepared gets its TLS contexts and fingerprints built once, here
    (:func:`probe.webconnectivity.prepare`), for all of the round's measurements.

    Returns:
        One result per target, in the order of *targets*.

    Raises:
        ConfigError: *config*'s CA file cannot be read.
        Exception: what *on_result* raised (the other measurements are cancelled first).
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

    async def one(target: Target) -> Result:
        async with in_progress, _Slot(active, stall_after) as slot:
            try:
                result = Result(target, await measure(target.url, config=config, on_progress=slot.touch))
            except Exception as exc:  # a bug in one target must not cost the round the others
                result = Result(target, None, error=f"{type(exc).__name__}: {exc}")
        if on_result is not None:
            on_result(result)
        return result

    tasks = [asyncio.ensure_future(one(target)) for target in targets]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        # gather leaves the others running when one raises: the round ends with none in flight.
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
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
