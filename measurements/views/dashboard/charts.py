"""The daily counts chart (OONI's MAT charts): measurements, anomalies and confirmed blocks per day.

Two panels over one dated axis: the measurements per day above, the blocked ones (anomalies
and confirmed blocks, stacked) below on their own scale, since they are a small share. Each
day is one bar with a hover title giving its three numbers. Data for the SVG template
(``_counts.html``), which draws it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from measurements.views.axis import Tick, nice_max, time_ticks
from measurements.views.dashboard.data import DayCount

LEFT, PLOT_W, PANEL_H, GAP, TOP = 60, 1100, 110, 34, 16
MEASURED, ANOMALY, CONFIRMED = "#9aa5b1", "#f08c00", "#b3001b"
COLOURS: Final = (
    ("measurements", MEASURED),
    ("blocked (anomaly)", ANOMALY),
    ("blocked (confirmed)", CONFIRMED),
)


@dataclass(frozen=True, slots=True)
class Bar:
    """One day: a measurements bar above, the blocked bars (anomaly under confirmed) below."""

    x: float
    width: float
    measured_y: float
    measured_h: float
    anomaly_y: float
    anomaly_h: float
    confirmed_y: float
    confirmed_h: float
    title: str


@dataclass(frozen=True, slots=True)
class CountsChart:
    """Everything the template draws."""

    width: int
    height: int
    left: int
    plot_w: int
    top: int
    panel_h: int
    lower_top: int
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    top_max: int
    lower_max: int
    totals: tuple[int, int, int]
    """Measurements, anomalies, confirmed over the whole chart."""


def counts_chart(days: Sequence[DayCount]) -> CountsChart | None:
    """The chart of *days* (``None`` when there are none)."""
    if not days:
        return None
    first = datetime.combine(days[0].day, datetime.min.time(), UTC)
    last = datetime.combine(days[-1].day, datetime.min.time(), UTC) + timedelta(days=1)
    n_days = (last - first).days
    day_w = PLOT_W / n_days
    top_max = nice_max(max(d.measurements for d in days))
    lower_max = nice_max(max(d.anomalies + d.confirmed for d in days))
    lower_top = TOP + PANEL_H + GAP
    bars: list[Bar] = []
    for d in days:
        x = LEFT + day_w * (d.day - days[0].day).days
        mh = PANEL_H * d.measurements / top_max
        ah = PANEL_H * d.anomalies / lower_max
        ch = PANEL_H * d.confirmed / lower_max
        base = lower_top + PANEL_H
        title = (
            f"{d.day.isoformat()}: {d.measurements:,} measurements, {d.anomalies:,} blocked (anomaly), "
            f"{d.confirmed:,} blocked (confirmed)"
        )
        bars.append(
            Bar(
                round(x, 2),
                round(max(day_w * 0.85, 0.6), 2),
                round(TOP + PANEL_H - mh, 2),
                round(mh, 2),
                round(base - ah, 2),
                round(ah, 2),
                round(base - ah - ch, 2),
                round(ch, 2),
                title,
            )
        )

    def x_of(t: datetime) -> float:
        return LEFT + PLOT_W * (t - first).total_seconds() / (last - first).total_seconds()

    totals = (
        sum(d.measurements for d in days),
        sum(d.anomalies for d in days),
        sum(d.confirmed for d in days),
    )
    return CountsChart(
        width=LEFT + PLOT_W + 20,
        height=lower_top + PANEL_H + 40,
        left=LEFT,
        plot_w=PLOT_W,
        top=TOP,
        panel_h=PANEL_H,
        lower_top=lower_top,
        bars=tuple(bars),
        ticks=tuple(time_ticks(first, last, x_of, PLOT_W)),
        top_max=top_max,
        lower_max=lower_max,
        totals=totals,
    )
