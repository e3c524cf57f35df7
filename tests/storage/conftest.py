"""Storage fixtures: ``store`` (an open store on each backend), ``sqlite_url`` and ``opener``.

``store_url`` (a fresh database: a SQLite file, or a new database in the run's throw-away
PostgreSQL cluster) and ``pg_cluster`` come from tests/postgres.py, registered for every test
by tests/conftest.py. Every test gets a private platform data directory (``probe_data_dir`` in
tests/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from measurements.store.store import Store, open_store


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file URL, for the tests about the file itself (crashes, permissions, corruption)."""
    return f"sqlite:///{tmp_path / 'measurements.sqlite3'}"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open store on each backend."""
    with open_store(store_url) as s:
        yield s


@pytest.fixture
def opener() -> Iterator[Callable[[str], Store]]:
    """``open_store`` that closes what it opened at the end of the test."""
    opened: list[Store] = []

    def _open(url: str) -> Store:
        opened.append(open_store(url))
        return opened[-1]

    yield _open
    for s in opened:
        s.close()
