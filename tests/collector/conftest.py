"""Collector fixtures: a real collector on loopback over SQLite and over PostgreSQL.

``store_url`` and ``pg_cluster`` are every test's (tests/postgres.py: the run's one throw-away
PostgreSQL cluster, skipped with the reason when PostgreSQL is not installed, required under
``CI=true``).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.collector.harness import Served, collector_at


@pytest.fixture
def served(store_url: str) -> Iterator[Served]:
    """A collector with the default settings over a fresh database of each backend."""
    with collector_at(store_url) as s:
        yield s


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30) as c:
        yield c
