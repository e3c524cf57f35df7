"""The volunteer's ``[tests]``: what runs, the categories left out, the data budget; and a round's families.

The families that run here are pointed at loopback (an endpoint override for HTTP/3, loopback
URLs for throughput); every family that would reach the Internet is switched off.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme
from sqlalchemy import select

from measurements.store.store import open_store
from measurements.store.tables import MeasurementRecord, Target
from probe.errors import ConfigError
from probe.lab.quicserver import QuicServer
from probe.nettests.registry import FAMILIES
from probe.rounds import families
from probe.rounds import settings as rounds_settings
from probe.rounds.settings import FAMILY_NAMES, Settings, load_settings
from probe.rounds.targets import Target as ListTarget
from probe.webconnectivity import MeasureConfig
from tests.nettests.test_http3 import pem_of, route
from tests.nettests.test_throughput import media_server
from tests.servers.http_server import HTTPServer, http_server

Selection = rounds_settings.Tests  # not a name pytest collects
OFFLINE = {"whatsapp": False, "telegram": False, "signal": False, "facebook_messenger": False}
"""What a test switches off so that nothing leaves loopback (tor, vpn, sni_blocking and throughput
are off by default)."""


def offline(**changes: object) -> rounds_settings.Tests:
    """``[tests]`` with the Internet-bound families off, and *changes*."""
    return Selection.model_validate({**OFFLINE, **changes})


def test_defaults_switch_the_risky_and_the_heavy_families_off() -> None:
    tests = Settings().tests
    assert tests.enabled() == ("whatsapp", "telegram", "signal", "facebook_messenger", "http3")
    assert (tests.tor, tests.vpn, tests.sni_blocking, tests.throughput) == (False, False, False, False)
    assert tests.monthly_budget_bytes == 2 * 1024**3 and tests.throughput_round_bytes == 2 * 1024**2
    assert set(FAMILY_NAMES) == set(FAMILIES)  # every switch has a family, every family a switch


def test_the_shipped_file_documents_every_tests_key() -> None:
    text = Path(__file__).resolve().parents[2].joinpath("config", "settings.toml").read_text()
    section = text.split("[tests]", 1)[1]
    for key in Selection.model_fields:
        assert f"{key} =" in section, key


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[tests]\ntor = 'yes'\n", "tests.tor: Input should be a valid boolean"),
        (
            "[tests]\nexcluded_categories = ['PORN', 'porn']\n",
            "tests.excluded_categories.1: 'porn' is not a citizenlab",
        ),
        (
            "[tests]\nmonthly_budget_bytes = 0\n",
            "tests.monthly_budget_bytes: Input should be greater than or equal to 1",
        ),
        ("[tests]\nthroughput_round_bytes = 1000\n", "tests.throughput_round_bytes: Input should be greater"),
        ("[tests]\nthroughput_urls = ['ftp://x.example/']\n", "tests.throughput_urls: "),
        ("[tests]\nthroughput_reference_url = 'not a url'\n", "tests.throughput_reference_url: "),
        ("[tests]\nwireguard = true\n", "tests.wireguard: unknown setting"),
    ],
)
def test_invalid_tests_settings_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert str(info.value).startswith(f"{path}: {message}")


def test_excluded_categories_leave_the_web_list() -> None:
    targets = [ListTarget("https://a.example/", "NEWS"), ListTarget("https://b.example/", "LGBT"),
               ListTarget("https://c.example/", "")]  # fmt: skip
    settings = Settings(tests=Selection(excluded_categories=("LGBT", "PORN")))
    assert [t.url for t in families.without_excluded(targets, settings)] == [
        "https://a.example/",
        "https://c.example/",
    ]


def test_the_budget_counts_a_month_and_starts_again_the_next(tmp_path: Path) -> None:
    now = [datetime(2024, 11, 30, 23, 0, tzinfo=UTC)]
    budget = families.DataBudget(tmp_path / "usage.json", 1000, now=lambda: now[0])
    assert (budget.used(), budget.remaining()) == (0, 1000)
    budget.add(600)
    budget.add(500)
    assert (budget.used(), budget.remaining()) == (1100, 0)
    assert json.loads((tmp_path / "usage.json").read_text()) == {"month": "2024-11", "bytes": 1100}
    now[0] = datetime(2024, 12, 1, 0, 5, tzinfo=UTC)
    assert (budget.used(), budget.remaining()) == (0, 1000)
    (tmp_path / "usage.json").write_text("not json")
    assert budget.used() == 0
    assert families.DataBudget(tmp_path / "usage.json", None).remaining() is None


@pytest.fixture(scope="module")
def site(ca: trustme.CA) -> Iterator[HTTPServer]:
    with http_server(ca.issue_cert("127.0.0.1")) as server:
        yield server


def _round(
    settings: Settings, tmp_path: Path, ca_file: Path, budget: families.DataBudget
) -> tuple[families.FamiliesReport, list[tuple[str, str, str | None]]]:
    config = MeasureConfig(
        ca_file=ca_file,
        allow_loopback=True,
        probe_asn="AS17557",
        probe_cc="PK",
        tcp_timeout=2.0,
        tls_timeout=2.0,
    )
    with open_store(f"sqlite:///{tmp_path / 'probe.db'}") as store:
        round_id = store.begin_round(probe_asn="AS17557", probe_cc="PK")
        report = asyncio.run(
            families.run_families(settings, config, store=store, round_id=round_id, budget=budget)
        )
        store.finish_round(round_id, [])
        with store.snapshot() as conn:
            rows = conn.execute(
                select(MeasurementRecord.test_name, Target.url, MeasurementRecord.mechanism)
                .join(Target, Target.id == MeasurementRecord.target_id)
                .where(MeasurementRecord.round_id == round_id)
                .order_by(MeasurementRecord.id)
            ).all()
    return report, [tuple(r) for r in rows]  # type: ignore[misc]  # rows of three columns


def test_a_round_runs_the_selected_families_into_the_same_round(
    ca: trustme.CA, ca_file: Path, site: HTTPServer, tmp_path: Path
) -> None:
    url = f"https://127.0.0.1:{site.port}/"
    (tmp_path / "endpoints.toml").write_text(f'[[http3]]\nrole = "site"\nurl = "{url}"\n')
    (tmp_path / "settings.toml").write_text("")
    with media_server(shaped=False) as port:
        media = f"http://127.0.0.1:{port}/media.bin"
        settings = Settings(
            tests=offline(
                vpn=True, throughput=True, throughput_urls=(media,), throughput_round_bytes=128 * 1024,
                endpoints=Path("endpoints.toml"),
            ),
            source=tmp_path / "settings.toml",
        )  # fmt: skip
        budget = families.DataBudget(tmp_path / "usage.json", 10**9)
        with QuicServer(pem_of(ca.issue_cert("127.0.0.1")), route=route, port=site.port):
            report, rows = _round(settings, tmp_path, ca_file, budget)
    assert report.ran == ("http3", "throughput")
    # Nothing ships for vpn (the operator lists endpoints) and this override has none.
    ((skipped, why),) = report.skipped
    assert skipped == "vpn" and "vpn" in why
    assert rows == [("http3", "http3:" + url, "ok"), ("throughput", "throughput:" + media, "control.none")]
    assert report.n_measurements == 2
    # http3 counts its estimate; throughput what it moved: its share of the round's bytes, and its head.
    assert (
        FAMILIES["http3"].bytes_estimate + 128 * 1024
        < report.bytes_used
        < FAMILIES["http3"].bytes_estimate + 130 * 1024
    )
    assert budget.used() == report.bytes_used


def test_a_spent_budget_stops_the_heavy_families_only(ca_file: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(
        tests=offline(http3=False, throughput=True, throughput_urls=(f"http://127.0.0.1:{port}/",))
    )
    budget = families.DataBudget(tmp_path / "usage.json", 100)
    budget.add(100)
    report, rows = _round(settings, tmp_path, ca_file, budget)
    assert (report.ran, report.skipped, rows) == (
        (),
        (("throughput", "the month's data budget is spent"),),
        [],
    )


def test_every_familys_entry_runs_from_an_override_on_loopback(ca_file: Path, tmp_path: Path) -> None:
    """The registry's entries call each family's module as it is (endpoints from the override,
    the round's context and timeouts): every listed endpoint is a closed loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    (tmp_path / "endpoints.toml").write_text(
        f'[[whatsapp]]\nrole = "endpoint"\nhost = "127.0.0.1"\nports = [{closed}]\n\n'
        f'[[whatsapp]]\nrole = "registration"\nurl = "https://127.0.0.1:{closed}/v2/register"\n\n'
        f'[[whatsapp]]\nrole = "web"\nurl = "https://127.0.0.1:{closed}/"\n\n'
        f'[[signal]]\nrole = "backend"\nurl = "https://127.0.0.1:{closed}/"\n\n'
        f'[[facebook_messenger]]\nrole = "service"\nname = "b_api"\nhost = "127.0.0.1"\n'
        f"ports = [{closed}]\n\n"
        f'[[telegram]]\nrole = "datacenter"\nhost = "127.0.0.1"\nports = [{closed}]\n\n'
        f'[[telegram]]\nrole = "web"\nurl = "https://127.0.0.1:{closed}/"\n\n'
        f'[[tor]]\nrole = "or_port_dirauth"\nname = "lab"\nhost = "127.0.0.1"\nports = [{closed}]\n\n'
        f'[[vpn]]\nrole = "openvpn"\nhost = "127.0.0.1"\nports = [{closed}]\n'
        'params = { transport = "tcp", provider = "lab" }\n\n'
        '[[sni_blocking]]\nrole = "target"\nhost = "blocked.example"\n\n'
        f'[[sni_blocking]]\nrole = "testhelper"\nhost = "127.0.0.1"\nports = [{closed}]\n'
        'server_name = "decoy.example"\n'
    )
    settings = Settings(
        tests=Selection.model_validate(
            {"tor": True, "vpn": True, "sni_blocking": True, "http3": False,
             "endpoints": str(tmp_path / "endpoints.toml")}
        )
    )  # fmt: skip
    report, rows = _round(settings, tmp_path, ca_file, families.DataBudget(tmp_path / "usage.json", None))
    assert (report.ran, report.skipped) == (
        ("whatsapp", "telegram", "signal", "facebook_messenger", "tor", "vpn", "sni_blocking"), (),
    )  # fmt: skip
    assert [(name, target) for name, target, _ in rows] == [
        ("whatsapp", "whatsapp"),
        ("telegram", "telegram"),
        ("signal", "signal"),
        ("facebook_messenger", "facebook_messenger"),
        ("tor", "tor"),
        ("openvpn", f"openvpn://lab.corp/?address=127.0.0.1:{closed}&transport=tcp"),
        ("sni_blocking", "blocked.example"),
    ]
    assert all(mechanism is not None for _, _, mechanism in rows)


def test_probe_run_measures_the_families_in_the_round_it_stores(
    ca: trustme.CA, ca_file: Path, site: HTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from probe.cli import main

    url = f"https://127.0.0.1:{site.port}/"
    (tmp_path / "targets.csv").write_text(
        f"url,category_code,category_description,date_added,source,notes\n{url},GRP,,,,\n"
        f"{url}adult,PORN,,,,\n"
    )
    (tmp_path / "endpoints.toml").write_text(f'[[http3]]\nrole = "site"\nurl = "{url}"\n')
    database = tmp_path / "m.sqlite3"
    (tmp_path / "settings.toml").write_text(
        f'[measure]\nresolvers = []\nallow_loopback = true\nca_file = "{ca_file}"\n'
        "tcp_timeout = 5\ntls_timeout = 5\nhttp_timeout = 5\n"
        "[tests]\nwhatsapp = false\ntelegram = false\nsignal = false\nfacebook_messenger = false\n"
        'http3 = true\nendpoints = "endpoints.toml"\nexcluded_categories = ["PORN"]\n'
        f'[targets]\nlists = ["targets.csv"]\n[storage]\ndatabase_url = "sqlite:///{database}"\n'
    )
    with QuicServer(pem_of(ca.issue_cert("127.0.0.1")), route=route, port=site.port):
        assert main(["run", "--once", "--config", str(tmp_path / "settings.toml"), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [r["url"] for r in document["results"]] == [url]  # the PORN row left out
    assert document["families"] == {"ran": ["http3"], "skipped": [], "n_measurements": 1,
                                    "bytes_used": FAMILIES["http3"].bytes_estimate}  # fmt: skip
    with open_store(f"sqlite:///{database}") as store, store.snapshot() as conn:
        rows = conn.execute(
            select(
                MeasurementRecord.round_id, MeasurementRecord.test_name, MeasurementRecord.mechanism
            ).order_by(MeasurementRecord.test_name)
        ).all()
    assert [tuple(r) for r in rows] == [
        (document["round_id"], "http3", "ok"), (document["round_id"], "web_connectivity", "ok"),
    ]  # fmt: skip
