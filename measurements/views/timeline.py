"""The timeline picture: reachability per (target, network) over time, as inline SVG.

One row per series; green where it was reachable, coloured by layer where blocked (from
onset to end), dark where the network was shut down, hatched grey where the probe was
offline. Hover titles (SVG ``<title>``) name each stretch; no script, no external resource.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from html import escape

from measurements.patterns.findings import Detection, Flag

COLOURS = {"dns": "#7b3294", "tcp": "#e66101", "tls": "#d7191c", "http": "#a6611a"}
"""Blocked stretches, by layer."""
REACHABLE, SHUTDOWN, OFFLINE = "#a6dba0", "#222222", "#bbbbbb"
_LABEL_W, _PLOT_W, _ROW_H, _TOP = 300, 900, 14, 24


def episodes(flags: tuple[Flag, ...], end: datetime) -> list[tuple[Flag, datetime]]:
    """Each onset flag with when it ended (its end flag's first evidence, else *end*)."""
    open_: dict[tuple[str, str, str], Flag] = {}
    out: list[tuple[Flag, datetime]] = []
    for f in flags:
        key = (f.target, f.probe_asn, f.layer)
        if f.kind == "blocking_onset":
            open_[key] = f
        elif key in open_:
            out.append((open_.pop(key), f.first_evidence_at))
    out.extend((f, end) for f in open_.values())
    return sorted(out, key=lambda p: (p[0].first_evidence_at, p[0].target, p[0].probe_asn))


def render_svg(found: Detection, *, since: datetime | None = None) -> str:
    """The timeline of *found* from *since* (default: the first round) to the last round."""
    if found.first_round_at is None or found.last_round_at is None:
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="20">'
            '<text x="0" y="14">no rounds</text></svg>'
        )
    start = max(since, found.first_round_at) if since else found.first_round_at
    end = max(found.last_round_at, start + timedelta(hours=1))
    span = (end - start).total_seconds()
    rows = sorted({(s.target, s.probe_asn) for s in found.series})
    height = _TOP + _ROW_H * len(rows) + 40

    def x(t: datetime) -> float:
        clipped = min(max(t, start), end)
        return _LABEL_W + _PLOT_W * (clipped - start).total_seconds() / span

    def rect(x0: float, x1: float, y: float, fill: str, title: str) -> str:
        w = max(x1 - x0, 1.0)
        return (
            f'<rect x="{x0:.1f}" y="{y:.1f}" width="{w:.1f}" height="{_ROW_H - 2}" fill="{fill}">'
            f"<title>{escape(title)}</title></rect>"
        )

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_LABEL_W + _PLOT_W + 10}" height="{height}" '
        'font-family="sans-serif" font-size="10" role="img" aria-label="reachability timeline">',
        '<defs><pattern id="off" width="4" height="4" patternUnits="userSpaceOnUse">'
        f'<path d="M0,4 L4,0" stroke="{OFFLINE}" stroke-width="1"/></pattern></defs>',
    ]
    parts += _axis(start, end, x, height)
    blocked = episodes(found.flags, end)
    for i, (target, asn) in enumerate(rows):
        y = _TOP + i * _ROW_H
        parts.append(
            f'<text x="{_LABEL_W - 4}" y="{y + 10}" text-anchor="end">{escape(f"{target} {asn}")}</text>'
        )
        parts.append(rect(x(start), x(end), y, REACHABLE, f"{target} on {asn}: reachable"))
        for p in found.offline:
            if p.probe_asn == asn and p.ended_at > start:
                parts.append(rect(x(p.started_at), x(p.ended_at), y, "url(#off)", f"{asn}: probe offline"))
        for e in found.events:
            if e.kind == "shutdown" and asn in e.asns:
                parts.append(
                    rect(x(e.started_at), x(e.ended_at or end), y, SHUTDOWN, f"{asn}: network shutdown")
                )
        for f, until in blocked:
            if f.target == target and f.probe_asn == asn and until > start:
                label = f"{target} on {asn}: blocked at {f.layer} ({f.mechanism or 'unknown'})"
                parts.append(
                    rect(x(f.first_evidence_at), x(until), y, COLOURS.get(f.layer, "#d7191c"), label)
                )
    parts += _legend(height - 14)
    parts.append("</svg>")
    return "\n".join(parts)


def _axis(start: datetime, end: datetime, x: Callable[[datetime], float], height: int) -> list[str]:
    """Tick marks: days for spans up to two weeks, months otherwise."""
    out: list[str] = []
    days = (end - start).days
    tick = start.replace(hour=0, minute=0, second=0, microsecond=0)
    if days > 14:
        tick = tick.replace(day=1)
    while tick <= end:
        if tick >= start:
            px = x(tick)
            label = tick.strftime("%Y-%m-%d" if days <= 14 else "%b %Y")
            out.append(
                f'<line x1="{px:.1f}" y1="{_TOP - 4}" x2="{px:.1f}" y2="{height - 30}" stroke="#ddd"/>'
            )
            out.append(f'<text x="{px:.1f}" y="{_TOP - 8}">{escape(label)}</text>')
        tick = tick + timedelta(days=1) if days <= 14 else (tick + timedelta(days=32)).replace(day=1)
    return out


def _legend(y: int) -> list[str]:
    items = [("reachable", REACHABLE), *((f"blocked: {k}", v) for k, v in COLOURS.items())]
    items += [("shutdown", SHUTDOWN), ("probe offline", "url(#off)")]
    out: list[str] = []
    for i, (label, fill) in enumerate(items):
        lx = _LABEL_W + i * 110
        out.append(f'<rect x="{lx}" y="{y}" width="10" height="10" fill="{fill}"/>')
        out.append(f'<text x="{lx + 14}" y="{y + 9}">{escape(label)}</text>')
    return out
