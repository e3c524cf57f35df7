"""Each page's data: the store's rows and the detection, narrowed by the filters, in display order.

The application (:mod:`.app`) and the static report (:mod:`measurements.views.report`) both call
these and hand the result to the same templates; only their :class:`Links` differ (the
application links pages, the report links anchors in its one file).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Protocol
from urllib.parse import quote, urlencode

from sqlalchemy import Connection

from measurements.patterns.findings import Detection, Event, OfflinePeriod
from measurements.patterns.wording import event_sentence, when
from measurements.store.rows import MeasurementRow
from measurements.views import timeline
from measurements.views.dashboard import data
from measurements.views.dashboard.charts import CountsChart, counts_chart
from measurements.views.dashboard.filters import Filters
from measurements.views.dashboard.steps import Evidence, evidence
from probe.outcome import Outcome, describe

RANK: Final = {"blocked.confirmed": 0, "blocked.anomaly": 1, "shutdown": 2, "down": 3, "server.refusal": 4}
"""Display order of outcomes: blocked first, reachable last (no verdicts between)."""
REACHABLE_RANK: Final = 9
POINTS_WINDOW: Final = timedelta(days=14)
"""Ranges up to this long show each blocked measurement as a tick (longer: the flags' stretches)."""
MAX_POINTS: Final = 5000
DEFAULT_WINDOW: Final = timedelta(days=30)
"""The timeline shows the last 30 days unless the filters say otherwise."""
MAX_ROWS: Final = 400
LISTING: Final = 200


class Links(Protocol):
    """Where a link goes: the application's pages, or the report's anchors (``None``: no link)."""

    def page(self, name: str, f: Filters) -> str | None: ...

    def measurement(self, uid: str) -> str | None: ...

    def download(self, fmt: str, f: Filters) -> str | None: ...


class AppLinks:
    """The application's URLs."""

    PATHS: Final = {
        "now": "/",
        "timeline": "/timeline",
        "counts": "/counts",
        "events": "/events",
        "measurements": "/measurements",
        "networks": "/networks",
        "grid": "/grid",
    }

    def page(self, name: str, f: Filters) -> str | None:
        query = f.query()
        return self.PATHS[name] + (f"?{query}" if query else "")

    def measurement(self, uid: str) -> str | None:
        return "/measurement/" + quote(uid, safe="")

    def download(self, fmt: str, f: Filters) -> str | None:
        query = f.query()
        return f"/download.{fmt}" + (f"?{query}" if query else "")


def outcome_rank(outcome: str) -> int:
    """Sort key of an outcome: blocked first."""
    if outcome == Outcome.REACHABLE:
        return REACHABLE_RANK
    return RANK.get(outcome, 5)


def outcome_text(outcome: str, confirmed: str | None = None) -> str:
    """What people read for a stored outcome (an unknown value is shown as stored)."""
    try:
        return describe(Outcome(outcome), confirmed=confirmed)
    except ValueError:
        return outcome


@dataclass(frozen=True, slots=True)
class StateRow:
    """A (target, network) on the now page."""

    latest: data.Latest
    network: str
    blocked_since: datetime | None
    """For a blocked target: when its open blocking flag began, else the first measurement of
    the unbroken run of blocked outcomes it is in (``None`` when not blocked)."""
    layers: tuple[str, ...]

    @property
    def rank(self) -> int:
        return outcome_rank(self.latest.outcome)


@dataclass(frozen=True, slots=True)
class Common:
    """What every page shows around its content: the filters' choices and the networks' names."""

    filters: Filters
    networks: Mapping[str, data.NetworkInfo]
    targets: tuple[tuple[str, str], ...]
    categories: tuple[str, ...]

    def name(self, asn: str) -> str:
        """``PTCL (AS17557)``, or the ASN alone when no name is known."""
        info = self.networks.get(asn)
        return f"{info.name} ({asn})" if info is not None and info.name else asn

    @property
    def multi_network(self) -> bool:
        return len(self.networks) > 1


def common(conn: Connection, f: Filters) -> Common:
    """The filters' choices (networks, targets, categories) as stored."""
    targets = tuple(data.targets(conn))
    categories = tuple(sorted({c for _, c in targets if c}))
    return Common(f, data.networks(conn), targets, categories)


def _in_category(c: Common, category: str | None) -> set[str] | None:
    return None if category is None else {url for url, cat in c.targets if cat == category}


def now_rows(conn: Connection, c: Common, found: Detection) -> list[StateRow]:
    """The latest state of every (target, network) in the filters, blocked first."""
    series = {(s.target, s.probe_asn): s for s in found.series}
    rows = []
    for latest in data.latest(conn, c.filters):
        s = series.get((latest.url, latest.probe_asn))
        blocked = latest.outcome in data.BLOCKED
        since = s.blocked_since if s is not None and blocked else None
        if blocked and since is None:  # no open flag (too recent, or blocked since its first round)
            since = data.run_start(conn, latest.url, latest.probe_asn, latest.measured_at)
        layers = s.blocked if s is not None and blocked else ()
        rows.append(StateRow(latest, c.name(latest.probe_asn), since, layers))
    rows.sort(key=lambda r: (r.rank, r.latest.url, r.latest.probe_asn))
    return rows


@dataclass(frozen=True, slots=True)
class Grid:
    """Targets x networks: each cell the latest state (operators' view over many networks)."""

    asns: tuple[str, ...]
    rows: tuple[tuple[str, tuple[StateRow | None, ...]], ...]


def grid(c: Common, rows: Iterable[StateRow]) -> Grid:
    """The grid of *rows*: targets blocked anywhere first, networks by ASN."""
    cells: dict[str, dict[str, StateRow]] = {}
    for r in rows:
        cells.setdefault(r.latest.url, {})[r.latest.probe_asn] = r
    asns = tuple(sorted({asn for per in cells.values() for asn in per}, key=lambda a: int(a[2:] or 0)))
    order = sorted(cells, key=lambda url: (min(r.rank for r in cells[url].values()), url))
    return Grid(asns, tuple((url, tuple(cells[url].get(a) for a in asns)) for url in order))


def window(f: Filters, found: Detection) -> tuple[datetime, datetime] | None:
    """The timeline's range: the filters', else the last :data:`DEFAULT_WINDOW` of rounds."""
    if found.first_round_at is None or found.last_round_at is None:
        return None
    end = f.until or found.last_round_at + timedelta(hours=1)
    start = f.since or max(found.first_round_at, end - DEFAULT_WINDOW)
    if start >= end:
        return None
    return start, end


def timeline_layout(
    c: Common, found: Detection, links: Links, conn: Connection | None = None
) -> timeline.Layout | None:
    """The timeline of the series in the filters, blocked ones first; with *conn* and a range up to
    :data:`POINTS_WINDOW`, each blocked measurement too."""
    f = c.filters
    span = window(f, found)
    if span is None:
        return None
    start, end = span
    in_category = _in_category(c, f.category)
    touched = {(fl.target, fl.probe_asn) for fl in found.flags if fl.last_evidence_at >= start}
    series = [
        s
        for s in found.series
        if (f.asn is None or s.probe_asn == f.asn)
        and (f.target is None or s.target == f.target)
        and (in_category is None or s.target in in_category)
    ]
    series.sort(key=lambda s: (not s.blocked, (s.target, s.probe_asn) not in touched, s.target, s.probe_asn))

    def link(target: str, asn: str, since: datetime, until: datetime) -> str | None:
        return links.page(
            "measurements", Filters(since=since, until=until + timedelta(minutes=1), asn=asn, target=target)
        )

    names = {asn: info.name for asn, info in c.networks.items()}
    pairs = [(s.target, s.probe_asn) for s in series[:MAX_ROWS]]
    points = []
    if conn is not None and end - start <= POINTS_WINDOW:
        wanted = Filters(since=start, until=end, asn=f.asn, target=f.target, category=f.category)
        for uid, url, asn, at, outcome, mechanism, confirmed in data.blocked_rows(
            conn, wanted, limit=MAX_POINTS
        ):
            how = mechanism or "unknown"
            title = f"{url} on {c.name(asn)}: {outcome_text(outcome, confirmed)} ({how}) at {when(at)}"
            points.append(timeline.Point(url, asn, at, outcome, title, links.measurement(uid)))
    return timeline.layout(found, start=start, end=end, series=pairs, names=names, link=link, points=points)


def counts(conn: Connection, c: Common) -> CountsChart | None:
    """The daily counts chart of the filters' measurements."""
    return counts_chart(data.daily(conn, c.filters))


@dataclass(frozen=True, slots=True)
class EventView:
    """An event as the events page lists it."""

    number: int
    event: Event
    sentence: str
    networks: tuple[str, ...]
    timeline: str | None
    """Link to the timeline around it."""


def events(c: Common, found: Detection, links: Links) -> list[EventView]:
    """The events in the filters' range and network, newest first; cross-network ones are marked."""
    f = c.filters
    in_category = _in_category(c, f.category)
    out = []
    for i, e in enumerate(found.events):
        if f.since is not None and e.ended_at is not None and e.ended_at < f.since:
            continue
        if f.until is not None and e.started_at >= f.until:
            continue
        if f.asn is not None and f.asn not in e.asns:
            continue
        if f.target is not None and e.targets and f.target not in e.targets:
            continue
        if in_category is not None and e.targets and not in_category & set(e.targets):
            continue
        around = Filters(
            since=e.started_at - timedelta(days=1),
            until=(e.ended_at or e.started_at) + timedelta(days=1),
            asn=f.asn,
        )
        out.append(
            EventView(
                i + 1, e, event_sentence(e), tuple(c.name(a) for a in e.asns), links.page("timeline", around)
            )
        )
    out.reverse()
    return out


def offline(c: Common, found: Detection) -> list[tuple[str, OfflinePeriod]]:
    """The probe-offline gaps in the filters' range and network, newest first."""
    f = c.filters
    gaps = [
        (c.name(p.probe_asn), p)
        for p in found.offline
        if (f.asn is None or p.probe_asn == f.asn)
        and (f.since is None or p.ended_at >= f.since)
        and (f.until is None or p.started_at < f.until)
    ]
    return list(reversed(gaps))


@dataclass(frozen=True, slots=True)
class MeasurementPage:
    """One measurement: its summary row, its evidence, and where to cross-check it."""

    row: MeasurementRow
    network: str
    evidence: Evidence
    explorer: str
    """OONI Explorer's search for the same URL, network and day (a link; nothing is fetched)."""


def measurement(row: MeasurementRow, c: Common) -> MeasurementPage:
    """The page of *row* (read with its body)."""
    day = row.measured_at.date()
    query = urlencode(
        {
            "input": row.input,
            "probe_asn": row.probe_asn,
            "probe_cc": row.probe_cc,
            "since": (day - timedelta(days=1)).isoformat(),
            "until": (day + timedelta(days=1)).isoformat(),
            "test_name": "web_connectivity",
        }
    )
    return MeasurementPage(
        row, c.name(row.probe_asn), evidence(row.body), f"https://explorer.ooni.org/search?{query}"
    )


def listing(conn: Connection, c: Common, page: int) -> tuple[list[Any], int]:
    """A page of the measurements in the filters (newest first), and how many there are."""
    rows = [
        MeasurementRow._make(r) for r in data.listing(conn, c.filters, limit=LISTING, offset=page * LISTING)
    ]
    return rows, data.count(conn, c.filters)


def summary(found: Detection, rows: list[StateRow]) -> dict[str, Any]:
    """The now page's headline numbers."""
    blocked = [r for r in rows if r.rank <= 1]
    ongoing = [e for e in found.events if e.ended_at is None]
    return {
        "blocked": len(blocked),
        "blocked_targets": len({r.latest.url for r in blocked}),
        "series": len(rows),
        "networks": len({r.latest.probe_asn for r in rows}),
        "ongoing": len(ongoing),
        "last_round": when(found.last_round_at),
        "rounds": found.n_rounds,
        "measurements": found.n_measurements,
    }
