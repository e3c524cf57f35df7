"""The schema as migrated: it matches the models, has the indexes, and no place for an IP address."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, column, create_engine, insert, inspect, select, table
from sqlalchemy.exc import IntegrityError

from measurements.store import migrations
from measurements.store.queries import normalize_asn
from measurements.store.store import Store, open_store
from measurements.store.tables import Base, MeasurementRecord, Round

IP_LIKE = re.compile(r"(^|_)(ip|ips|ipv4|ipv6|addr|address|client|host)($|_)")


def test_head_constant_is_the_newest_revision() -> None:
    assert ScriptDirectory.from_config(migrations.config()).get_current_head() == migrations.HEAD


def test_migrations_match_the_models(store: Store, store_url: str) -> None:
    engine = create_engine(store_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diff == []


def test_no_column_can_hold_the_volunteers_address(store: Store, store_url: str) -> None:
    engine = create_engine(store_url)
    columns = {
        f"{table}.{column['name']}"
        for table in inspect(engine).get_table_names()
        for column in inspect(engine).get_columns(table)
    }
    engine.dispose()
    assert "measurements.body" in columns and "rounds.network_up" in columns
    assert [c for c in columns if IP_LIKE.search(c.split(".")[1])] == []


def test_time_series_indexes(store: Store, store_url: str) -> None:
    engine = create_engine(store_url)
    indexes = {tuple(ix["column_names"]) for ix in inspect(engine).get_indexes("measurements")}
    engine.dispose()
    wanted = {
        ("target_id", "probe_asn", "measured_at"),
        ("probe_asn", "measured_at"),
        ("measured_at",),
        ("mechanism",),
        ("outcome",),
    }
    assert wanted <= indexes


def test_downgrade_to_nothing_and_up_again(store: Store, store_url: str) -> None:
    store.close()
    cfg = migrations.config(store_url)
    command.downgrade(cfg, "base")
    engine = create_engine(store_url)
    assert inspect(engine).get_table_names() == ["alembic_version"]
    engine.dispose()
    with open_store(store_url) as again:
        assert again.last_rounds() == []


def _insert(conn: Connection, table_name: str, **values: object) -> None:
    """A row into a table as revision 0002 had it (plain columns: no model of today involved)."""
    conn.execute(table(table_name, *(column(name) for name in values)).insert().values(values))


def test_upgrade_from_0002_keeps_the_rounds_and_marks_the_running_ones(store_url: str) -> None:
    command.upgrade(migrations.config(store_url), "0002")
    at = datetime(2024, 1, 20, 10, 0)
    engine = create_engine(store_url)
    with engine.begin() as conn:  # a fresh database: the ids are 1, 2, 3
        for status in ("complete", "interrupted", "running"):
            _insert(conn, "rounds", started_at=at, status=status, probe_asn="AS17557", probe_cc="PK",
                    software_version="0.1.0", config_digest="", n_targets=1, n_measurements=1,
                    n_failed=0, n_errors=0)  # fmt: skip
        _insert(conn, "targets", url="https://x.com/", category_code="GRP", category_description="",
                first_seen_at=at)  # fmt: skip
        _insert(conn, "measurements", uuid="m-1", round_id=1, target_id=1, input="https://x.com/",
                measured_at=at, runtime_s=1.0, probe_asn="AS17557", probe_cc="PK", body="{}")  # fmt: skip
    engine.dispose()

    with open_store(store_url) as store:  # migrates to the head
        rid = store.begin_round()
        with store._engine.connect() as conn:
            assert migrations.current_revision(conn) == migrations.HEAD
            owners = {rid: owner for rid, owner in conn.execute(select(Round.id, Round.installation))}
        assert owners == {1: None, 2: None, 3: None, rid: store.installation.id}
        store.finish_round(rid, [])
        # Running at the upgrade: no installation will ever own it, so the upgrade marked it.
        got = {r.id: r.status for r in store.last_rounds()}
        assert got == {1: "complete", 2: "interrupted", 3: "interrupted", rid: "complete"}
        assert [(m.measurement_uid, m.round_id, m.category_code) for m in store.iter_measurements()] == [
            ("m-1", 1, "GRP")
        ]


# Verdict columns as revision 0003 stored them → the outcome revision 0004 backfills, with the
# round's heartbeat (network_up) beside them.
BACKFILL: list[tuple[dict[str, object], bool | None, str]] = [
    ({"blocking": "false", "accessible": True, "mechanism": "ok"}, True, "reachable"),
    ({"blocking": "false", "accessible": True, "mechanism": "ok"}, None, "reachable"),
    ({"blocking": "false", "accessible": False, "mechanism": "down"}, True, "down"),
    ({"blocking": "false", "accessible": True, "mechanism": "http.blockpage", "confirmed": "pk_surf_safely"},
     True, "blocked.confirmed"),
    ({"blocking": "dns", "accessible": False, "mechanism": "dns.nxdomain"}, True, "blocked.anomaly"),
    ({"blocking": "false", "accessible": True, "mechanism": "control.unreachable",
      "control_failure": "generic_timeout_error"}, False, "shutdown"),
    ({"blocking": "false", "accessible": True, "mechanism": "control.unreachable",
      "control_failure": "generic_timeout_error"}, True, "no_verdict.control"),
    ({"mechanism": "server.block"}, True, "server.refusal"),
    ({}, True, "no_verdict.not_measured"),
]  # fmt: skip


def test_upgrade_from_0003_renames_the_id_and_backfills_the_outcome(store_url: str) -> None:
    command.upgrade(migrations.config(store_url), "0003")
    at = datetime(2024, 1, 20, 10, 0)
    engine = create_engine(store_url)
    with engine.begin() as conn:
        _insert(conn, "targets", url="https://x.com/", category_code="GRP", category_description="Social",
                first_seen_at=at)  # fmt: skip
        for i, (columns, network_up, _) in enumerate(BACKFILL, start=1):
            _insert(conn, "rounds", started_at=at, status="complete", probe_asn="AS17557", probe_cc="PK",
                    software_version="0.1.0", config_digest="", n_targets=1, n_measurements=1,
                    n_failed=0, n_errors=0, network_up=network_up)  # fmt: skip
            _insert(conn, "measurements", uuid=f"00000000-0000-4000-8000-{i:012d}", round_id=i, target_id=1,
                    input="https://x.com/", measured_at=at, runtime_s=1.0, probe_asn="AS17557",
                    probe_cc="PK", body="{}", **columns)  # fmt: skip
    engine.dispose()

    with open_store(store_url) as store:
        rows = list(store.iter_measurements())
    assert [(r.measurement_uid, r.outcome) for r in rows] == [
        (f"00000000-0000-4000-8000-{i:012d}", outcome) for i, (_, _, outcome) in enumerate(BACKFILL, start=1)
    ]
    assert {(r.category_code, r.category_description, r.date_added, r.source, r.notes) for r in rows} == {
        ("GRP", "Social", "", "", "")
    }
    engine = create_engine(store_url)
    columns = {c["name"] for c in inspect(engine).get_columns("measurements")}
    indexes = {tuple(ix["column_names"]) for ix in inspect(engine).get_indexes("measurements")}
    engine.dispose()
    assert "uuid" not in columns and {"measurement_uid", "outcome"} <= columns
    assert ("outcome",) in indexes


def test_sqlite_settings(sqlite_url: str) -> None:
    # Per-connection pragmas are only visible on the store's own connections.
    with open_store(sqlite_url) as store, store._engine.connect() as conn:
        got = {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("busy_timeout", "foreign_keys")}
        got["synchronous"] = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        conn.rollback()
    assert got == {"busy_timeout": 10_000, "foreign_keys": 1, "synchronous": 1}  # 1 = NORMAL
    db = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


def test_foreign_keys_are_enforced(store: Store) -> None:
    row = dict(measurement_uid="u", round_id=999, target_id=999, input="https://x.com/",
               measured_at=datetime.now(UTC), runtime_s=1.0, probe_asn="AS0", probe_cc="ZZ", outcome="down",
               body="{}")  # fmt: skip
    with store._engine.connect() as conn, pytest.raises(IntegrityError):  # the store's own connection
        conn.execute(insert(MeasurementRecord), row)


def test_normalize_asn() -> None:
    assert [normalize_asn(a) for a in ("AS17557", "as17557", "17557", 17557, " AS017557 ")] == ["AS17557"] * 5
