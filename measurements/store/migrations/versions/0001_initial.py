"""The initial schema: rounds, networks, targets, measurements.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Frozen: uses plain SQLAlchemy types, never ``measurements.store.tables`` (which will move on).
Times are naive UTC ``DateTime`` columns (``measurements.store.tables.UTCDateTime`` adds the zone
on the Python side only).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "networks",
        sa.Column("asn", sa.String(length=16), nullable=False),
        sa.Column("cc", sa.String(length=2), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("asn", "cc", name=op.f("pk_networks")),
    )
    op.create_table(
        "rounds",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("probe_asn", sa.String(length=16), nullable=False),
        sa.Column("probe_cc", sa.String(length=2), nullable=False),
        sa.Column("software_version", sa.Text(), nullable=False),
        sa.Column("config_digest", sa.Text(), nullable=False),
        sa.Column("n_targets", sa.Integer(), nullable=False),
        sa.Column("n_measurements", sa.Integer(), nullable=False),
        sa.Column("n_failed", sa.Integer(), nullable=False),
        sa.Column("n_errors", sa.Integer(), nullable=False),
        sa.Column("network_up", sa.Boolean(), nullable=True),
        sa.Column("control_reachable", sa.Boolean(), nullable=True),
        sa.CheckConstraint("status IN ('running', 'complete', 'interrupted')", name=op.f("ck_rounds_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rounds")),
    )
    op.create_index(op.f("ix_rounds_started_at"), "rounds", ["started_at"])
    op.create_index(op.f("ix_rounds_status"), "rounds", ["status"])
    op.create_table(
        "targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("category_code", sa.Text(), nullable=False),
        sa.Column("category_description", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_targets")),
        sa.UniqueConstraint("url", name=op.f("uq_targets_url")),
    )
    op.create_table(
        "measurements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("round_id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("measured_at", sa.DateTime(), nullable=False),
        sa.Column("runtime_s", sa.Float(), nullable=False),
        sa.Column("probe_asn", sa.String(length=16), nullable=False),
        sa.Column("probe_cc", sa.String(length=2), nullable=False),
        sa.Column("blocking", sa.String(length=16), nullable=True),
        sa.Column("accessible", sa.Boolean(), nullable=True),
        sa.Column("mechanism", sa.Text(), nullable=True),
        sa.Column("confirmed", sa.Text(), nullable=True),
        sa.Column("dns_consistency", sa.String(length=16), nullable=True),
        sa.Column("dns_failure", sa.Text(), nullable=True),
        sa.Column("tcp_failure", sa.Text(), nullable=True),
        sa.Column("tls_failure", sa.Text(), nullable=True),
        sa.Column("http_failure", sa.Text(), nullable=True),
        sa.Column("control_failure", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["round_id"], ["rounds.id"], name=op.f("fk_measurements_round_id_rounds"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["target_id"], ["targets.id"], name=op.f("fk_measurements_target_id_targets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measurements")),
        sa.UniqueConstraint("uuid", name=op.f("uq_measurements_uuid")),
    )
    for columns in (["target_id", "probe_asn", "measured_at"], ["probe_asn", "measured_at"]):
        op.create_index(op.f(f"ix_measurements_{'_'.join(columns)}"), "measurements", columns)
    op.create_index(op.f("ix_measurements_measured_at"), "measurements", ["measured_at"])
    op.create_index(op.f("ix_measurements_mechanism"), "measurements", ["mechanism"])
    op.create_index(op.f("ix_measurements_round_id"), "measurements", ["round_id"])


def downgrade() -> None:
    op.drop_table("measurements")
    op.drop_table("targets")
    op.drop_table("rounds")
    op.drop_table("networks")
