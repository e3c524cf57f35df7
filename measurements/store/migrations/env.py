"""Alembic environment: migrate the connection the store hands over, inside its transaction.

:func:`measurements.store.store.open_store` opens a connection, begins a write transaction (SQLite
``BEGIN IMMEDIATE``; on PostgreSQL an advisory lock), puts the connection in
``config.attributes["connection"]`` and calls ``alembic.command.upgrade``. Two processes
opening a fresh database at once therefore migrate it once, one after the other.
For development use (``alembic revision --autogenerate``) a ``url`` main option or
``-x url=...`` works too.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from measurements.store.tables import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite has no ALTER for most changes: batch mode copies tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    """Entry point Alembic runs when this file is loaded."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("url")
    if not url:
        raise SystemExit("measurements/migrations: give a database with -x url=...")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


main()
