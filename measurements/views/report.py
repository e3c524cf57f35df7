"""``probe report``: one self-contained HTML page of what the patterns analysis found.

The current state per target and network, the events, the flags, and the timeline picture
(:mod:`measurements.views.timeline`, inline SVG). The current state is each target's latest outcome
(:mod:`probe.outcome`), the words every other output uses. No JavaScript, no stylesheet or font to fetch:
the page opens offline and can be mailed as one file. Every text from the data is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from html import escape

from measurements.patterns.findings import Detection
from measurements.patterns.wording import event_sentence, flag_sentence, when
from measurements.store.rows import FailingTarget
from measurements.views.timeline import render_svg
from probe.outcome import Outcome, describe

_STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:left;font-size:13px}
.blocked{color:#b00;font-weight:bold}.ok{color:#060}.refused,.down{color:#a60}.none{color:#666}
"""
_CLASS = {
    Outcome.BLOCKED_CONFIRMED: "blocked",
    Outcome.BLOCKED_ANOMALY: "blocked",
    Outcome.SHUTDOWN: "blocked",
    Outcome.REACHABLE: "ok",
    Outcome.SERVER_REFUSAL: "refused",
    Outcome.DOWN: "down",
}


def render_html(
    found: Detection,
    *,
    generated_at: datetime,
    since: datetime | None = None,
    latest: Iterable[FailingTarget] = (),
) -> str:
    """The whole page for *found*, showing flags and events with evidence from *since* on.

    *latest* is the latest measurement of each (target, network)
    (:meth:`~measurements.store.store.Store.latest_targets`): the current state reads its outcome.
    """
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
        _state_table(found, latest),
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


def _state_table(found: Detection, latest: Iterable[FailingTarget]) -> str:
    """One row per (target, network): the latest measurement's outcome, and any open flag.

    The state is what the latest measurement says (:mod:`probe.outcome`), never inferred from
    the absence of a flag: a target failing since its first round has no onset to flag, and an
    NXDOMAIN or a refused connection is not "reachable".
    """
    now = {(row.url, row.probe_asn): row for row in latest}
    flagged = {(s.target, s.probe_asn): s for s in found.series}
    rows = [
        "<table><tr><th>Target</th><th>Network</th><th>State</th><th>Mechanism</th>"
        "<th>Flagged</th><th>Since</th><th>Last measured</th></tr>"
    ]
    for key in sorted(now.keys() | flagged.keys()):
        target, asn = key
        row, series = now.get(key), flagged.get(key)
        if row is not None:
            outcome = Outcome(row.outcome)
            text = describe(outcome, confirmed=row.confirmed)
            state = f'<span class="{_CLASS.get(outcome, "none")}">{escape(text)}</span>'
            mechanism, measured = row.mechanism or "", row.measured_at
        else:
            state, measured = "—", None
            mechanism = (series.mechanism or "") if series is not None else ""
        flags = ", ".join(series.blocked) if series is not None and series.blocked else ""
        last = measured or (series.last_measured_at if series is not None else None)
        since = series.blocked_since if series is not None else None
        rows.append(
            f"<tr><td>{escape(target)}</td><td>{escape(asn)}</td><td>{state}</td>"
            f"<td>{escape(mechanism)}</td><td>{escape(flags)}</td><td>{escape(when(since))}</td>"
            f"<td>{escape(when(last))}</td></tr>"
        )
    rows.append("</table>")
    return "\n".join(rows)


def _list(sentences: list[str], empty: str) -> str:
    if not sentences:
        return f"<p>{escape(empty)}</p>"
    return "<ul>\n" + "\n".join(f"<li>{escape(s)}</li>" for s in sentences) + "\n</ul>"
