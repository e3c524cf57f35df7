"""Dated axes for the SVG charts: tick positions and labels that read at any zoom.

A time axis gets *minor* ticks at the finest calendar step (an hour, 3 or 6 hours, a day, a
week, a month) that leaves them :data:`MIN_MINOR_PX` apart, and *labelled* ticks at the finest
step that leaves room for its label (:data:`LABEL_PX`): an hour range shows hours under a dated first tick, a
month shows days, a year shows months. Every label that starts a new day carries its date,
and the first (and each January) its year, so no stretch of the axis is undated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

MIN_MINOR_PX: Final = 5.0
LABEL_PX: Final = {"h": 70.0, "1d": 70.0, "2d": 70.0, "7d": 50.0, "mo": 40.0}
"""Room a label needs, by step: ``Sun 18 Feb`` and ``09:00`` beside it; ``19 Feb``; ``Mar``."""

_HOUR = timedelta(hours=1)
_STEPS: Final = (
    ("1h", _HOUR),
    ("3h", 3 * _HOUR),
    ("6h", 6 * _HOUR),
    ("12h", 12 * _HOUR),
    ("1d", 24 * _HOUR),
    ("2d", 48 * _HOUR),
    ("7d", 7 * 24 * _HOUR),
    ("1mo", 30 * 24 * _HOUR),
    ("3mo", 91 * 24 * _HOUR),
)
"""Calendar steps, finest first, with their nominal length (months are calendar months)."""


@dataclass(frozen=True, slots=True)
class Tick:
    """A tick at *x* pixels; *label* empty for a minor tick."""

    x: float
    at: datetime
    label: str
    day_start: bool
    """Whether the tick is at 00:00 (drawn darker)."""


def time_ticks(start: datetime, end: datetime, x: Callable[[datetime], float], width: float) -> list[Tick]:
    """The ticks of the axis from *start* to *end* drawn over *width* pixels by *x*."""
    seconds = max((end - start).total_seconds(), 1.0)
    px_per_s = width / seconds
    minor = _finest(px_per_s, MIN_MINOR_PX)
    labelled = _finest(px_per_s, None)
    labels = {t for t in _walk(start, end, labelled)}
    ticks: list[Tick] = []
    previous: datetime | None = None
    last_label_x = x(end) - LABEL_PX["h"]  # a label starting later would run past the plot
    for t in sorted(set(_walk(start, end, minor)) | labels):
        text = ""
        if t in labels and x(t) <= last_label_x:
            text = _label(t, previous, labelled)
            previous = t
        midnight = t.hour == 0 and t.minute == 0
        ticks.append(Tick(round(x(t), 1), t, text, midnight))
    return ticks


def _finest(px_per_s: float, min_px: float | None) -> str:
    """The finest step at least *min_px* apart (``None``: as far apart as its labels need)."""
    for name, step in _STEPS:
        need = (
            min_px
            if min_px is not None
            else LABEL_PX.get(name, LABEL_PX["h" if name.endswith("h") else "mo"])
        )
        if step.total_seconds() * px_per_s >= need:
            return name
    return _STEPS[-1][0]


def _walk(start: datetime, end: datetime, step: str) -> Iterator[datetime]:
    """Calendar-aligned instants of *step* in [start, end]."""
    if step.endswith("mo"):
        months = int(step[:-2])
        t = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        while t <= end:
            if t >= start and (t.month - 1) % months == 0:
                yield t
            t = (t + timedelta(days=32)).replace(day=1)
        return
    hours = int(step[:-1]) * (24 if step.endswith("d") else 1)
    t = start.replace(minute=0, second=0, microsecond=0)
    if hours >= 24:
        t = t.replace(hour=0)
    while t <= end:
        aligned = (t.hour % hours == 0) if hours < 24 else _day_aligned(t, hours // 24)
        if t >= start and aligned:
            yield t
        t += _HOUR if hours < 24 else timedelta(days=1)


def _day_aligned(t: datetime, days: int) -> bool:
    if days == 7:
        return t.weekday() == 0  # Mondays
    return t.toordinal() % days == 0


def _label(t: datetime, previous: datetime | None, step: str) -> str:
    """``06:00`` within a day; ``Sat 17 Feb`` at midnight (``17 Feb 2024`` the first time and at
    a new year); a first tick that is not at midnight carries its date too; ``Feb 2024`` by months."""
    new_year = previous is None or previous.year != t.year
    if step.endswith("mo"):
        return t.strftime("%b %Y") if new_year or t.month == 1 else t.strftime("%b")
    midnight = t.hour == 0 and t.minute == 0
    if step.endswith("h") and not midnight:
        return t.strftime("%d %b %H:%M") if previous is None else t.strftime("%H:%M")
    if new_year:
        return t.strftime("%d %b %Y")
    return t.strftime("%a %d %b" if step in ("1d", "2d") or step.endswith("h") else "%d %b")


def nice_max(value: int) -> int:
    """The top of a y axis for *value*: the smallest 1, 2, 5 (below 10), else 1, 1.5, 2, 2.5, 3, 4, 5,
    6 or 8 x 10^n at or above it (at least 1), so bars fill most of their panel."""
    top = 1
    while True:
        for m in (1, 2, 5) if top == 1 else (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8):
            if m * top >= value:
                return int(m * top)
        top *= 10
