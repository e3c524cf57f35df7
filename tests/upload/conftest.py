"""Upload fixtures: the storage tests' throw-away PostgreSQL cluster (for the collector's database)."""

from __future__ import annotations

from tests.storage.conftest import pg_cluster

__all__ = ["pg_cluster"]
