"""The dashboard over HTTP (the real ``probe dashboard`` on 127.0.0.1): read-only, headers, downloads."""

from __future__ import annotations

import csv
import http.client
import io
import json
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from probe.cli import main

PAGES = (
    "/",
    "/grid",
    "/timeline",
    "/counts",
    "/events",
    "/measurements",
    "/networks",
    "/measurement/evidence-1",
)


def _request(
    base: str, method: str, path: str, *, host: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    where = urlsplit(base)
    conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=30)
    try:
        headers = {"Host": host} if host else {}
        conn.request(method, path, body=b"x" if method in ("POST", "PUT", "PATCH") else None, headers=headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("path", PAGES)
def test_every_page_answers_with_a_policy_that_forbids_script(synthetic_dashboard: str, path: str) -> None:
    status, headers, body = _request(synthetic_dashboard, "GET", path)
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-security-policy"] == (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
    assert b"<script" not in body and b"http://" not in body.split(b"<main>")[0]  # no asset from elsewhere


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/", "/measurement/evidence-1", "/download.csv", "/no/such/page"])
def test_nothing_but_get_is_answered(synthetic_dashboard: str, method: str, path: str) -> None:
    status, headers, _ = _request(synthetic_dashboard, method, path)
    assert (status, headers["allow"]) == (405, "GET, HEAD")


def test_head_and_an_unknown_page(synthetic_dashboard: str) -> None:
    assert _request(synthetic_dashboard, "HEAD", "/")[0] == 200
    assert _request(synthetic_dashboard, "GET", "/no/such/page")[0] == 404
    assert _request(synthetic_dashboard, "GET", "/measurement/no-such-id")[0] == 404


def test_a_foreign_host_name_is_refused(synthetic_dashboard: str) -> None:
    """A page whose DNS name was rebound to 127.0.0.1 cannot read the dashboard."""
    assert _request(synthetic_dashboard, "GET", "/", host="attacker.example")[0] == 400
    assert _request(synthetic_dashboard, "GET", "/", host="localhost")[0] == 200


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "since=yesterday",
            "Bad filter: since: expected a date (2024-02-17) or a UTC time (2024-02-17T09:00)",
        ),
        ("asn=PTCL", "Bad filter: asn: not an ASN: &#39;PTCL&#39; (expected AS1234 or 1234)"),
        ("outcome=fine", "Bad filter: outcome: expected one of blocked, blocked.confirmed"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(synthetic_dashboard: str, query: str, message: str) -> None:
    status, _, body = _request(synthetic_dashboard, "GET", f"/timeline?{query}")
    assert status == 400 and message in body.decode()


def _db_path(synthetic_db: str) -> str:
    return synthetic_db.removeprefix("sqlite:///")


def test_the_csv_download_is_what_the_filters_show(synthetic_dashboard: str, synthetic_db: str) -> None:
    query = "since=2024-02-10&until=2024-02-11&asn=AS17557&category=GRP&outcome=blocked"
    status, headers, body = _request(synthetic_dashboard, "GET", f"/download.csv?{query}")
    assert status == 200 and headers["content-type"] == "text/csv; charset=utf-8"
    assert headers["content-disposition"].startswith('attachment; filename="reachprobe-')
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    with sqlite3.connect(_db_path(synthetic_db)) as db:
        expected = db.execute(
            "SELECT m.measurement_uid FROM measurements m JOIN targets t ON t.id = m.target_id "
            "WHERE m.measured_at >= '2024-02-10' AND m.measured_at < '2024-02-12' "
            "AND m.probe_asn = 'AS17557' "
            "AND t.category_code = 'GRP' AND m.outcome LIKE 'blocked.%' ORDER BY m.measured_at, m.id"
        ).fetchall()
    assert [r["measurement_uid"] for r in rows] == [uid for (uid,) in expected]
    assert sum(r["input"] == "https://x.com/" for r in rows) == 34  # blocked until the 11th at 09:00
    assert {r["outcome"] for r in rows} == {"blocked.anomaly"}


def test_the_jsonl_download_and_one_measurements_json(synthetic_dashboard: str) -> None:
    status, headers, body = _request(synthetic_dashboard, "GET", "/download.jsonl?since=2024-03-01T00:05")
    assert status == 200 and headers["content-type"] == "application/x-ndjson"
    documents = [json.loads(line) for line in body.decode().splitlines()]
    assert [d["measurement_uid"] for d in documents] == [f"evidence-{i}" for i in range(5)]
    status, headers, raw = _request(synthetic_dashboard, "GET", "/measurement/evidence-1.json")
    assert status == 200 and headers["content-disposition"] == 'attachment; filename="evidence-1.json"'
    assert json.loads(raw) == documents[1]


def test_a_filtered_now_page_shows_only_that_network(synthetic_dashboard: str) -> None:
    status, _, body = _request(synthetic_dashboard, "GET", "/?asn=AS9541")
    page = body.decode()
    assert status == 200 and "Cybernet (AS9541)" in page
    assert "PTCL (AS17557)</td>" not in page and 'id="grid"' not in page  # one network: no grid


def test_a_non_loopback_address_needs_public(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "--db", "sqlite://", "--listen", "0.0.0.0:0"]) == 2
    assert capsys.readouterr().err == (
        "probe: error: --listen 0.0.0.0:0: not a loopback address; add --public to serve it to the network\n"
    )


def test_an_empty_store_renders_every_page(tmp_path: Path) -> None:
    from tests.dashboard.conftest import running_dashboard

    with running_dashboard(f"sqlite:///{tmp_path / 'empty.sqlite3'}") as base:
        bodies = {path: _request(base, "GET", path) for path in PAGES[:-1]}
        assert _request(base, "GET", "/download.csv")[2].decode().startswith("measurement_uid,measured_at,")
    assert {path: status for path, (status, _, _) in bodies.items()} == dict.fromkeys(PAGES[:-1], 200)
    assert "Nothing blocked or failing in the latest measurements." in bodies["/"][2].decode()
    assert "No rounds in this range." in bodies["/timeline"][2].decode()
    assert "No measurements in this range." in bodies["/counts"][2].decode()


def test_the_tests_beyond_websites_are_named_as_people_call_them(tmp_path: Path) -> None:
    from measurements.store.store import open_store
    from probe.mechanism import Mechanism
    from probe.model import Summary
    from probe.nettests.base import Clock, Context, finish
    from tests.dashboard.conftest import running_dashboard

    url = f"sqlite:///{tmp_path / 'families.sqlite3'}"
    blocked = Summary(blocking="tcp_ip", accessible=False, mechanism=Mechanism.TCP_TIMEOUT)
    context = Context(probe_asn="AS17557", probe_cc="PK")
    with open_store(url) as store:
        round_id = store.begin_round(probe_asn="AS17557", probe_cc="PK")
        store.finish_round(round_id, [
            finish(test_name="telegram", test_version="0.3.1", input=None, test_keys={}, summary=blocked,
                   clock=Clock(), context=context),
            finish(test_name="http3", test_version="0.1.0", input="https://www.youtube.com/", test_keys={},
                   summary=blocked, clock=Clock(), context=context, target="http3:https://www.youtube.com/"),
        ])  # fmt: skip
    with running_dashboard(url) as base:
        now = _request(base, "GET", "/")[2].decode()
    assert '<td class="url">Telegram' in now
    assert "https://www.youtube.com/ over HTTP/3" in now
    assert ">telegram<" not in now
