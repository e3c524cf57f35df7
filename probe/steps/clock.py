"""Measurement time: every step stamps ``t0``/``t`` in seconds since the measurement began."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Returns seconds elapsed since the start of the current measurement."""


def relative_clock(now: Callable[[], float] = time.monotonic) -> Clock:
    """A clock that reads 0.0 now and counts seconds from here (monotonic)."""
    zero = now()

    def clock() -> float:
        return round(now() - zero, 6)

    return clock
