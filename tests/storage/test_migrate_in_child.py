"""A database is migrated in a child process, so that a daemon never holds Alembic (issue 12)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from measurements.store import migrations
from measurements.store.engine import create_engine_for, upgrade_in_child


def _revision(url: str) -> str | None:
    engine, _ = create_engine_for(url)
    try:
        with engine.connect() as conn:
            return migrations.current_revision(conn)
    finally:
        engine.dispose()


def test_a_new_database_is_migrated_by_a_child_and_then_left_alone(store_url: str) -> None:
    engine, _ = create_engine_for(store_url)
    try:
        assert upgrade_in_child(engine) is True
        assert upgrade_in_child(engine) is False  # at the newest revision: one SELECT, no child
    finally:
        engine.dispose()
    assert _revision(store_url) == migrations.HEAD


def test_the_migrating_process_never_imports_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    script = (
        "import sys\n"
        "from measurements.store.engine import create_engine_for, upgrade_in_child\n"
        f"engine, _ = create_engine_for({url!r})\n"
        "print(upgrade_in_child(engine), 'alembic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]
    assert _revision(url) == migrations.HEAD


def test_what_a_child_cannot_do_is_left_to_the_caller(tmp_path: Path) -> None:
    memory, _ = create_engine_for("sqlite://")
    assert upgrade_in_child(memory) is False  # a child cannot see an in-memory database
    url = f"sqlite:///{tmp_path / 'future.sqlite3'}"
    engine, _ = create_engine_for(url)
    try:
        with engine.begin() as conn:  # a revision a newer reachprobe wrote
            conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
            conn.execute(text("INSERT INTO alembic_version VALUES ('9999')"))
        assert upgrade_in_child(engine) is False  # the child failed: the caller's upgrade raises
    finally:
        engine.dispose()
    assert _revision(url) == "9999"
