"""Idempotency under concurrency, on SQLite and PostgreSQL: a measurement re-sent at once, by
many clients, to one collector or to two collectors over one database, is stored once and every
sender gets the same uid."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import func, select

from measurements.store.tables import MeasurementRecord, Round
from tests.collector.documents import open_request, spec_measurement, web_connectivity
from tests.collector.harness import Served, collector_at

SENDERS = 16


def post(url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=60) as client:
        return client.post(path, json=body)


def count(served: Served, column: Any) -> int:
    with served.store.snapshot() as conn:
        return int(conn.execute(select(func.count(column))).scalar_one())


def test_one_measurement_resent_at_once_is_stored_once(served: Served, client: httpx.Client) -> None:
    report_id = client.post("/report", json=open_request()).json()["report_id"]
    body = {"format": "json", "content": spec_measurement(report_id)}
    with ThreadPoolExecutor(SENDERS) as pool:
        answers = list(pool.map(lambda _: post(served.url, f"/report/{report_id}", body), range(SENDERS)))
    assert {r.status_code for r in answers} == {200}
    assert len({r.json()["measurement_uid"] for r in answers}) == 1
    assert count(served, MeasurementRecord.id) == 1
    with served.store.snapshot() as conn:
        assert conn.execute(select(Round.n_measurements)).scalar_one() == 1


def test_single_calls_resent_at_once_open_one_report(served: Served) -> None:
    body = {"format": "json", "content": spec_measurement("", probe_asn="AS0", probe_cc="ZZ")}
    with ThreadPoolExecutor(SENDERS) as pool:
        answers = list(pool.map(lambda _: post(served.url, "/measurement", body), range(SENDERS)))
    assert {r.status_code for r in answers} == {200}, {r.text for r in answers}
    assert len({(r.json()["measurement_uid"], r.json()["report_id"]) for r in answers}) == 1
    assert (count(served, MeasurementRecord.id), count(served, Round.id)) == (1, 1)


def test_two_collectors_over_one_database(store_url: str) -> None:
    """Stateless collectors behind a load balancer: both take every measurement, each stored once."""
    with collector_at(store_url) as a, collector_at(store_url) as b:
        opened = post(a.url, "/report", open_request(probe_asn="AS17557", probe_cc="PK",
                                                     test_name="web_connectivity"))  # fmt: skip
        report_id = opened.json()["report_id"]
        docs = [web_connectivity(report_id, f"https://site{i}.example/") for i in range(40)]
        jobs = [(served.url, doc) for doc in docs for served in (a, b, a, b)]
        with ThreadPoolExecutor(SENDERS) as pool:
            answers = list(
                pool.map(
                    lambda job: post(job[0], f"/report/{report_id}", {"format": "json", "content": job[1]}),
                    jobs,
                )
            )
        assert {r.status_code for r in answers} == {200}
        uids = Counter(r.json()["measurement_uid"] for r in answers)
        assert len(uids) == 40 and set(uids.values()) == {4}
        assert count(a, MeasurementRecord.id) == 40
        with a.store.snapshot() as conn:
            assert conn.execute(select(Round.n_measurements)).scalar_one() == 40
        assert post(b.url, f"/report/{report_id}/close", {}).json() == {"status": "success"}
