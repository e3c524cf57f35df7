"""Rounds record the installation that began them, so crash clean-up touches only its own.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

Frozen: plain SQLAlchemy types, never ``measurements.store.tables``.

``rounds.installation`` is nullable: rounds begun before this revision have no owner. The
rounds still ``running`` at the upgrade are marked ``interrupted`` here, once, because no
installation will ever own them (crash clean-up skips rounds without an installation). One
of them that some older reachprobe is in fact still measuring is not lost:
``finish_round`` completes an interrupted round all the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rounds") as batch:  # SQLite: a plain ADD COLUMN, no table copy
        batch.add_column(sa.Column("installation", sa.String(length=36), nullable=True))
    rounds = sa.table("rounds", sa.column("status", sa.String(16)))
    op.execute(rounds.update().where(rounds.c.status == "running").values(status="interrupted"))


def downgrade() -> None:
    with op.batch_alter_table("rounds") as batch:
        batch.drop_column("installation")
