"""The dated axis's ticks and labels at each zoom, and the filters' parsing (exact expectations)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from measurements.views.axis import nice_max, time_ticks
from measurements.views.dashboard.filters import FilterError, Filters

T = datetime(2024, 2, 17, 9, 30, tzinfo=UTC)


def _labels(start: datetime, end: datetime, width: float = 900) -> list[str]:
    span = (end - start).total_seconds()
    ticks = time_ticks(start, end, lambda t: width * (t - start).total_seconds() / span, width)
    return [t.label for t in ticks if t.label]


def test_a_day_has_hour_labels_under_a_dated_first_tick() -> None:
    assert _labels(T, T + timedelta(hours=24)) == [
        "17 Feb 12:00", "15:00", "18:00", "21:00", "Sun 18 Feb", "03:00", "06:00",  # no 09:00: past the end
    ]  # fmt: skip


def test_two_days_date_each_midnight() -> None:
    start = datetime(2024, 2, 10, tzinfo=UTC)
    assert _labels(start, start + timedelta(days=2)) == [
        "10 Feb 2024", "06:00", "12:00", "18:00", "Sun 11 Feb", "06:00", "12:00", "18:00",
    ]  # fmt: skip


def test_a_month_has_day_ticks_and_week_labels() -> None:
    start = datetime(2024, 1, 31, tzinfo=UTC)
    ticks = time_ticks(start, start + timedelta(days=30), lambda t: 30 * (t - start).days, 900)
    assert [t.label for t in ticks if t.label] == ["05 Feb 2024", "12 Feb", "19 Feb", "26 Feb"]
    days = [t.at for t in ticks if t.day_start]
    assert days == [start + timedelta(days=n) for n in range(31)]  # a tick every day (and every 6 hours)


def test_a_year_has_month_labels_and_the_year_at_january() -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    assert _labels(start, datetime(2025, 1, 1, tzinfo=UTC)) == [
        "Jan 2024", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "top"),
    [(0, 1), (1, 1), (3, 5), (7, 10), (11, 15), (960, 1000), (1001, 1500), (2784, 3000), (40001, 50000)],
)
def test_nice_max(value: int, top: int) -> None:
    assert nice_max(value) == top


def test_filters_parse_and_go_back_into_links() -> None:
    f = Filters.parse({"since": "2024-02-17", "until": "2024-02-18", "asn": "17557",
                       "target": " https://x.com/ ", "category": "", "outcome": "blocked"})  # fmt: skip
    assert f == Filters(
        since=datetime(2024, 2, 17, tzinfo=UTC), until=datetime(2024, 2, 19, tzinfo=UTC), asn="AS17557",
        target="https://x.com/", outcome="blocked",
    )  # fmt: skip
    assert f.query() == (
        "since=2024-02-17T00%3A00&until=2024-02-19T00%3A00&asn=AS17557&target=https%3A%2F%2Fx.com%2F&outcome=blocked"
    )
    assert Filters.parse(dict(pair.split("=") for pair in f.query().replace("%3A", ":").split("&")
                              if not pair.startswith("target"))) == Filters(
        since=f.since, until=f.until, asn="AS17557", outcome="blocked"
    )  # fmt: skip
    assert Filters.parse({}) == Filters() and not Filters().any and Filters().query() == ""


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "17/02/2024"}, "since: expected a date (2024-02-17) or a UTC time (2024-02-17T09:00)"),
        ({"asn": "PTCL"}, "asn: not an ASN: 'PTCL' (expected AS1234 or 1234)"),
        ({"outcome": "ok"}, "outcome: expected one of blocked, blocked.confirmed, blocked.anomaly, shutdown, "
                            "reachable, down, server.refusal, no_verdict"),
    ],
)  # fmt: skip
def test_a_bad_filter_names_its_parameter(params: dict[str, str], message: str) -> None:
    with pytest.raises(FilterError) as raised:
        Filters.parse(params)
    assert str(raised.value) == message
