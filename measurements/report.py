"""``probe report``: one self-contained HTML page of what the patterns analysis found.

The current state per target and network, the events, the flags, and the timeline picture
(:mod:`measurements.timeline`, inline SVG). No JavaScript, no stylesheet or font to fetch:
the page opens offline and can be mailed as one file. Every text from the data is escaped.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from measurements.findings import Detection
from measurements.timeline import render_svg
from measurements.wording import event_sentence, flag_sentence, when

_STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;font-size:13px}
.blocked{color:#b00;font-weight:bold}.ok{color:#060}
"""


def render_html(found: Detection, *, generated_at: datetime, since: datetime | None = None) -> str:
    """The whole page for *found*, showing flags and events with evidence from *since* on."""
    flags = [f for f in found.flags if since is None or f.last_evidence_at >= since]
    events = [e for e in found.events if since is None or e.ended_at is None or e.ended_at >= since]
    period = f"{when(found.first_round_at)} to {when(found.last_round_at)}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>reachprobe report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>reachprobe: blocking patterns</h1>",
        f"<p>{found.n_rounds} rounds and {found.n_measurements} measurements, {escape(period)}. "
        f"Generated {escape(when(generated_at))}"
        + (f"; flags and events since {escape(when(since))}" if since else "")
        + ".</p>",
        "<h2>Current state</h2>",
        _state_table(found),
        f"<h2>Events ({len(events)})</h2>",
        _list([event_sentence(e) for e in events], "No events."),
        "<h2>Timeline</h2>",
        render_svg(found, since=since),
        f"<h2>Flags ({len(flags)})</h2>",
        _list([flag_sentence(f) for f in flags], "No flags."),
        "<h2>Probe offline</h2>",
        "<p>Stretches without any round: the probe was off. These are never counted as outages.</p>",
        _list([f"{p.probe_asn}: {when(p.started_at)} to {when(p.ended_at)}" for p in found.offline], "None."),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _state_table(found: Detection) -> str:
    rows = [
        "<table><tr><th>Target</th><th>Network</th><th>State</th><th>Since</th><th>Last measured</th></tr>"
    ]
    for s in found.series:
        if s.blocked:
            state = f'<span class="blocked">blocked: {escape(", ".join(s.blocked))}'
            state += f" ({escape(s.mechanism)})</span>" if s.mechanism else "</span>"
        else:
            state = '<span class="ok">reachable</span>'
        rows.append(
            f"<tr><td>{escape(s.target)}</td><td>{escape(s.probe_asn)}</td><td>{state}</td>"
            f"<td>{escape(when(s.blocked_since))}</td><td>{escape(when(s.last_measured_at))}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _list(sentences: list[str], empty: str) -> str:
    if not sentences:
        return f"<p>{escape(empty)}</p>"
    return "<ul>\n" + "\n".join(f"<li>{escape(s)}</li>" for s in sentences) + "\n</ul>"
