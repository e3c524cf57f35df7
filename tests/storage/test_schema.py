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
from sqlalchemy import create_engine, insert, inspect
from sqlalchemy.exc import IntegrityError

from measurements import migrations
from measurements.schema import Base, MeasurementRecord, normalize_asn
from measurements.store import Store, open_store

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
    row = dict(uuid="u", round_id=999, target_id=999, input="https://x.com/", measured_at=datetime.now(UTC),
               runtime_s=1.0, probe_asn="AS0", probe_cc="ZZ", body="{}")  # fmt: skip
    with store._engine.connect() as conn, pytest.raises(IntegrityError):  # the store's own connection
        conn.execute(insert(MeasurementRecord), row)


def test_normalize_asn() -> None:
    assert [normalize_asn(a) for a in ("AS17557", "as17557", "17557", 17557, " AS017557 ")] == ["AS17557"] * 5
