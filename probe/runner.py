"""A round: many targets measured at once, with bounded concurrency and progress events.

Every target is measured independently: its steps carry their own timeouts, and a target
whose measurement raises (a bug, not a network outcome — those are data) is reported as an
error for that target alone, never aborting the round.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from probe import webconnectivity
from probe.model import Measurement
from probe.targets import Target

Measure = Callable[..., Awaitable[Measurement]]


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
    concurrency: int = 16,
    on_result: ProgressHook | None = None,
    measure: Measure = webconnectivity.measure,
) -> list[Result]:
    """Measure *targets* with at most *concurrency* in flight.

    Returns:
        One result per target, in the order of *targets*.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    gate = asyncio.Semaphore(concurrency)

    async def one(target: Target) -> Result:
        async with gate:
            try:
                result = Result(target, await measure(target.url, config=config))
            except Exception as exc:  # a bug in one target must not cost the round the others
                result = Result(target, None, error=f"{type(exc).__name__}: {exc}")
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(target) for target in targets)))
