"""Patterns tests reuse the storage fixtures: ``store_url`` runs on SQLite and PostgreSQL."""

from __future__ import annotations

from tests.storage.conftest import pg_cluster, store_url

__all__ = ["pg_cluster", "store_url"]
