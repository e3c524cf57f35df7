"""Flags and events: what the patterns analysis found.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24

Frozen: plain SQLAlchemy types, never ``measurements.store.tables``. Both tables hold derived data
(rewritten whole by each detection run), so the downgrade simply drops them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("asns", sa.Text(), nullable=False),
        sa.Column("targets", sa.Text(), nullable=False),
        sa.Column("layers", sa.Text(), nullable=False),
        sa.Column("mechanisms", sa.Text(), nullable=False),
        sa.Column("n_flags", sa.Integer(), nullable=False),
        sa.CheckConstraint("kind IN ('blocking', 'multi_platform', 'shutdown')", name=op.f("ck_events_kind")),
        sa.CheckConstraint("scope IN ('network', 'national')", name=op.f("ck_events_scope")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index(op.f("ix_events_started_at"), "events", ["started_at"])
    op.create_table(
        "flags",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("probe_asn", sa.String(length=16), nullable=False),
        sa.Column("probe_cc", sa.String(length=2), nullable=False),
        sa.Column("layer", sa.String(length=8), nullable=False),
        sa.Column("mechanism", sa.Text(), nullable=True),
        sa.Column("confirmed", sa.Text(), nullable=True),
        sa.Column("first_evidence_at", sa.DateTime(), nullable=False),
        sa.Column("last_evidence_at", sa.DateTime(), nullable=False),
        sa.Column("detected_at", sa.DateTime(), nullable=False),
        sa.Column("n_measurements", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("kind IN ('blocking_onset', 'blocking_end')", name=op.f("ck_flags_kind")),
        sa.ForeignKeyConstraint(
            ["event_id"], ["events.id"], name=op.f("fk_flags_event_id_events"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flags")),
    )
    op.create_index(op.f("ix_flags_first_evidence_at"), "flags", ["first_evidence_at"])
    op.create_index(op.f("ix_flags_target_probe_asn"), "flags", ["target", "probe_asn"])


def downgrade() -> None:
    op.drop_table("flags")
    op.drop_table("events")
