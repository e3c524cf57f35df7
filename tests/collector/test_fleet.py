"""A fleet's database: probes on two networks upload through the collector, and the read commands
(`probe flags`, `export`, `report`) over the collector's database see every vantage point at once
— a block seen on both networks is one national event."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from probe.cli import main
from tests.collector.documents import SESSION_START, ooni_time, open_request, web_connectivity
from tests.collector.harness import collector_at

X, Y = "https://x.com/", "https://www.wikipedia.org/"
NETWORKS = ("AS17557", "AS9541")
ROUNDS, BLOCKED_FROM = 12, 5
START = SESSION_START - timedelta(days=2)


def upload_rounds(url: str, asn: str) -> None:
    """*asn*'s probe: a round an hour, each its own report; X times out from round 5 on, Y loads."""
    with httpx.Client(base_url=url, timeout=30) as client:
        for n in range(ROUNDS):
            when = START + timedelta(hours=n, minutes=NETWORKS.index(asn))
            opened = client.post(
                "/report",
                json=open_request(
                    probe_asn=asn,
                    probe_cc="PK",
                    test_name="web_connectivity",
                    test_start_time=ooni_time(when),
                ),
            )
            report_id = opened.json()["report_id"]
            blocked = n >= BLOCKED_FROM
            docs = [
                web_connectivity(report_id, X, asn=asn, when=when, blocking="tcp_ip" if blocked else False,
                                 accessible=not blocked,
                                 tcp_failure="generic_timeout_error" if blocked else None),
                web_connectivity(report_id, Y, asn=asn, when=when + timedelta(seconds=5)),
            ]  # fmt: skip
            for doc in docs:
                r = client.post(f"/report/{report_id}", json={"format": "json", "content": doc})
                assert r.status_code == 200, r.text
            assert client.post(f"/report/{report_id}/close").status_code == 200


@pytest.fixture
def fleet(store_url: str) -> str:
    with collector_at(store_url) as served:
        for asn in NETWORKS:
            upload_rounds(served.url, asn)
    return store_url


def test_flags_mark_a_block_on_two_networks_national(fleet: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flags", "--db", fleet, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    onsets = sorted((f["probe_asn"], f["target"], f["layer"], f["mechanism"]) for f in found["flags"])
    assert onsets == [(asn, X, "tcp", "tcp.timeout") for asn in sorted(NETWORKS)]
    (event,) = found["events"]
    assert (event["kind"], event["scope"], event["targets"], sorted(event["asns"])) == (
        "blocking", "national", [X], sorted(NETWORKS),
    )  # fmt: skip


def test_export_has_every_vantage_point(fleet: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--db", fleet, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 2 * ROUNDS * len(NETWORKS)
    blocked = {(r["probe_asn"], r["outcome"]) for r in rows if r["input"] == X and r["blocking"] == "tcp_ip"}
    assert blocked == {(asn, "blocked.anomaly") for asn in NETWORKS}
    assert {r["probe_asn"] for r in rows} == set(NETWORKS)


def test_report_over_the_fleet(fleet: str, tmp_path: Path) -> None:
    out = tmp_path / "fleet.html"
    assert main(["report", "--db", fleet, "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert all(asn in page for asn in NETWORKS)
