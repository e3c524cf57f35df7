"""The dashboard's web application: Starlette, read-only, every page from :mod:`.pages` and the templates.

Safety, because every text it shows came from a network that may be hostile:

* Jinja2 autoescapes everything (:mod:`.render`); the pages carry no script at all, and the
  ``Content-Security-Policy`` forbids any (``default-src 'none'``: no script, inline or not,
  no frame, no fetch; styles and images from the dashboard itself only).
* GET and HEAD only: every other method is answered ``405`` on every path, before routing.
  Nothing writes to the store (the detection runs in memory: :mod:`.analysis`).
* The ``Host`` header must name the dashboard (loopback names by default), so a web page
  that rebinds its own DNS name to 127.0.0.1 cannot read the dashboard from the volunteer's
  browser.
* Nothing is fetched from the network: the stylesheet is served from the package, the
  charts are SVG drawn server-side, and the favicon is an empty ``data:`` URL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from measurements.patterns.findings import Detection
from measurements.store.rows import MeasurementRow
from measurements.store.store import Store
from measurements.views.dashboard import data, downloads, pages
from measurements.views.dashboard.analysis import Analysis
from measurements.views.dashboard.filters import OUTCOME_FILTERS, FilterError, Filters
from measurements.views.dashboard.render import render, stylesheet
from measurements.views.dashboard.security import LOOPBACK_HOSTS, ReadOnly, SecurityHeaders
from probe.errors import StorageError

NAV: Final = (
    ("now", "Now"),
    ("timeline", "Timeline"),
    ("counts", "Per day"),
    ("events", "Events"),
    ("measurements", "Measurements"),
    ("networks", "Networks"),
)


@dataclass(frozen=True, slots=True)
class Dashboard:
    """What the routes share: the store and its kept-current detection."""

    store: Store
    analysis: Analysis


def create_app(
    store: Store, *, analysis: Analysis | None = None, hosts: Sequence[str] = LOOPBACK_HOSTS
) -> ASGIApp:
    """The dashboard over *store*; *hosts* are the ``Host`` names it answers to."""
    dash = Dashboard(store, analysis or Analysis(store))

    def page(handler: Callable[[Dashboard, Request], Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            return handler(dash, request)

        return endpoint

    routes = [
        Route("/", page(_now), name="now"),
        Route("/grid", page(_grid)),
        Route("/timeline", page(_timeline)),
        Route("/counts", page(_counts)),
        Route("/events", page(_events)),
        Route("/measurements", page(_measurements)),
        Route("/measurement/{uid}.json", page(_raw)),
        Route("/measurement/{uid}", page(_measurement)),
        Route("/networks", page(_networks)),
        Route("/download.csv", page(_download_csv)),
        Route("/download.jsonl", page(_download_jsonl)),
        Route("/static/style.css", _style),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))])
    return ReadOnly(SecurityHeaders(app))


def _style(request: Request) -> Response:
    return Response(stylesheet(), media_type="text/css")


def _context(dash: Dashboard, request: Request, name: str, title: str) -> tuple[dict[str, Any], Any]:
    """The context every page shares, and the snapshot connection (closed by the caller)."""
    f = Filters.parse(request.query_params)
    found = dash.analysis.current()
    until_day = ""
    if f.until is not None:
        shown = f.until - timedelta(days=1) if f.until.time() == datetime.min.time() else f.until
        until_day = shown.strftime("%Y-%m-%d")
    return {
        "page": name,
        "title": title,
        "filters": f,
        "found": found,
        "links": pages.AppLinks(),
        "store_name": dash.store.name,
        "show_filters": True,
        "until_day": until_day,
        "outcome_filters": OUTCOME_FILTERS,
        "empty_filters": Filters(),
        "error": None,
        "nav": NAV,
    }, f


def _html(template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    return HTMLResponse(render(template, **context), status_code=status)


def _guarded(dash: Dashboard, request: Request, name: str, title: str, fill: Any, template: str) -> Response:
    """Render *template* with the shared context and what *fill(conn, common, found)* adds."""
    try:
        ctx, f = _context(dash, request, name, title)
        with dash.store.snapshot("read the dashboard's data") as conn:
            common = pages.common(conn, f)
            ctx["common"] = common
            ctx.update(fill(conn, common, ctx["found"]))
        return _html(template, ctx)
    except FilterError as exc:
        return _problem(dash, request, 400, f"Bad filter: {exc}")
    except StorageError as exc:
        return _problem(dash, request, 503, f"The store cannot be read: {exc}")


def _problem(dash: Dashboard, request: Request, status: int, message: str) -> HTMLResponse:
    ctx = {
        "page": "",
        "title": message,
        "filters": Filters(),
        "found": Detection(),
        "links": pages.AppLinks(),
        "store_name": dash.store.name,
        "show_filters": False,
        "until_day": "",
        "outcome_filters": OUTCOME_FILTERS,
        "empty_filters": Filters(),
        "error": message,
        "nav": NAV,
        "heading": message,
    }
    return _html("error.html", ctx, status)


def _now(dash: Dashboard, request: Request) -> Response:
    def fill(conn: Any, c: pages.Common, found: Detection) -> dict[str, Any]:
        rows = pages.now_rows(conn, c, found)
        return {
            "now_rows": rows,
            "summary": pages.summary(found, rows),
            "grid": pages.grid(c, rows) if c.multi_network and c.filters.asn is None else None,
        }

    return _guarded(dash, request, "now", "Now", fill, "now.html")


def _grid(dash: Dashboard, request: Request) -> Response:
    def fill(conn: Any, c: pages.Common, found: Detection) -> dict[str, Any]:
        return {"grid": pages.grid(c, pages.now_rows(conn, c, found))}

    return _guarded(dash, request, "grid", "Targets \N{MULTIPLICATION SIGN} networks", fill, "grid.html")


def _timeline(dash: Dashboard, request: Request) -> Response:
    def fill(conn: Any, c: pages.Common, found: Detection) -> dict[str, Any]:
        links = pages.AppLinks()
        zoom = []
        if found.last_round_at is not None:
            end = found.last_round_at + timedelta(hours=1)
            for label, days in (("2 days", 2), ("7 days", 7), ("30 days", 30), ("1 year", 365)):
                since = end - timedelta(days=days)
                zoom.append(
                    (
                        label,
                        links.page(
                            "timeline",
                            Filters(
                                since=since,
                                until=end,
                                asn=c.filters.asn,
                                target=c.filters.target,
                                category=c.filters.category,
                            ),
                        ),
                    )
                )
        return {"layout": pages.timeline_layout(c, found, links, conn), "zoom": zoom}

    return _guarded(dash, request, "timeline", "Timeline", fill, "timeline.html")


def _counts(dash: Dashboard, request: Request) -> Response:
    def fill(conn: Any, c: pages.Common, found: Detection) -> dict[str, Any]:
        return {"chart": pages.counts(conn, c)}

    return _guarded(dash, request, "counts", "Measurements per day", fill, "counts.html")


def _events(dash: Dashboard, request: Request) -> Response:
    def fill(conn: Any, c: pages.Common, found: Detection) -> dict[str, Any]:
        return {
            "event_views": pages.events(c, found, pages.AppLinks()),
            "offline_gaps": pages.offline(c, found),
        }

    return _guarded(dash, request, "events", "Events", fill, "events.html")


def _measurements(dash: Dashboard, request: Request) -> Response:
    def fill(conn: Any, c: pages.Common, found: Detection) -> dict[str, Any]:
        number = request.query_params.get("page", "0")
        at = int(number) if number.isdigit() else 0
        rows, total = pages.listing(conn, c, at)
        base = "/measurements?" + c.filters.query()
        return {
            "listed": rows,
            "total": total,
            "first": at * pages.LISTING,
            "previous": f"{base}&page={at - 1}" if at > 0 else None,
            "next": f"{base}&page={at + 1}" if (at + 1) * pages.LISTING < total else None,
        }

    return _guarded(dash, request, "measurements", "Measurements", fill, "measurements.html")


def _find(dash: Dashboard, uid: str) -> MeasurementRow | None:
    with dash.store.snapshot("read a measurement") as conn:
        return data.measurement(conn, uid)


def _measurement(dash: Dashboard, request: Request) -> Response:
    uid = request.path_params["uid"]

    def fill(conn: Any, c: pages.Common, found: Detection) -> dict[str, Any]:
        row = _find(dash, uid)
        if row is None:
            raise _NotFound
        return {"m": pages.measurement(row, c), "raw_link": f"/measurement/{quote(uid, safe='')}.json"}

    try:
        return _guarded(dash, request, "", f"Measurement {uid}", fill, "measurement.html")
    except _NotFound:
        return _problem(dash, request, 404, f"No measurement {uid}")


class _NotFound(Exception):
    pass


def _raw(dash: Dashboard, request: Request) -> Response:
    uid = request.path_params["uid"]
    try:
        row = _find(dash, uid)
    except StorageError as exc:
        return _problem(dash, request, 503, f"The store cannot be read: {exc}")
    if row is None or row.body is None:
        return _problem(dash, request, 404, f"No measurement {uid}")
    disposition = f'attachment; filename="{_filename(uid)}.json"'
    return Response(
        row.body + "\n", media_type="application/json", headers={"Content-Disposition": disposition}
    )


def _networks(dash: Dashboard, request: Request) -> Response:
    def fill(conn: Any, c: pages.Common, found: Detection) -> dict[str, Any]:
        blocked: dict[str, int] = {}
        for r in data.latest(conn, Filters(outcome="blocked")):
            blocked[r.probe_asn] = blocked.get(r.probe_asn, 0) + 1
        return {
            "counts": data.network_counts(conn),
            "blocked": blocked,
            "filters_for": lambda asn: Filters(asn=asn),
        }

    return _guarded(dash, request, "networks", "Networks", fill, "networks.html")


def _download_csv(dash: Dashboard, request: Request) -> Response:
    return _download(dash, request, "csv")


def _download_jsonl(dash: Dashboard, request: Request) -> Response:
    return _download(dash, request, "jsonl")


def _download(dash: Dashboard, request: Request, fmt: str) -> Response:
    try:
        f = Filters.parse(request.query_params)
    except FilterError as exc:
        return _problem(dash, request, 400, f"Bad filter: {exc}")
    return downloads.download(dash.store, f, fmt)


def _filename(uid: str) -> str:
    return "".join(ch for ch in uid if ch.isalnum() or ch in "-_")[:80] or "measurement"
