"""``probe run``: one stored round over loopback targets; bad settings touch nothing."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from measurements.store.store import open_store
from probe.cli import main
from probe.helper.app import HelperSettings
from probe.helper.geo import Geo
from probe.helper.measure import HelperConfig
from probe.helper.policy import AddressPolicy
from tests.servers.helper_server import running_helper
from tests.servers.http_server import HTTPServer, http_server
from tests.servers.tcp_server import closed_port

HEADER = "url,category_code,category_description,date_added,source,notes\n"
ISO_Z = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
OONI_UID = r"\d{14}\.\d{6}_[A-Z]{2}_webconnectivity_[0-9a-f]{16}"


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    with http_server() as s:
        yield s


def _write_settings(tmp_path: Path, urls: list[str], *, extra: str = "") -> tuple[Path, Path]:
    (tmp_path / "targets.csv").write_text(
        HEADER + "".join(f"{url},GRP,Social Networking,2024-02-17,test,\n" for url in urls)
    )
    database = tmp_path / "m.sqlite3"
    settings = tmp_path / "settings.toml"
    settings.write_text(
        "[measure]\nresolvers = []\nallow_loopback = true\ntcp_timeout = 2\nhttp_timeout = 2\n"
        "[tests]\nwhatsapp = false\ntelegram = false\nsignal = false\n"
        "facebook_messenger = false\nhttp3 = false\n"
        '[targets]\nlists = ["targets.csv"]\n'
        f'[storage]\ndatabase_url = "sqlite:///{database}"\n' + extra
    )
    return settings, database


def test_a_round_is_stored_and_summarised_as_json(
    tmp_path: Path, server: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = f"http://127.0.0.1:{closed_port()}/"
    working = f"http://127.0.0.1:{server.port}/"
    settings, database = _write_settings(tmp_path, [working, refused])

    assert main(["run", "--config", str(settings), "--json"]) == 0

    document = json.loads(capsys.readouterr().out)
    assert re.fullmatch(ISO_Z, document["started_at"]) and re.fullmatch(ISO_Z, document["ended_at"])
    assert document["network_up"] is True
    by_url = {row["url"]: row for row in document["results"]}
    assert {row["outcome"] for row in document["results"]} == {"no_verdict.no_control"}
    assert all(re.fullmatch(ISO_Z, row["measured_at"]) for row in document["results"])
    assert by_url[working]["tcp_failure"] is None
    assert by_url[working]["http_failure"] is None
    assert by_url[refused]["tcp_failure"] == "connection_refused"
    assert by_url[refused]["control_failure"] is not None  # no control configured: no guesses
    with open_store(f"sqlite:///{database}") as store:
        (last,) = store.last_rounds(1)
        stored = {m.measurement_uid: m.outcome for m in store.iter_measurements()}
    assert (last.id, last.status, last.n_measurements) == (document["round_id"], "complete", 2)
    assert last.network_up is True
    # One id, one outcome: what --json says is what the database holds.
    assert stored == {row["measurement_uid"]: row["outcome"] for row in document["results"]}
    assert all(re.fullmatch(OONI_UID, uid) for uid in stored)


def test_the_table_names_every_target_and_its_failure(
    tmp_path: Path, server: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    refused = f"http://127.0.0.1:{closed_port()}/"
    settings, _ = _write_settings(tmp_path, [f"http://127.0.0.1:{server.port}/", refused])

    assert main(["run", "--once", "--config", str(settings)]) == 0

    out = capsys.readouterr().out
    refused_line = next(line for line in out.splitlines() if refused in line)
    assert "connection_refused" in refused_line
    assert "no verdict (no control)" in refused_line  # a failure with nothing to compare it with
    assert "accessible" not in out
    assert "2 targets in" in out


def test_the_volunteers_address_is_never_stored(tmp_path: Path, server: HTTPServer) -> None:
    settings, database = _write_settings(tmp_path, [f"http://127.0.0.1:{server.port}/"])
    assert main(["run", "--config", str(settings), "--json"]) == 0

    with sqlite3.connect(database) as conn:
        (body,) = conn.execute("SELECT body FROM measurements").fetchone()
    assert json.loads(body)["probe_ip"] == "127.0.0.1"  # OONI's "not recorded" marker


@pytest.mark.parametrize(
    ("extra", "targets", "message"),
    [
        ("[schedule]\nevery = 3\n", None, "schedule.every: unknown setting"),
        ("", "url\nftp://bad.example/\n", "the target lists contain no URL"),
        ("", "name\nx\n", "targets.csv:1: not a test list"),
        ("", HEADER, "the target lists contain no URL"),
    ],
)
def test_bad_settings_exit_2_with_one_line_and_touch_no_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, targets: str | None, message: str
) -> None:
    settings, database = _write_settings(tmp_path, ["http://127.0.0.1:9/"], extra=extra)
    if targets is not None:
        (tmp_path / "targets.csv").write_text(targets)

    assert main(["run", "--config", str(settings)]) == 2

    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == (2 if "ftp" in (targets or "") else 1)  # the skipped row's warning first
    assert not database.exists()


def test_a_bad_database_url_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings, _ = _write_settings(tmp_path, ["http://127.0.0.1:9/"])
    assert main(["run", "--config", str(settings), "--db", "nosuchdb://x"]) == 2
    assert "nosuchdb" in capsys.readouterr().err


def test_with_a_control_the_round_records_the_network_and_the_verdicts(
    tmp_path: Path, server: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    helper = HelperSettings(
        config=HelperConfig(dns_timeout=2, tcp_timeout=2, tls_timeout=2, http_timeout=2),
        policy=AddressPolicy.allowing(("127.0.0.0/8",)),
        geo=Geo(asn_of=lambda ip: 64500, cc_of=lambda ip: "PK"),
    )
    working = f"http://127.0.0.1:{server.port}/"
    with running_helper(helper) as control_url:
        extra = f'[control]\nurl = "{control_url}"\n[network]\npublic_networks = ["127.0.0.0/8"]\n'
        settings, database = _write_settings(tmp_path, [working], extra=extra)
        assert main(["run", "--config", str(settings), "--json"]) == 0

    (row,) = json.loads(capsys.readouterr().out)["results"]
    assert (row["blocking"], row["accessible"], row["mechanism"]) == ("false", True, "ok")
    assert row["control_failure"] is None
    assert row["outcome"] == "reachable"
    with open_store(f"sqlite:///{database}") as store:
        (last,) = store.last_rounds(1)
    assert (last.probe_asn, last.probe_cc) == ("AS64500", "PK")  # asked once, before the round


def test_a_round_a_crash_left_running_is_marked_interrupted_by_the_next_run(
    tmp_path: Path, server: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, database = _write_settings(tmp_path, [f"http://127.0.0.1:{server.port}/"])
    crashed = open_store(f"sqlite:///{database}")
    left = crashed.begin_round()
    crashed.close()  # gives the round up, still "running": as a kill -9 would leave it

    assert main(["run", "--config", str(settings), "--json"]) == 0

    document = json.loads(capsys.readouterr().out)
    with open_store(f"sqlite:///{database}") as store:
        statuses = {r.id: r.status for r in store.last_rounds(10)}
    assert statuses == {left: "interrupted", document["round_id"]: "complete"}


def test_a_bad_row_is_skipped_with_a_warning_naming_file_and_line(
    tmp_path: Path, server: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    working = f"http://127.0.0.1:{server.port}/"
    settings, _ = _write_settings(tmp_path, [working])
    lists = tmp_path / "targets.csv"
    lists.write_bytes(lists.read_bytes() + b"ftp://bad.example/,GRP\nhttp://127.0.0.1:9/,N\xff\n")

    assert main(["run", "--config", str(settings), "--json"]) == 0

    out, err = capsys.readouterr()
    assert err.splitlines() == [
        f"probe: warning: {lists}:3: unsupported URL scheme 'ftp' in 'ftp://bad.example/': only http and "
        "https (row skipped)",
        f"probe: warning: {lists}:4: not UTF-8 text (row skipped)",
    ]
    assert [row["url"] for row in json.loads(out)["results"]] == [working]


def test_check_reports_every_problem_and_measures_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, database = _write_settings(tmp_path, ["http://127.0.0.1:9/", "HTTP://Example.COM/"])
    lists = tmp_path / "targets.csv"
    lists.write_text(lists.read_text() + 'ftp://bad.example/\nhttp://127.0.0.1:9/,"x"y\n')

    assert main(["run", "--check", "--config", str(settings)]) == 2

    out, err = capsys.readouterr()
    assert out == f"settings: {settings}\nlist: {lists}: 2 targets\n2 targets to measure, 2 problems\n"
    assert err.splitlines() == [
        f"probe: error: {lists}:4: unsupported URL scheme 'ftp' in 'ftp://bad.example/': only http and https",
        f"probe: error: {lists}:5: malformed CSV: ',' expected after '\"'",
    ]
    assert not database.exists()
    lists.write_text(HEADER + "http://127.0.0.1:9/\n")
    assert main(["run", "--check", "--config", str(settings), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "settings": str(settings), "lists": [{"list": str(lists), "targets": 1}], "targets": 1, "problems": []
    }  # fmt: skip
    assert not database.exists()


def test_input_urls_and_an_input_file_need_no_target_list(
    tmp_path: Path, server: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "m.sqlite3"
    settings = tmp_path / "settings.toml"
    settings.write_text(
        "[measure]\nresolvers = []\nallow_loopback = true\ntcp_timeout = 2\nhttp_timeout = 2\n"
        "[tests]\nwhatsapp = false\ntelegram = false\nsignal = false\n"
        "facebook_messenger = false\nhttp3 = false\n"
    )
    working = f"http://127.0.0.1:{server.port}/"
    plain = tmp_path / "urls.txt"
    plain.write_text(f"# a plain list\n{working}\n\nHTTP://127.0.0.1:{server.port}/two\n")
    db = f"sqlite:///{database}"

    argv = [
        "run",
        "--config",
        str(settings),
        "--db",
        db,
        "--json",
        "--input",
        working.upper().replace("HTTP", "http"),
    ]
    assert main([*argv, "--input-file", str(plain)]) == 0

    results = json.loads(capsys.readouterr().out)["results"]
    assert [row["url"] for row in results] == [working, f"{working}two"]  # one target per URL, lower-cased
    citizenlab = tmp_path / "pk.csv"
    citizenlab.write_text(HEADER + f"{working}three,GRP,Social Networking,2024-02-17,citizenlab,a note\n")
    assert (
        main(["run", "--config", str(settings), "--db", db, "--json", "--input-file", str(citizenlab)]) == 0
    )
    (row,) = json.loads(capsys.readouterr().out)["results"]
    with open_store(db) as store:
        (stored,) = store.iter_measurements(target=row["url"])
    assert (stored.category_code, stored.date_added, stored.source, stored.notes) == (
        "GRP", "2024-02-17", "citizenlab", "a note"
    )  # fmt: skip


def test_a_bad_input_url_exits_2_and_stores_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "m.sqlite3"
    assert main(["run", "--db", f"sqlite:///{database}", "--input", "ftp://x.example/"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("probe: error: Invalid value for --input: unsupported URL scheme 'ftp'")
    assert err.count("\n") == 1 and not database.exists()


@pytest.mark.parametrize(
    ("outcome", "confirmed", "shown"),
    [
        ("blocked.confirmed", "cp.b_nat_pak_isp_common_blockpage",
         "[bold red]blocked (confirmed: cp.b_nat_pak_isp_common_blockpage)[/]"),
        ("shutdown", None, "[bold red]network shut down[/]"),
        ("reachable", None, "[green]reachable[/]"),
        ("no_verdict.no_control", None, "[dim]no verdict (no control)[/]"),
    ],
)  # fmt: skip
def test_the_table_verdict_is_the_outcome(outcome: str, confirmed: str | None, shown: str) -> None:
    """A confirmed blockpage that OONI's keys call accessible reads as blocked, as the data says."""
    from probe.cli.rounds import _verdict

    row = {"outcome": outcome, "confirmed": confirmed, "blocking": "false", "accessible": True}
    assert _verdict(row) == shown
