"""``probe run``: one stored round over loopback targets; bad settings touch nothing."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from measurements.store import open_store
from probe.cli import main
from probe.helper.app import HelperSettings
from probe.helper.geo import Geo
from probe.helper.measure import HelperConfig
from probe.helper.policy import AddressPolicy
from tests.servers.helper_server import running_helper
from tests.servers.http_server import HTTPServer, http_server
from tests.servers.tcp_server import closed_port

HEADER = "url,category_code,category_description,date_added,source,notes\n"


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
    by_url = {row["url"]: row for row in document["results"]}
    assert by_url[working]["tcp_failure"] is None
    assert by_url[working]["http_failure"] is None
    assert by_url[refused]["tcp_failure"] == "connection_refused"
    assert by_url[refused]["control_failure"] is not None  # no control configured: no guesses
    with open_store(f"sqlite:///{database}") as store:
        (last,) = store.last_rounds(1)
    assert (last.id, last.status, last.n_measurements) == (document["round_id"], "complete", 2)
    assert last.network_up is True


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
        ("", "url\nhttp://ok.example/\nftp://bad.example/\n", "targets.csv:3:"),
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
    assert err.count("\n") == 1
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
