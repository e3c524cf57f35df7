"""The uploader against a loopback collector that behaves, then one that does not."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from measurements.store import uploads
from measurements.store.store import Store, open_store
from measurements.store.tables import UploadRecord
from probe import uploadclient
from probe.upload import RunSummary, upload_pending
from probe.uploadclient import INVALID_ANSWER
from tests.upload.fakecollector import FakeCollector, Reply, fake_collector
from tests.upload.helpers import fill, now, settings


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'probe.sqlite3'}") as s:
        yield s


@pytest.fixture
def collector() -> Iterator[tuple[FakeCollector, str]]:
    with fake_collector() as running:
        yield running


def run(store: Store, url: str | None, **kwargs: Any) -> RunSummary:
    changes = kwargs.pop("changes", {})
    return asyncio.run(upload_pending(uploads.StoreUploads(store), settings(url, **changes), **kwargs))


def rows(store: Store) -> dict[int, tuple[Any, ...]]:
    u = UploadRecord
    from sqlalchemy import select

    with store.snapshot() as conn:
        stmt = select(u.measurement_id, u.state, u.attempts, u.last_error, u.next_attempt_at, u.collector_uid)
        return {r[0]: tuple(r[1:]) for r in conn.execute(stmt)}


def test_every_measurement_is_uploaded_once_in_a_report_per_round(
    store: Store, collector: tuple[FakeCollector, str]
) -> None:
    fake, url = collector
    stored = fill(store, rounds=3, per_round=25)
    summary = run(store, url)
    assert (summary.uploaded, summary.failed, summary.reports_opened, summary.stopped) == (75, 0, 3, None)
    assert set(fake.measurements) == {m.measurement_uid for m in stored}
    assert fake.stores == 75
    # One report per round, each closed, holding that round's measurements in time order.
    assert all(r["closed"] for r in fake.reports.values())
    assert sorted(len(r["uids"]) for r in fake.reports.values()) == [25, 25, 25]
    for rid, report in fake.reports.items():
        assert report["envelope"]["probe_asn"] == "AS17557"
        assert report["envelope"]["test_name"] == "web_connectivity"
        for uid in report["uids"]:
            assert fake.measurements[uid]["report_id"] == rid  # rewritten to the collector's
            assert fake.measurements[uid]["probe_ip"] == "127.0.0.1"
    # Oldest first: submissions arrive in measurement time order.
    sent = [
        r.body["content"]["measurement_uid"]
        for r in fake.requests
        if r.path.count("/") == 2 and "close" not in r.path
    ]
    assert sent == [m.measurement_uid for m in sorted(stored, key=lambda m: m.measurement_start_time)]
    state = rows(store)
    assert len(state) == 75
    assert {(s[0], s[1], s[2], s[3]) for s in state.values()} == {("uploaded", 0, None, None)}
    assert {s[4] for s in state.values()} == {m.measurement_uid for m in stored}
    assert run(store, url).uploaded == 0  # nothing due any more
    counts = uploads.counts(store, now=now())
    assert (counts.pending, counts.failed, counts.uploaded) == (0, 0, 75)


def test_bodies_are_gzip_and_the_token_a_bearer(store: Store, collector: tuple[FakeCollector, str]) -> None:
    fake, url = collector
    fill(store, rounds=1, per_round=2)
    run(store, url, changes={"token": "s3cret-Token"})
    submissions = [
        r for r in fake.requests if r.path.startswith("/report/") and not r.path.endswith("/close")
    ]
    assert [r.headers.get("content-encoding") for r in submissions] == ["gzip", "gzip"]
    assert {r.headers["authorization"] for r in fake.requests} == {"Bearer s3cret-Token"}


def test_a_collector_without_gzip_gets_plain_json(store: Store, collector: tuple[FakeCollector, str]) -> None:
    fake, url = collector
    fake.gzip_ok = False
    fill(store, rounds=1, per_round=3)
    try:
        assert run(store, url).uploaded == 3
        assert fake.stores == 3
        encodings = [r.headers.get("content-encoding") for r in fake.requests if r.path.count("/") == 2]
        assert encodings == ["gzip", None, None, None]  # refused (415), then plain for the run
        fill(store, rounds=1, per_round=2, first=100)
        fake.requests.clear()
        assert run(store, url).uploaded == 2  # the next run remembers: plain from the start
        assert fake.stores == 5
        assert all("content-encoding" not in r.headers for r in fake.requests)
    finally:
        uploadclient._PLAIN_ONLY.clear()


def test_measurements_of_a_running_round_wait_for_it(
    store: Store, collector: tuple[FakeCollector, str]
) -> None:
    fake, url = collector
    fill(store, rounds=1, per_round=5, finish=False)
    assert run(store, url).uploaded == 0
    assert fake.requests == []
    counts = uploads.counts(store, now=now())
    assert (counts.pending, counts.in_running_rounds) == (0, 5)
    (info,) = store.last_rounds(1)
    store.finish_round(info.id)
    assert run(store, url).uploaded == 5


def test_a_resent_measurement_is_acknowledged_not_stored_twice(
    store: Store, collector: tuple[FakeCollector, str]
) -> None:
    fake, url = collector
    fill(store, rounds=2, per_round=10)
    run(store, url)
    with store.transaction("forget") as conn:  # as if the run had died before recording
        from sqlalchemy import delete

        conn.execute(delete(UploadRecord))
    summary = run(store, url)
    assert summary.uploaded == 20
    assert fake.stores == 20
    assert len(fake.reports) == 4


def test_an_unreachable_collector_is_one_failed_attempt_per_run_then_backs_off(store: Store) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/"  # bound, never listening: refused
        fill(store, rounds=1, per_round=5)
        before = now()
        summary = run(store, url)
    assert (summary.uploaded, summary.failed, summary.stopped) == (0, 1, "connection_refused")
    ((state, attempts, error, next_at, _),) = rows(store).values()
    assert (state, attempts, error) == ("failed", 1, "connection_refused")
    assert before + timedelta(minutes=5) <= next_at <= now() + timedelta(minutes=5)
    counts = uploads.counts(store, now=now())
    assert (counts.pending, counts.failed, counts.failed_due, counts.last_error) == (
        4,
        1,
        0,
        "connection_refused",
    )


def test_failures_double_the_wait_up_to_the_bound_then_catch_up_oldest_first(
    store: Store, collector: tuple[FakeCollector, str]
) -> None:
    fake, url = collector
    stored = fill(store, rounds=2, per_round=10)
    fake.script = lambda path, body: Reply(503, b"busy")
    clock = [now()]
    waits = []
    for _ in range(5):
        summary = run(store, url, now=lambda: clock[0], retry_all=True)
        assert (summary.failed, summary.stopped) == (1, "http_status_503")
        (row,) = [r for r in rows(store).values() if r[0] == "failed"]
        waits.append(row[3] - clock[0])
        clock[0] += timedelta(hours=1)
    minutes = [round(w.total_seconds() / 60) for w in waits]
    assert minutes == [5, 10, 20, 40, 80]
    fake.script = None
    summary = run(store, url, now=lambda: clock[0])
    assert (summary.uploaded, summary.failed, summary.stopped) == (20, 0, None)
    assert set(fake.measurements) == {m.measurement_uid for m in stored}


def test_a_refused_measurement_waits_the_longest_and_the_others_go_on(
    store: Store, collector: tuple[FakeCollector, str]
) -> None:
    fake, url = collector
    stored = fill(store, rounds=1, per_round=6)
    bad = stored[2].measurement_uid

    def refuse(path: str, body: Any) -> Reply | None:
        if isinstance(body, dict) and body.get("content", {}).get("measurement_uid") == bad:
            return Reply(400, b'{"error": "invalid test_keys"}')
        return None

    fake.script = refuse
    before = now()
    summary = run(store, url)
    assert (summary.uploaded, summary.failed, summary.rejected, summary.stopped) == (5, 1, 1, None)
    assert summary.errors == {"http_status_400": 1}
    failed = [r for r in rows(store).values() if r[0] == "failed"]
    assert [(r[0], r[1], r[2]) for r in failed] == [("failed", 1, "http_status_400")]
    assert failed[0][3] >= before + timedelta(hours=6)


def test_a_report_older_than_the_hour_is_reopened_and_the_report_id_rewritten(
    store: Store, collector: tuple[FakeCollector, str]
) -> None:
    fake, url = collector
    stored = fill(store, rounds=1, per_round=7)
    fake.expire_after = 3  # the collector closed each report after three measurements
    summary = run(store, url, report_max_age_s=0.0)
    assert (summary.uploaded, summary.failed, summary.reports_opened, summary.reports_reopened) == (
        7,
        0,
        3,
        2,
    )
    assert sorted(len(r["uids"]) for r in fake.reports.values()) == [1, 3, 3]
    for rid, report in fake.reports.items():
        assert all(fake.measurements[uid]["report_id"] == rid for uid in report["uids"])
    assert fake.stores == len(stored)


def test_a_young_report_refusing_is_a_refusal_not_a_reopen(
    store: Store, collector: tuple[FakeCollector, str]
) -> None:
    fake, url = collector
    fill(store, rounds=1, per_round=4)
    fake.expire_after = 2
    summary = run(store, url)  # the hour has not passed: the spec's rule does not apply
    assert (summary.uploaded, summary.rejected, summary.reports_reopened) == (2, 2, 0)


BOMB = gzip.compress(b"0" * (50 * 1024 * 1024))


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(200, b"not json at all"), INVALID_ANSWER),
        (Reply(200, b'{"report_id": 12}'), INVALID_ANSWER),
        (Reply(200, b'{"report_id": ""}'), INVALID_ANSWER),
        (Reply(200, json.dumps({"report_id": "x" * 129}).encode()), INVALID_ANSWER),
        (Reply(200, b"[" * 100_000), INVALID_ANSWER),
        (Reply(200, b"{" + b" " * (1024 * 1024) + b"}"), INVALID_ANSWER),  # larger than any answer
        (Reply(200, BOMB, {"Content-Encoding": "gzip"}), INVALID_ANSWER),  # 50 MB once inflated
        (Reply(302, b"", {"Location": "http://[::1"}), "http_status_302"),
        (Reply(500, b"x" * 1_000_000), "http_status_500"),
        (Reply(200, b"{}", delay_s=3.0), "generic_timeout_error"),
        (Reply(200, b"{", {"Content-Length": "100", "Connection": "close"}), "http_protocol_error"),
    ],
)
def test_hostile_answers_to_opening_a_report(
    store: Store, collector: tuple[FakeCollector, str], reply: Reply, error: str
) -> None:
    fake, url = collector
    fill(store, rounds=1, per_round=3)
    fake.script = lambda path, body: reply if path == "/report" else None
    tracemalloc.start()
    try:
        summary = run(store, url, changes={"timeout": 1.0})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (summary.uploaded, summary.failed, summary.stopped) == (0, 1, error)
    assert peak < 8 * 1024 * 1024
    assert len(fake.requests) == 1  # a broken collector costs one request per run


def test_a_hostile_report_id_stays_in_its_path_segment(
    store: Store, collector: tuple[FakeCollector, str]
) -> None:
    fake, url = collector
    fill(store, rounds=1, per_round=1)
    hostile = "../../admin?x=1#y"

    def opened(path: str, body: Any) -> Reply | None:
        if path == "/report":
            return Reply(200, json.dumps({"report_id": hostile}).encode())
        return Reply(200, b"{}")

    fake.script = opened
    summary = run(store, url)
    assert summary.uploaded == 1
    assert [r.path for r in fake.requests] == [
        "/report",
        "/report/..%2F..%2Fadmin%3Fx%3D1%23y",
        "/report/..%2F..%2Fadmin%3Fx%3D1%23y/close",
    ]
    assert fake.requests[1].body["content"]["report_id"] == hostile


def test_a_stored_body_that_is_not_a_measurement_is_set_aside(
    store: Store, collector: tuple[FakeCollector, str]
) -> None:
    _, url = collector
    stored = fill(store, rounds=1, per_round=3)
    from sqlalchemy import update

    from measurements.store.tables import MeasurementRecord as M

    with store.transaction("damage") as conn:
        conn.execute(update(M).where(M.measurement_uid == stored[1].measurement_uid).values(body="[]"))
    summary = run(store, url)
    assert (summary.uploaded, summary.rejected, summary.errors) == (2, 1, {"stored_measurement_invalid": 1})


def test_stop_ends_the_run_between_two_requests_and_keeps_what_was_acknowledged(
    store: Store, collector: tuple[FakeCollector, str]
) -> None:
    fake, url = collector
    fill(store, rounds=1, per_round=10)
    submitted = lambda: sum(1 for r in fake.requests if r.path.count("/") == 2 and "close" not in r.path)  # noqa: E731
    summary = run(store, url, stop=lambda: submitted() >= 4)
    assert (summary.uploaded, summary.stopped) == (4, "stopped")
    assert uploads.counts(store, now=now()).uploaded == 4
    assert all(r["closed"] for r in fake.reports.values())
    assert run(store, url).uploaded == 6


def test_cancelling_the_run_records_what_the_collector_acknowledged(
    store: Store, collector: tuple[FakeCollector, str]
) -> None:
    fake, url = collector
    fill(store, rounds=1, per_round=10)

    def slow_sixth(path: str, body: Any) -> Reply | None:
        if isinstance(body, dict) and "content" in body and len(fake.measurements) == 5:
            return Reply(200, b"{}", delay_s=2.0)
        return None

    fake.script = slow_sixth

    async def main() -> None:
        task = asyncio.create_task(upload_pending(uploads.StoreUploads(store), settings(url)))
        while len(fake.measurements) < 5 or len(fake.requests) < 7:  # noqa: ASYNC110 - another thread's state
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert uploads.counts(store, now=now()).uploaded == 5


def test_a_busy_collector_is_asked_again_after_its_retry_after(
    store: Store, collector: tuple[FakeCollector, str]
) -> None:
    fake, url = collector
    fill(store, rounds=1, per_round=3)
    busy = iter([Reply(429, b"{}", {"Retry-After": "0"}), Reply(503, b"{}", {"Retry-After": "1"})])

    def twice(path: str, body: Any) -> Reply | None:
        return next(busy, None) if path.count("/") == 2 else None

    fake.script = twice
    summary = run(store, url)
    assert (summary.uploaded, summary.failed) == (3, 0)
    assert fake.stores == 3


@pytest.mark.parametrize(
    ("retry_after", "requests"),
    [("0", 4), (None, 1), ("31", 1), ("Fri, 31 Dec 1999 23:59:59 GMT", 1), ("9" * 40, 1)],
)
def test_retry_after_is_honoured_a_few_times_and_only_when_short(
    store: Store, collector: tuple[FakeCollector, str], retry_after: str | None, requests: int
) -> None:
    fake, url = collector
    fill(store, rounds=1, per_round=2)
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    fake.script = lambda path, body: Reply(503, b"{}", headers)
    summary = run(store, url)
    assert (summary.uploaded, summary.failed, summary.stopped) == (0, 1, "http_status_503")
    assert len(fake.requests) == requests


@pytest.mark.parametrize("status", [404, 410])
def test_a_report_the_collector_no_longer_has_is_reopened_at_any_age(
    store: Store, collector: tuple[FakeCollector, str], status: int
) -> None:
    fake, url = collector
    fill(store, rounds=1, per_round=4)
    gone: set[str] = set()

    def forget_the_first_report(path: str, body: Any) -> Reply | None:
        parts = path.strip("/").split("/")
        if len(parts) == 2 and (not gone or parts[1] in gone):
            gone.add(parts[1])
            return Reply(status, b'{"error": "unknown report"}')
        return None

    fake.script = forget_the_first_report
    summary = run(store, url)  # the report is young: only its being gone reopens it
    assert (summary.uploaded, summary.failed, summary.reports_opened, summary.reports_reopened) == (
        4,
        0,
        2,
        1,
    )
    assert fake.stores == 4


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_probe_is_a_failure_not_a_refused_measurement(
    store: Store, collector: tuple[FakeCollector, str], status: int
) -> None:
    fake, url = collector
    fill(store, rounds=1, per_round=4)
    fake.script = lambda path, body: Reply(status, b"{}") if path.count("/") == 2 else None
    summary = run(store, url)
    assert (summary.uploaded, summary.failed, summary.rejected, summary.stopped) == (
        0,
        1,
        0,
        f"http_status_{status}",
    )
