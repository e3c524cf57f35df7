"""PostgreSQL refusing the collector: probes are answered 503 with Retry-After (retry later, nothing
lost: nothing was acknowledged), the collector stays up, and takes measurements again once the
database is back — with nothing stored twice."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import func, select

from measurements.store.tables import MeasurementRecord
from tests.collector.documents import open_request, spec_measurement
from tests.collector.harness import collector_at


def test_a_database_that_refuses_is_a_503_then_recovers(pg_cluster: Any) -> None:
    name = pg_cluster.database("down")
    with (
        collector_at(pg_cluster.url(name)) as served,
        httpx.Client(base_url=served.url, timeout=60) as client,
    ):
        report_id = client.post("/report", json=open_request()).json()["report_id"]
        first = {"format": "json", "content": spec_measurement(report_id)}
        assert client.post(f"/report/{report_id}", json=first).status_code == 200

        pg_cluster.admin(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        pg_cluster.admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        second = {"format": "json", "content": spec_measurement(report_id, test_runtime=2.0)}
        r = client.post(f"/report/{report_id}", json=second)
        assert (r.status_code, r.json(), r.headers["retry-after"]) == (
            503,
            {"error": "storage unavailable"},
            "5",
        )
        r = client.post("/report", json=open_request())
        assert (r.status_code, r.json()) == (503, {"error": "storage unavailable"})

        pg_cluster.admin(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        for body in (first, second, second):  # re-sends after the outage: each stored once
            assert client.post(f"/report/{report_id}", json=body).status_code == 200
        with served.store.snapshot() as conn:
            assert conn.execute(select(func.count(MeasurementRecord.id))).scalar_one() == 2
    pg_cluster.admin(f"DROP DATABASE {name} WITH (FORCE)")
