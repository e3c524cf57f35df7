"""``probe list`` (the stored rounds) and ``probe show ID`` (one measurement, step by step)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from measurements.store.rows import TargetInfo
from measurements.store.store import open_store
from probe.cli import main
from tests.storage.factories import BASE, make_measurement, uid


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'probe.sqlite3'}"
    with open_store(url) as store:
        rid = store.begin_round(started_at=BASE, n_targets=2, probe_asn="AS17557", probe_cc="PK")
        ms = [
            make_measurement(0, kind="blockpage", url="http://www.youtube.com/"),
            make_measurement(1, kind="ok", url="https://en.wikipedia.org/", at=BASE + timedelta(seconds=1)),
        ]
        store.finish_round(rid, ms, targets=[TargetInfo("http://www.youtube.com/", "MMED")],
                           ended_at=BASE + timedelta(seconds=9))  # fmt: skip
        store.begin_round(
            started_at=BASE + timedelta(hours=1), n_targets=2, probe_asn="AS17557", probe_cc="PK"
        )
        store.mark_interrupted()
    return url


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_json(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "list", "--db", db, "--json")
    assert (code, err) == (0, "")
    rounds = json.loads(out)["rounds"]
    assert rounds == [
        {"id": 2, "status": "interrupted", "started_at": "2024-01-20T11:00:00Z", "ended_at": None,
         "n_targets": 2, "n_measurements": 0, "n_failed": 0, "n_errors": 0, "probe_asn": "AS17557",
         "probe_cc": "PK", "network_up": None, "control_reachable": None, "software_version": ""},
        {"id": 1, "status": "complete", "started_at": "2024-01-20T10:00:00Z",
         "ended_at": "2024-01-20T10:00:09Z", "n_targets": 2, "n_measurements": 2, "n_failed": 1,
         "n_errors": 0, "probe_asn": "AS17557", "probe_cc": "PK", "network_up": True,
         "control_reachable": True, "software_version": ""},
    ]  # fmt: skip
    assert len(json.loads(main_out(capsys, "list", "--db", db, "--json", "-n", "1"))["rounds"]) == 1


def main_out(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = _run(capsys, *argv)
    assert (code, err) == (0, "")
    return out


def test_list_table(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    lines = [line.rstrip() for line in main_out(capsys, "list", "--db", db).splitlines()]
    head = "round  status       started               ended                 targets  measured  failed  errors"
    assert lines == [
        head + "  network",
        "    2  interrupted  2024-01-20T11:00:00Z                              2         0       0       0"
        "  AS17557 PK",
        "    1  complete     2024-01-20T10:00:00Z  2024-01-20T10:00:09Z        2         2       1       0"
        "  AS17557 PK",
    ]


def test_show_by_prefix_step_by_step_with_the_outcome(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    prefix = uid(0)[:-3]  # ...0000000000000001 and ...0000000000000002 differ in the last character
    code, out, err = _run(capsys, "show", "--db", db, uid(0)[:-1] + "1")
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "http://www.youtube.com/  (1.25 s, AS17557 PK, 2024-01-20T10:00:00Z)",
        f"measurement_uid {uid(0)}  round 1",
        "  dns  getaddrinfo www.youtube.com ANY  → 93.184.215.14, 2606:2800:21f:cb07:6820:80da:af6b:8b2c"
        "  10 ms",
        "  tcp  2606:2800:21f:cb07:6820:80da:af6b:8b2c:443  → ✗ network_unreachable  1 ms",
        "  tcp  93.184.215.14:443  → connected  39 ms",
        "  tls  93.184.215.14:443 sni=www.youtube.com  → TLSv1.3 h2  40 ms",
        "  http GET http://www.youtube.com/ via 93.184.215.14:443  → 200 (29 bytes) 'Blocked by PTA'  110 ms",
        "outcome: blocked (confirmed: pk_pta_blockpage)",
        "OONI keys: blocking=http-diff accessible=false dns_consistency=consistent mechanism=http.blockpage "
        "confirmed=pk_pta_blockpage",
    ]
    code, out, err = _run(capsys, "show", "--db", db, "--json", uid(0))
    assert (code, err) == (0, "")
    doc = json.loads(out)
    assert (doc["measurement_uid"], doc["test_keys"]["x_confirmed"]) == (uid(0), "pk_pta_blockpage")
    code, out, err = _run(capsys, "show", "--db", db, prefix)
    assert (code, out) == (2, "")
    ids = f"{uid(0)}, {uid(1)}"
    assert (
        err == f"probe: error: {prefix!r} is the start of several measurement ids ({ids}): give more of it\n"
    )


@pytest.mark.parametrize("given", ["nosuchid", "2024%", "20240120100000_"])
def test_show_an_unknown_id_exits_2_in_one_line(
    db: str, capsys: pytest.CaptureFixture[str], given: str
) -> None:
    code, out, err = _run(capsys, "show", "--db", db, given)
    assert (code, out) == (2, "")
    assert err.endswith(f"no measurement has the id {given!r} (`probe export` lists them)\n")
    assert err.count("\n") == 1
