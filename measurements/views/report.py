"""``probe report``: the dashboard's views exported as one self-contained HTML file.

The same page data (:mod:`measurements.views.dashboard.pages`) and the same templates as the
dashboard — the now table (blocked first), the targets x networks grid over several
networks, the daily counts, the timeline, the events and offline gaps, and the step-by-step
evidence of each blocked target's latest measurement — rendered once into a file with its
stylesheet inlined and no script: it opens offline and can be mailed. Links point at anchors
inside the file. A ``Content-Security-Policy`` in the page allows only that stylesheet (by its
hash): no script, no fetch. Every text from the data is escaped by the templates.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from markupsafe import Markup

from measurements.patterns.findings import Detection
from measurements.store.store import Store
from measurements.views.dashboard import data, pages
from measurements.views.dashboard.filters import Filters
from measurements.views.dashboard.render import render, style_digest, stylesheet

MAX_EVIDENCE: Final = 50
"""Blocked measurements whose evidence the report carries (the file stays mailable)."""
SECTIONS: Final = frozenset({"now", "grid", "counts", "timeline", "events"})


class ReportLinks:
    """Links inside the one file: sections and the measurements it carries; no downloads."""

    def __init__(self, carried: set[str]) -> None:
        self._carried = carried

    def page(self, name: str, f: Filters) -> str | None:
        return f"#{name}" if name in SECTIONS else None

    def measurement(self, uid: str) -> str | None:
        return f"#m-{uid}" if uid in self._carried else None

    def download(self, fmt: str, f: Filters) -> str | None:
        return None


def render_report(
    store: Store, found: Detection, *, generated_at: datetime, since: datetime | None = None
) -> str:
    """The whole page over *store*, with *found*'s flags and events, from *since* on (default: everything).

    Raises:
        StorageError: the store cannot be read.
    """
    f = Filters(since=since or found.first_round_at)
    with store.snapshot("read the report's data") as conn:
        common = pages.common(conn, Filters(since=since))
        rows = pages.now_rows(conn, common, found)
        blocked = [r for r in rows if r.rank <= 1][:MAX_EVIDENCE]
        evidence = []
        for r in blocked:
            row = data.measurement(conn, r.latest.measurement_uid)
            if row is not None:
                evidence.append(pages.measurement(row, common))
        chart = pages.counts(conn, common)
    links = ReportLinks({m.row.measurement_uid for m in evidence})
    span_common = pages.Common(f, common.networks, common.targets, common.categories)
    context: dict[str, Any] = {
        "filters": Filters(since=since),
        "found": found,
        "links": links,
        "common": common,
        "store_name": store.name,
        "generated_at": generated_at,
        "now_rows": rows,
        "summary": pages.summary(found, rows),
        "grid": pages.grid(common, rows) if common.multi_network else None,
        "chart": chart,
        "layout": pages.timeline_layout(span_common, found, links),
        "zoom": [],
        "event_views": pages.events(common, found, links),
        "offline_gaps": pages.offline(common, found),
        "measurements": evidence,
        "raw_link": None,
        # Our own stylesheet, hashed into the page's CSP; not data, so not escaped.
        "css": Markup(stylesheet()),
        "style_digest": style_digest(),
    }
    return render("report.html", **context)
