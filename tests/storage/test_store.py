"""Writing rounds and reading them back, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from measurements.store.rows import TargetInfo
from measurements.store.store import Store, open_store
from measurements.store.summary import Heartbeat
from probe.errors import StorageError
from tests.storage.factories import BASE, make_measurement, make_round, uid


def test_round_is_running_then_complete_with_its_measurements(store: Store) -> None:
    started = BASE - timedelta(seconds=5)
    rid = store.begin_round(
        started_at=started, probe_asn="AS17557", probe_cc="PK", software_version="0.1.0",
        config_digest="abc123", n_targets=7,
    )  # fmt: skip
    (running,) = store.last_rounds(1)
    assert (running.id, running.status, running.ended_at) == (rid, "running", None)
    assert running.started_at == started

    ended = BASE + timedelta(minutes=1)
    store.finish_round(rid, make_round(7), ended_at=ended)

    (done,) = store.last_rounds(1)
    assert (done.status, done.ended_at, done.n_targets, done.n_measurements) == ("complete", ended, 7, 7)
    assert (done.probe_asn, done.probe_cc, done.software_version, done.config_digest) == (
        "AS17557", "PK", "0.1.0", "abc123",
    )  # fmt: skip
    # blocked: dns, tcp, sni, blockpage; failed: down (site down). ok and nocontrol are not failures.
    assert done.n_failed == 5
    assert (done.network_up, done.control_reachable, done.n_errors) == (True, True, 0)
    assert [r.measurement_uid for r in store.iter_measurements()] == [uid(i) for i in range(7)]


def test_summary_columns(store: Store) -> None:
    kinds = ("ok", "dns", "tcp", "sni", "blockpage", "down", "nocontrol")
    ms = [make_measurement(i, kind=k, url=f"https://{k}.example/") for i, k in enumerate(kinds)]
    store.finish_round(store.begin_round(), ms)
    rows = {r.input.split("/")[2].split(".")[0]: r for r in store.iter_measurements()}
    got = {
        k: (r.blocking, r.accessible, r.mechanism, r.confirmed, r.dns_consistency,
            r.dns_failure, r.tcp_failure, r.tls_failure, r.http_failure, r.control_failure)
        for k, r in rows.items()
    }  # fmt: skip
    nu, ct, cr, gt = "network_unreachable", "connection_refused", "connection_reset", "generic_timeout_error"
    assert got == {
        "ok": ("false", True, "ok", None, "consistent", None, nu, None, None, None),
        "dns": ("dns", False, "dns.nxdomain", None, "inconsistent", "dns_nxdomain_error", None, None,
                "dns_nxdomain_error", None),
        "tcp": ("tcp_ip", False, "tcp.timeout", None, "consistent", None, nu, None, gt, None),
        "sni": ("http-failure", False, "tls.reset.sni", None, "consistent", None, nu, cr, cr, None),
        "blockpage": ("http-diff", False, "http.blockpage", "pk_pta_blockpage", "consistent", None, nu, None,
                      None, None),
        "down": ("false", False, "down", None, "consistent", None, nu, None, ct, None),
        "nocontrol": (None, None, "control.unreachable", None, None, None, nu, None, None, gt),
    }  # fmt: skip
    # The outcome people read, written with the round (its network was up: a TCP connect worked).
    assert {k: r.outcome for k, r in rows.items()} == {
        "ok": "reachable", "dns": "blocked.anomaly", "tcp": "blocked.anomaly", "sni": "blocked.anomaly",
        "blockpage": "blocked.confirmed", "down": "down", "nocontrol": "no_verdict.control",
    }  # fmt: skip
    r = rows["ok"]
    assert (r.measured_at, r.runtime_s, r.probe_asn, r.probe_cc) == (BASE, 1.25, "AS17557", "PK")
    assert r.measured_at.tzinfo is UTC


def test_the_outcome_follows_the_rounds_heartbeat(store: Store) -> None:
    """A round in which nothing connected reads "network shut down", whatever OONI's keys say."""
    dark = [make_measurement(i, kind="nocontrol", url=f"https://s{i}.example/") for i in range(2)]
    shut = Heartbeat(network_up=False, control_reachable=False)
    store.finish_round(store.begin_round(), dark, heartbeat=shut)
    blockpage = make_measurement(5, kind="blockpage", url="https://s5.example/")
    store.finish_round(store.begin_round(), [blockpage], heartbeat=shut)  # proof the network carried it
    store.finish_round(
        store.begin_round(), [make_measurement(9, kind="nocontrol", url="https://s9.example/")]
    )
    assert [(r.input, r.outcome) for r in store.iter_measurements()] == [
        ("https://s0.example/", "shutdown"),
        ("https://s1.example/", "shutdown"),
        ("https://s5.example/", "blocked.confirmed"),
        ("https://s9.example/", "no_verdict.control"),
    ]


def test_a_round_written_in_batches_counts_them_and_its_heartbeat_fixes_the_outcomes(store: Store) -> None:
    """Issue 12: batches go in as the round runs (outcomes as if the network was up); a round
    whose network turned out down has them turned into "network shut down" at the end."""
    kinds = ("ok", "dns", "tcp", "blockpage", "down", "nocontrol")
    ms = [make_measurement(i, kind=k, url=f"https://{k}.example/") for i, k in enumerate(kinds)]
    shut = Heartbeat(network_up=False, control_reachable=True, n_errors=1)
    rid = store.begin_round(n_targets=7)
    store.add_measurements(rid, ms[:2], targets=[TargetInfo("https://ok.example/", "GRP")])
    store.add_measurements(rid, ms[2:4])
    (running,) = store.last_rounds(1)
    assert (running.status, running.n_measurements, running.n_failed) == ("running", 4, 3)
    assert {r.input: r.outcome for r in store.iter_measurements()} == {
        "https://ok.example/": "reachable", "https://dns.example/": "blocked.anomaly",
        "https://tcp.example/": "blocked.anomaly", "https://blockpage.example/": "blocked.confirmed",
    }  # fmt: skip
    store.finish_round(rid, ms[4:], heartbeat=shut)
    (done,) = store.last_rounds(1)
    assert (done.status, done.n_measurements, done.n_failed, done.n_errors) == ("complete", 6, 4, 1)
    assert (done.network_up, done.control_reachable) == (False, True)
    assert {r.input: (r.outcome, r.category_code) for r in store.iter_measurements()} == {
        "https://ok.example/": ("shutdown", "GRP"), "https://dns.example/": ("shutdown", ""),
        "https://tcp.example/": ("shutdown", ""), "https://blockpage.example/": ("blocked.confirmed", ""),
        "https://down.example/": ("shutdown", ""), "https://nocontrol.example/": ("shutdown", ""),
    }  # fmt: skip
    with pytest.raises(StorageError, match=rf"cannot write round {rid}: the round is already complete$"):
        store.add_measurements(rid, [make_measurement(9, url="https://late.example/")])


def test_a_batch_is_stored_whole_or_not_at_all_and_an_interrupted_round_keeps_its_batches(
    store: Store,
) -> None:
    rid = store.begin_round(n_targets=4)
    store.add_measurements(rid, [make_measurement(0, url="https://a.example/")])
    duplicate = [make_measurement(1, url="https://b.example/"), make_measurement(0, url="https://c.example/")]
    with pytest.raises(StorageError):
        store.add_measurements(rid, duplicate)
    assert store.mark_interrupted(rid) == 1
    (gone,) = store.last_rounds(1)
    assert (gone.status, gone.n_measurements) == ("interrupted", 1)
    assert [r.measurement_uid for r in store.iter_measurements()] == [uid(0)]
    with pytest.raises(StorageError, match=r"cannot write round 999: no such round$"):
        store.add_measurements(999, [make_measurement(5)])


def test_heartbeat_of_a_shutdown_and_an_explicit_one(store: Store) -> None:
    dark = [make_measurement(i, kind="dns", url=f"https://s{i}.example/") for i in range(3)]
    store.finish_round(store.begin_round(n_targets=4), dark)
    explicit = Heartbeat(network_up=False, control_reachable=None, n_errors=1)
    store.finish_round(store.begin_round(n_targets=1), [], heartbeat=explicit)
    store.finish_round(store.begin_round(), [])
    empty, manual, shutdown = store.last_rounds(3)
    assert (shutdown.network_up, shutdown.control_reachable, shutdown.n_failed) == (False, True, 3)
    assert (manual.network_up, manual.control_reachable, manual.n_errors) == (False, None, 1)
    assert (empty.network_up, empty.control_reachable, empty.n_measurements) == (None, None, 0)


def test_a_block_page_answering_is_no_sign_of_a_network_up(store: Store) -> None:
    """Mobile data shut down, the ISP's own blockpage server still answering: network down."""
    dark = [make_measurement(i, kind="tcp", url=f"https://s{i}.example/") for i in range(2)]
    page = make_measurement(2, kind="blockpage", url="https://s2.example/")
    store.finish_round(store.begin_round(n_targets=3), [*dark, page])
    (shutdown,) = store.last_rounds(1)
    assert shutdown.network_up is False
    assert [(r.input, r.outcome) for r in store.iter_measurements()] == [
        ("https://s0.example/", "shutdown"),
        ("https://s1.example/", "shutdown"),
        ("https://s2.example/", "blocked.confirmed"),
    ]


def test_targets_get_categories_and_keep_one_row_per_url(store: Store) -> None:
    url = "https://twitter.com/"
    store.finish_round(store.begin_round(), [make_measurement(0, url=url)], targets=[TargetInfo(url, "GRP")])
    store.finish_round(store.begin_round(), [make_measurement(1, url=url, at=BASE + timedelta(hours=1))])
    rows = list(store.iter_measurements(target=url))
    assert [(r.measurement_uid, r.category_code) for r in rows] == [(uid(0), "GRP"), (uid(1), "GRP")]
    comm = TargetInfo(url, "COMM", "Communication")
    store.finish_round(store.begin_round(), [make_measurement(2, url=url)], targets=[comm])
    assert {r.category_code for r in store.iter_measurements(target=url)} == {"COMM"}
    noted = TargetInfo(url, "COMM", "Communication", "2024-02-17", "citizenlab", "blocked since 17 Feb")
    store.finish_round(store.begin_round(), [make_measurement(3, url=url)], targets=[noted])
    assert {(r.date_added, r.source, r.notes) for r in store.iter_measurements(target=url)} == {
        ("2024-02-17", "citizenlab", "blocked since 17 Feb")
    }


def test_finish_round_refuses_unknown_and_completed_rounds(store: Store) -> None:
    with pytest.raises(StorageError, match=r"cannot write round 999: no such round$"):
        store.finish_round(999, [make_measurement()])
    rid = store.begin_round()
    store.finish_round(rid, [make_measurement(0)])
    with pytest.raises(StorageError, match=rf"cannot write round {rid}: the round is already complete$"):
        store.finish_round(rid, [make_measurement(1)])
    assert [r.measurement_uid for r in store.iter_measurements()] == [uid(0)]


def test_a_failed_round_writes_nothing_and_can_be_retried(store: Store) -> None:
    store.finish_round(store.begin_round(), [make_measurement(0)])
    rid = store.begin_round()
    duplicate = [make_measurement(1, url="https://a.example/"), make_measurement(0, url="https://b.example/")]
    with pytest.raises(StorageError) as err:
        store.finish_round(rid, duplicate)
    assert store.name in str(err.value) and "\n" not in str(err.value)
    assert [r.measurement_uid for r in store.iter_measurements()] == [uid(0)]
    assert store.last_rounds(1)[0].status == "running"
    store.finish_round(rid, duplicate[:1])
    assert [r.measurement_uid for r in store.iter_measurements()] == [uid(0), uid(1)]


def test_mark_interrupted(store: Store) -> None:
    a, b = store.begin_round(), store.begin_round()
    done = store.begin_round()
    store.finish_round(done, [])
    assert store.mark_interrupted(b) == 1
    assert store.mark_interrupted() == 1
    assert store.mark_interrupted() == 0
    statuses = {r.id: r.status for r in store.last_rounds(10)}
    assert statuses == {a: "interrupted", b: "interrupted", done: "complete"}
    # A round marked interrupted by another process's start-up still completes: its data is real.
    store.finish_round(a, [make_measurement(0)])
    assert {r.id: r.status for r in store.last_rounds(10)}[a] == "complete"


def test_filters(store: Store) -> None:
    hour = timedelta(hours=1)
    sites = [("https://x.com/", "AS17557"), ("https://youtube.com/", "AS45595")]
    for h in range(4):
        ms = [
            make_measurement(10 * h + j, url=u, at=BASE + h * hour, asn=a) for j, (u, a) in enumerate(sites)
        ]
        store.finish_round(store.begin_round(), ms)

    def ids(**filters: object) -> list[str]:
        return [r.measurement_uid for r in store.iter_measurements(**filters)]  # type: ignore[arg-type]

    assert ids() == [uid(i) for i in (0, 1, 10, 11, 20, 21, 30, 31)]
    assert ids(since=BASE + hour) == [uid(i) for i in (10, 11, 20, 21, 30, 31)]
    assert ids(until=BASE + hour) == [uid(i) for i in (0, 1)]
    assert ids(since=BASE + hour, until=BASE + 2 * hour) == [uid(i) for i in (10, 11)]
    naive = (BASE + 3 * hour).replace(tzinfo=None)  # naive means UTC
    assert ids(since=naive) == [uid(i) for i in (30, 31)]
    pkt = (BASE + 3 * hour).astimezone(timezone(timedelta(hours=5)))  # 18:00 in Pakistan is 13:00 UTC
    assert ids(since=pkt) == [uid(i) for i in (30, 31)]
    assert ids(target="https://x.com/") == [uid(i) for i in (0, 10, 20, 30)]
    assert ids(target="https://nowhere.example/") == []
    assert ids(asn="AS45595") == ids(asn="45595") == ids(asn=45595) == [uid(i) for i in (1, 11, 21, 31)]
    assert ids(asn="as45595", target="https://x.com/") == []
    with pytest.raises(ValueError, match="not an ASN"):
        ids(asn="Pakistan")


def test_failing_targets_uses_the_latest_measurement_per_network(store: Store) -> None:
    def put(i: int, url: str, kind: str, hours: int, asn: str = "AS17557") -> None:
        m = make_measurement(i, url=url, kind=kind, at=BASE + timedelta(hours=hours), asn=asn)
        store.finish_round(store.begin_round(), [m])

    put(0, "https://x.com/", "ok", 0)
    put(1, "https://x.com/", "sni", 1)  # blocked now
    put(2, "https://youtube.com/", "dns", 0)
    put(3, "https://youtube.com/", "ok", 1)  # unblocked since
    put(4, "https://youtube.com/", "tcp", 1, asn="AS45595")  # ... but not on the other network
    put(5, "https://nocontrol.example/", "nocontrol", 1)  # undecided, yet it loaded: not failing
    put(6, "https://down.example/", "down", 1)
    failing = store.failing_targets()
    # The failure is OONI's experiment failure, not the unreachable IPv6 sibling's.
    assert [(f.url, f.probe_asn, f.blocking, f.mechanism, f.failure) for f in failing] == [
        ("https://down.example/", "AS17557", "false", "down", "connection_refused"),
        ("https://x.com/", "AS17557", "http-failure", "tls.reset.sni", "connection_reset"),
        ("https://youtube.com/", "AS45595", "tcp_ip", "tcp.timeout", "generic_timeout_error"),
    ]
    assert failing[1].measured_at == BASE + timedelta(hours=1)
    assert [f.url for f in store.failing_targets(since=BASE + timedelta(hours=2))] == []


def test_prune(store: Store) -> None:
    old = store.begin_round(started_at=BASE)
    store.finish_round(old, make_round(3, at=BASE))
    mixed = store.begin_round(started_at=BASE + timedelta(days=1))
    day = timedelta(days=1)
    ms = make_round(2, first=10, at=BASE + day) + make_round(2, first=20, at=BASE + 3 * day)
    store.finish_round(mixed, ms)
    running = store.begin_round(started_at=BASE)  # a round in flight is never pruned
    assert store.prune(BASE + timedelta(days=2)) == 5
    assert [r.measurement_uid for r in store.iter_measurements()] == [uid(20), uid(21)]
    assert {r.id for r in store.last_rounds(10)} == {mixed, running}
    assert store.prune(BASE + timedelta(days=2)) == 0


def test_prune_many_in_chunks(store: Store) -> None:
    rid = store.begin_round(started_at=BASE)
    store.finish_round(rid, make_round(1234, at=BASE, step=timedelta(0)))
    assert store.prune(BASE + timedelta(seconds=1)) == 1234
    assert list(store.iter_measurements()) == [] and store.last_rounds() == []


def test_a_prune_told_to_stop_ends_between_two_transactions(store: Store) -> None:
    rid = store.begin_round(started_at=BASE)
    store.finish_round(rid, make_round(1234, at=BASE, step=timedelta(0)))
    asked: list[int] = []

    def stop() -> bool:
        asked.append(1)
        return True  # a shutdown came during the first transaction

    assert store.prune(BASE + timedelta(seconds=1), stop=stop) == 500  # one transaction's worth
    assert (len(asked), len(list(store.iter_measurements()))) == (1, 734)
    assert [r.id for r in store.last_rounds()] == [rid]  # not left without measurements: kept
    assert store.prune(BASE + timedelta(seconds=1)) == 734  # the next prune takes the rest


def test_probe_ip_is_never_stored(store: Store) -> None:
    leaky = make_measurement(0, probe_ip="203.0.113.7")
    store.finish_round(store.begin_round(), [leaky])
    (row,) = store.iter_measurements(with_body=True)
    assert row.body is not None and "203.0.113.7" not in row.body
    assert '"probe_ip": "127.0.0.1"' in row.body


def test_size_bytes_grows(store: Store) -> None:
    before = store.size_bytes()
    assert before is not None and before > 0
    store.finish_round(store.begin_round(), make_round(300))
    after = store.size_bytes()
    assert after is not None and after > before


def test_reopen_is_at_head_and_keeps_data(store_url: str) -> None:
    with open_store(store_url) as s:
        s.finish_round(s.begin_round(), [make_measurement(0)])
    with open_store(store_url) as s:
        assert [r.measurement_uid for r in s.iter_measurements()] == [uid(0)]


def test_aware_datetimes_everywhere(store: Store) -> None:
    rid = store.begin_round(started_at=datetime(2024, 1, 20, 15, 0, tzinfo=UTC).astimezone())
    (r,) = store.last_rounds(1)
    assert r.id == rid and r.started_at == datetime(2024, 1, 20, 15, 0, tzinfo=UTC)
    assert r.started_at.tzinfo is UTC


def test_default_location_is_the_platform_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))  # platformdirs' Linux convention
    expected = tmp_path / "share" / "reachprobe" / "measurements.sqlite3"
    with open_store() as store:
        assert store.name == str(expected)
        store.finish_round(store.begin_round(), [make_measurement()])
    assert expected.is_file()


def test_only_the_network_independent_outcomes_survive_a_network_found_down() -> None:
    """What ``finish_round`` relies on to fix a round's outcomes in one UPDATE: an outcome written
    with the network unknown becomes ``shutdown`` once it is known down, unless it is one of
    ``NETWORK_INDEPENDENT`` — over every combination of the columns the outcome reads."""
    import itertools

    from measurements.store.summary import NETWORK_INDEPENDENT, outcome_column
    from probe.control import CONTROL_NOT_CONFIGURED

    for blocking, accessible, mechanism, confirmed, control_failure in itertools.product(
        (None, "false", "dns", "tcp_ip", "http-failure", "http-diff"),
        (None, True, False),
        (None, "ok", "down", "dns.nxdomain", "http.blockpage", "server.block", "tls.mitm"),
        (None, "pk_pta_blockpage"),
        (None, CONTROL_NOT_CONFIGURED, "http_request_failed"),
    ):
        row = {"blocking": blocking, "accessible": accessible, "mechanism": mechanism,
               "confirmed": confirmed, "control_failure": control_failure}  # fmt: skip
        unknown = outcome_column(row, network_up=None).value
        assert outcome_column(row, network_up=True).value == unknown
        down = outcome_column(row, network_up=False).value
        assert down == (unknown if unknown in NETWORK_INDEPENDENT else "shutdown"), row
