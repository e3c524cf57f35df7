"""The timeline's layout: reachability per (target, network) over time, as data for the SVG template.

One row per series; green where it was reachable, coloured by layer where blocked (from the
onset flag to the end flag), solid black where the network was shut down, and hatched where
the probe was offline (no round at all: nothing is known, never an outage). Each stretch says
what it was and when, to the minute, in its hover title, and a blocked stretch links to its
measurements. The dated axis comes from :mod:`measurements.views.axis`. The template
(``dashboard/templates/_timeline.html``) draws it; no text is put together as markup here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from measurements.patterns.findings import Detection, Flag
from measurements.patterns.wording import when
from measurements.views.axis import Tick, time_ticks

COLOURS: Final = {"dns": "#7b3294", "tcp": "#e66101", "tls": "#c51b1b", "http": "#8c510a"}
"""Blocked stretches, by layer."""
REACHABLE, SHUTDOWN = "#8fd18a", "#111111"
OFFLINE = "url(#offline)"
"""A hatch pattern the template defines: grey and white stripes, unlike any solid colour."""
LABEL_W, PLOT_W, ROW_H, TOP = 300, 900, 16, 40

Link = Callable[[str, str, datetime, datetime], str | None]
"""``(target, asn, since, until)`` → the page of those measurements (``None``: no link)."""
POINT: Final = {"blocked.confirmed": "#6b0013", "blocked.anomaly": "#f08c00"}
"""Single blocked measurements (short ranges): a tick in the row, darker for a confirmed block."""


@dataclass(frozen=True, slots=True)
class Point:
    """One blocked measurement, drawn as a tick on its row in a short range."""

    target: str
    asn: str
    at: datetime
    outcome: str
    """``blocked.confirmed`` or ``blocked.anomaly``."""
    title: str
    href: str | None


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of one row."""

    x: float
    width: float
    fill: str
    kind: str
    """``reachable``, ``blocked``, ``shutdown``, ``offline``; ``measurement``: one blocked measurement."""
    title: str
    href: str | None = None


@dataclass(frozen=True, slots=True)
class Row:
    """One (target, network) series."""

    y: float
    target: str
    asn: str
    network: str
    """``PTCL (AS17557)``, or the ASN alone when the name is unknown."""
    segments: tuple[Segment, ...]
    blocked_now: bool


@dataclass(frozen=True, slots=True)
class Layout:
    """Everything the template draws."""

    start: datetime
    end: datetime
    width: int
    height: int
    plot_x: int
    plot_w: int
    top: int
    row_h: int
    rows: tuple[Row, ...]
    ticks: tuple[Tick, ...]
    legend: tuple[tuple[str, str], ...]
    n_points: int = 0
    """Blocked measurements drawn as ticks."""


def episodes(flags: Iterable[Flag]) -> list[tuple[Flag, datetime | None]]:
    """Each onset flag with when it ended (its end flag's first evidence; ``None``: still blocked)."""
    open_: dict[tuple[str, str, str], Flag] = {}
    out: list[tuple[Flag, datetime | None]] = []
    for f in flags:
        key = (f.target, f.probe_asn, f.layer)
        if f.kind == "blocking_onset":
            open_[key] = f
        elif key in open_:
            out.append((open_.pop(key), f.first_evidence_at))
    out.extend((f, None) for f in open_.values())
    return sorted(out, key=lambda p: (p[0].first_evidence_at, p[0].target, p[0].probe_asn))


def layout(
    found: Detection,
    *,
    start: datetime,
    end: datetime,
    series: Iterable[tuple[str, str]],
    names: Mapping[str, str] | None = None,
    link: Link | None = None,
    points: Iterable[Point] = (),
) -> Layout:
    """The timeline of *series* (``(target, asn)`` pairs, drawn in that order) from *start* to *end*.

    *names* maps an ASN to its network's name. *points* are single blocked measurements, drawn
    over the stretches: a block too recent (or too short) for a flag still shows.
    """
    end = max(end, start + timedelta(hours=1))
    span = (end - start).total_seconds()
    names = names or {}

    def x(t: datetime) -> float:
        clipped = min(max(t, start), end)
        return LABEL_W + PLOT_W * (clipped - start).total_seconds() / span

    def seg(
        a: datetime, b: datetime, fill: str, kind: str, title: str, href: str | None = None
    ) -> Segment | None:
        if b <= start or a >= end:
            return None
        x0, x1 = x(a), x(b)
        return Segment(round(x0, 1), round(max(x1 - x0, 1.0), 1), fill, kind, title, href)

    last_seen = {(s.target, s.probe_asn): s for s in found.series}
    blocked = episodes(found.flags)
    shutdowns = [e for e in found.events if e.kind == "shutdown"]
    ticks: dict[tuple[str, str], list[Point]] = {}
    for point in points:
        ticks.setdefault((point.target, point.asn), []).append(point)
    rows: list[Row] = []
    for i, (target, asn) in enumerate(series):
        network = f"{names[asn]} ({asn})" if names.get(asn) else asn
        where = f"{target} on {network}"
        state = last_seen.get((target, asn))
        until = min(end, state.last_measured_at) if state is not None else end
        parts = [seg(start, until, REACHABLE, "reachable", f"{where}: reachable (no blocking detected)")]
        for p in found.offline:
            if p.probe_asn == asn:
                span_text = f"{when(p.started_at)} to {when(p.ended_at)}"
                parts.append(
                    seg(
                        p.started_at, p.ended_at, OFFLINE, "offline", f"{network}: probe offline, {span_text}"
                    )
                )
        for e in shutdowns:
            if asn in e.asns:
                stop = e.ended_at or end
                until_text = when(e.ended_at) if e.ended_at else "now"
                text = f"{network}: network shut down, {when(e.started_at)} to {until_text}"
                parts.append(seg(e.started_at, stop, SHUTDOWN, "shutdown", text))
        for f, ended in blocked:
            if f.target == target and f.probe_asn == asn:
                how = f"{f.layer.upper()} ({f.mechanism or 'unknown'})" + (
                    f", {f.confirmed}" if f.confirmed else ""
                )
                stop = ended or end
                text = f"{where}: blocked at {how} from {when(f.first_evidence_at)} " + (
                    f"to {when(ended)}" if ended else "(still blocked)"
                )
                href = link(target, asn, f.first_evidence_at, stop) if link else None
                parts.append(
                    seg(f.first_evidence_at, stop, COLOURS.get(f.layer, "#c51b1b"), "blocked", text, href)
                )
        for point in ticks.get((target, asn), ()):
            if start <= point.at < end:
                parts.append(Segment(round(x(point.at) - 1, 1), 2.0, POINT.get(point.outcome, "#f08c00"),
                                     "measurement", point.title, point.href))  # fmt: skip
        rows.append(
            Row(
                y=TOP + i * ROW_H,
                target=target,
                asn=asn,
                network=network,
                segments=tuple(p for p in parts if p is not None),
                blocked_now=bool(state and state.blocked),
            )
        )
    height = TOP + ROW_H * len(rows) + 34
    legend = (
        ("reachable", REACHABLE),
        *((f"blocked: {k.upper()}", v) for k, v in COLOURS.items()),
        ("network shut down", SHUTDOWN),
        ("probe offline", OFFLINE),
        ("a blocked measurement", POINT["blocked.anomaly"]),
    )
    return Layout(
        start=start,
        end=end,
        width=LABEL_W + PLOT_W + 90,
        height=height,
        plot_x=LABEL_W,
        plot_w=PLOT_W,
        top=TOP,
        row_h=ROW_H,
        rows=tuple(rows),
        ticks=tuple(time_ticks(start, end, x, PLOT_W)),
        n_points=sum(s.kind == "measurement" for row in rows for s in row.segments),
        legend=legend,
    )
