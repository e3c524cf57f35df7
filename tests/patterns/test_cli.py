"""``probe flags`` and ``probe report`` against a synthetic SQLite store."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from measurements.patterns.synthetic import SyntheticConfig, X, write
from measurements.store.store import open_store
from probe.cli import main


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'm.sqlite3'}"
    with open_store(url) as store:
        write(store, SyntheticConfig.small(days=36, x_block=(12, 9, None)))
    return url


def test_flags_json(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flags", "--db", db, "--json", "--target", X, "--asn", "17557"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (onset,) = doc["flags"]
    assert (onset["kind"], onset["layer"], onset["mechanism"]) == ("blocking_onset", "tls", "tls.reset.sni")
    assert onset["first_evidence_at"].startswith("2024-01-13T09:0")
    (event,) = doc["events"]
    assert (event["kind"], event["scope"], event["targets"], event["ended_at"]) == (
        "blocking", "national", [X], None,
    )  # fmt: skip


def test_flags_sentences(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["flags", "--db", db, "--since", "2024-01-29"]) == 0
    out, err = capsys.readouterr()
    assert "event: Network shutdown on one network (AS45669)" in out
    sentence = f"{X} blocked (anomaly) on AS9541 (PK) at the TLS layer (tls.reset.sni) from 2024-01-13 09:0"
    assert sentence in out
    assert "flags and" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--asn", "PTCL"],
            "probe: error: Invalid value for '--asn': not an ASN: 'PTCL' (expected AS1234 or 1234)\n",
        ),
        (
            ["--since", "yesterday"],
            "probe: error: Invalid value for '--since': 'yesterday' is not an ISO 8601",
        ),
    ],
)
def test_bad_input_exits_2(
    db: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["flags", "--db", db, *args]) == 2
    assert capsys.readouterr().err.startswith(message)


def test_report_is_self_contained(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    assert main(["report", "--db", db, "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page and "</svg>" in page
    assert "<script" not in page.lower()
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "src=" not in page  # nothing to fetch; links within the page (and to OONI Explorer, if clicked)
    hrefs = set(re.findall(r'href="([^"#?]*)', page))
    assert hrefs <= {"", "data:,", "https://explorer.ooni.org/search"}, hrefs
    assert "tls.reset.sni" in page and "network shutdown" in page
    assert "wrote" in capsys.readouterr().err
