"""OONI's collector protocol on loopback, over SQLite and PostgreSQL: open, submit, close, single call.

Exact statuses and bodies: they are the contract the uploader (and any OONI probe) relies on.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from measurements.store.tables import MeasurementRecord, Network, Round
from probe.collector.app import CollectorSettings, Limits
from tests.collector.documents import (
    SPEC_MEASUREMENT,
    ooni_time,
    open_request,
    spec_measurement,
    web_connectivity,
)
from tests.collector.harness import Served, collector_at

REPORT_ID = re.compile(r"[0-9]{8}T[0-9]{6}Z_dummy_IT_30722_n1_[A-Za-z0-9]{16}")
UID = re.compile(r"[0-9]{14}\.000000_IT_dummy_[0-9a-f]{16}")


def open_report(client: httpx.Client, **changes: Any) -> str:
    r = client.post("/report", json=open_request(**changes))
    assert r.status_code == 200, r.text
    report_id: str = r.json()["report_id"]
    return report_id


def submit(client: httpx.Client, report_id: str, content: dict[str, Any]) -> httpx.Response:
    return client.post(f"/report/{report_id}", json={"format": "json", "content": content})


def rows(served: Served, *columns: Any) -> list[tuple[Any, ...]]:
    with served.store.snapshot() as conn:
        return [tuple(r) for r in conn.execute(select(*columns))]


def test_the_specs_open_report_example_opens_a_round(served: Served, client: httpx.Client) -> None:
    r = client.post("/report", json=open_request())
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"backend_version", "report_id", "supported_formats"}
    assert body["supported_formats"] == ["json"]
    assert REPORT_ID.fullmatch(body["report_id"])
    r = Round
    ((status, asn, cc, software, installation),) = rows(
        served, r.status, r.probe_asn, r.probe_cc, r.software_version, r.installation
    )
    assert (status, asn, cc, software, installation) == (
        "running",
        "AS30722",
        "IT",
        "mkcollector 0.0.1",
        None,
    )
    assert rows(served, Network.asn, Network.cc) == [("AS30722", "IT")]


def test_the_specs_measurement_is_stored_as_it_came(served: Served, client: httpx.Client) -> None:
    report_id = open_report(client)
    doc = spec_measurement(report_id, probe_ip="203.0.113.77")  # the example's times moved to now
    r = submit(client, report_id, doc)
    assert r.status_code == 200, r.text
    uid = r.json()["measurement_uid"]
    assert r.json() == {"measurement_uid": uid, "measurement_id": uid}
    assert UID.fullmatch(uid)
    m = MeasurementRecord
    ((test_name, input_, outcome, body),) = rows(served, m.test_name, m.input, m.outcome, m.body)
    assert (test_name, input_, outcome) == ("dummy", "dummy", "no_verdict.not_measured")
    assert json.loads(body) == {**doc, "probe_ip": "127.0.0.1", "measurement_uid": uid}
    assert "203.0.113.77" not in body
    assert rows(served, Round.n_measurements) == [(1,)]


def test_the_specs_example_as_written_is_too_old(served: Served, client: httpx.Client) -> None:
    r = client.post("/measurement", json={"format": "json", "content": SPEC_MEASUREMENT})
    assert (r.status_code, r.json()) == (400, {"error": "content.measurement_start_time: older than 30 days"})


def test_a_big_measurement_is_stored_whole(served: Served, client: httpx.Client) -> None:
    """A page of 1 MiB in the keys (parsed off the event loop) is stored as it came."""
    report_id = open_report(client)
    page = "<html>" + "é" * (512 * 1024) + "</html>"
    doc = spec_measurement(report_id, test_keys={"requests": [{"response": {"body": page}}]})
    r = submit(client, report_id, doc)
    assert r.status_code == 200, r.text
    (body,) = rows(served, MeasurementRecord.body)
    assert json.loads(body[0])["test_keys"]["requests"][0]["response"]["body"] == page


def test_a_resent_measurement_is_acknowledged_with_its_uid_and_stored_once(
    served: Served, client: httpx.Client
) -> None:
    report_id = open_report(client)
    doc = spec_measurement(report_id)
    first, again = submit(client, report_id, doc), submit(client, report_id, doc)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert len(rows(served, MeasurementRecord.id)) == 1
    assert rows(served, Round.n_measurements) == [(1,)]


def test_our_probes_uid_is_kept(served: Served, client: httpx.Client) -> None:
    report_id = open_report(client)
    ours = "20261206101500.123456_IT_dummy_0123456789abcdef"
    r = submit(client, report_id, spec_measurement(report_id, measurement_uid=ours))
    assert r.json() == {"measurement_uid": ours, "measurement_id": ours}
    # A uid of another network or test is not ours to keep: the collector derives one.
    r = submit(client, report_id, spec_measurement(report_id, measurement_uid=ours.replace("_IT_", "_PK_")))
    assert r.json()["measurement_uid"] != ours.replace("_IT_", "_PK_")
    assert UID.fullmatch(r.json()["measurement_uid"])


def test_close_then_submit(served: Served, client: httpx.Client) -> None:
    report_id = open_report(client)
    stored = submit(client, report_id, spec_measurement(report_id)).json()
    for _ in range(2):  # closing twice is fine
        r = client.post(f"/report/{report_id}/close")
        assert (r.status_code, r.json()) == (200, {"status": "success"})
    ((status, ended_at),) = rows(served, Round.status, Round.ended_at)
    assert status == "complete" and ended_at is not None
    late = submit(client, report_id, spec_measurement(report_id, test_runtime=1.0))
    assert (late.status_code, late.json()) == (410, {"error": "report closed"})
    resent = submit(client, report_id, spec_measurement(report_id))
    assert (resent.status_code, resent.json()) == (200, stored)


def test_unknown_and_malformed_reports(client: httpx.Client) -> None:
    unknown = "20261206T101500Z_dummy_IT_30722_n1_AAAAAAAAAAAAAAAA"
    r = submit(client, unknown, spec_measurement(unknown))
    assert (r.status_code, r.json()) == (404, {"error": "unknown report"})
    r = client.post(f"/report/{unknown}/close")
    assert (r.status_code, r.json()) == (404, {"error": "unknown report"})
    for bad in (
        "x",
        "20190313T131942Z_AS30722_dU70oZPs80d5E21z8Ef6GXel6CwsdLoXvDk44Fsajv1LDLOIeI",
        "a" * 300,
    ):
        r = client.post(f"/report/{bad}", json={"format": "json", "content": {}})
        assert (r.status_code, r.json()) == (400, {"error": "malformed report id"})
        assert r.headers["connection"] == "close"  # refused before its body was read
        r = client.post(f"/report/{bad}/close")
        assert (r.status_code, r.json()) == (400, {"error": "malformed report id"})


def test_a_measurement_must_belong_to_its_report(client: httpx.Client) -> None:
    report_id = open_report(client)
    other = open_report(client)
    network = "content.probe_cc/probe_asn: differ from the report's network"
    cases = [
        (spec_measurement(other), "content.report_id: differs from the report it is submitted to"),
        (spec_measurement(report_id, probe_cc="PK"), network),
        (spec_measurement(report_id, probe_asn="AS1"), network),
        (spec_measurement(report_id, test_name="tor"), "content.test_name: differs from the report's test"),
    ]  # fmt: skip
    for doc, message in cases:
        r = submit(client, report_id, doc)
        assert (r.status_code, r.json()) == (400, {"error": message})


def test_the_single_call_opens_stores_and_closes(served: Served, client: httpx.Client) -> None:
    doc = {**SPEC_MEASUREMENT, "measurement_start_time": ooni_time(), "test_start_time": ooni_time()}
    r = client.post("/measurement", json={"format": "json", "content": doc})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"measurement_uid", "measurement_id", "report_id"}
    assert re.fullmatch(r"[0-9]{8}T[0-9]{6}Z_dummy_ZZ_0_n1_[A-Za-z0-9]{16}", body["report_id"])
    ((report_id, status, n),) = rows(served, Round.report_id, Round.status, Round.n_measurements)
    assert (report_id, status, n) == (body["report_id"], "complete", 1)
    (stored,) = rows(served, MeasurementRecord.body)
    assert json.loads(stored[0])["report_id"] == body["report_id"]  # the spec: replaced
    # Again, bare (no envelope): the same measurement, acknowledged in the report it is in.
    again = client.post("/measurement", json=doc)
    assert (again.status_code, again.json()) == (200, body)
    assert len(rows(served, Round.id)) == 1


def test_the_rounds_start_is_the_probes_test_start_time(served: Served, client: httpx.Client) -> None:
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    report_id = open_report(client, test_start_time=ooni_time(began))
    assert REPORT_ID.fullmatch(report_id) and report_id.startswith(f"{datetime.now(UTC):%Y%m%d}")
    assert rows(served, Round.started_at) == [(began,)]


def test_web_connectivity_from_an_ooni_probe(served: Served, client: httpx.Client) -> None:
    report_id = open_report(
        client,
        probe_asn="AS17557",
        probe_cc="PK",
        test_name="web_connectivity",
        software_name="ooniprobe-cli",
    )
    doc = web_connectivity(report_id, "https://x.com/", blocking="tcp_ip", accessible=False,
                           tcp_failure="generic_timeout_error")  # fmt: skip
    r = submit(client, report_id, doc)
    assert r.status_code == 200, r.text
    assert re.fullmatch(r"[0-9]{14}\.000000_PK_webconnectivity_[0-9a-f]{16}", r.json()["measurement_uid"])
    m = MeasurementRecord
    assert rows(served, m.input, m.probe_asn, m.blocking, m.mechanism, m.tcp_failure, m.outcome) == [
        ("https://x.com/", "AS17557", "tcp_ip", "tcp.timeout", "generic_timeout_error", "blocked.anomaly")
    ]
    assert rows(served, Network.asn, Network.name) == [("AS17557", "Network AS17557")]


def test_an_expired_report_takes_only_resends(tmp_path: Any) -> None:
    now = [datetime.now(UTC)]
    settings = CollectorSettings(limits=Limits(report_lifetime=timedelta(hours=2)), clock=lambda: now[0])
    with collector_at(f"sqlite:///{tmp_path / 'c.sqlite3'}", settings) as served:
        client = httpx.Client(base_url=served.url, timeout=30)
        report_id = open_report(client)
        stored = submit(client, report_id, spec_measurement(report_id)).json()
        now[0] += timedelta(hours=2, seconds=1)
        r = submit(client, report_id, spec_measurement(report_id, test_runtime=2.0))
        assert (r.status_code, r.json()) == (410, {"error": "report closed"})
        assert submit(client, report_id, spec_measurement(report_id)).json() == stored
        assert served.reports.expire_reports(now[0] - timedelta(hours=2)) == 1
        assert rows(served, Round.status) == [("complete",)]
        client.close()


def test_the_collector_closes_expired_reports_itself(tmp_path: Any) -> None:
    now = [datetime.now(UTC)]
    limits = Limits(report_lifetime=timedelta(hours=2), expire_every_s=0.05)
    with collector_at(
        f"sqlite:///{tmp_path / 'c.sqlite3'}", CollectorSettings(limits=limits, clock=lambda: now[0])
    ) as served:
        with httpx.Client(base_url=served.url, timeout=30) as client:
            old = open_report(client)
            now[0] += timedelta(hours=1, minutes=30)
            young = open_report(client)
            now[0] += timedelta(hours=1)
        deadline = time.monotonic() + 20
        while sorted(rows(served, Round.report_id, Round.status)) != [(old, "complete"), (young, "running")]:
            assert time.monotonic() < deadline, rows(served, Round.report_id, Round.status)
            time.sleep(0.05)


@pytest.mark.parametrize("path", ["/report", "/measurement", "/report/x/close"])
def test_get_is_not_allowed(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert r.status_code in (404, 405)
    assert list(r.json()) == ["error"]


def test_index(client: httpx.Client) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.json()["authentication"] == "none"
