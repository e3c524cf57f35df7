"""Measurements of every test, rounds that are collector reports, and the upload state.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

Frozen: plain SQLAlchemy types, never ``measurements.store.tables``.

* ``measurements.test_name`` (indexed): OONI's ``test_name`` — ``web_connectivity`` for every
  row stored before (the only test there was), and the messaging, circumvention and protocol
  tests' names since.
* ``rounds.report_id`` (unique when set): the OONI report a round is. A collector opens a round
  for each report a probe opens, and finds it again by this id; a probe's own rounds leave it
  ``NULL``.
* ``uploads``: one row per measurement the uploader has tried to send to a collector —
  ``uploaded`` (with the id the collector acknowledged) or ``failed`` (attempts, the last
  error, when to try again). A measurement without a row has not been tried yet: pending.

All three are plain ADD COLUMN / CREATE TABLE / CREATE INDEX: no table is copied.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("measurements") as batch:
        batch.add_column(
            sa.Column("test_name", sa.String(length=64), nullable=False, server_default="web_connectivity")
        )
    op.create_index("ix_measurements_test_name", "measurements", ["test_name"])
    with op.batch_alter_table("rounds") as batch:
        batch.add_column(sa.Column("report_id", sa.String(length=128), nullable=True))
    op.create_index("ix_rounds_report_id", "rounds", ["report_id"], unique=True)
    op.create_table(
        "uploads",
        sa.Column("measurement_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("report_id", sa.String(length=128), nullable=True),
        sa.Column("collector_uid", sa.String(length=64), nullable=True),
        sa.CheckConstraint("state IN ('uploaded', 'failed')", name="ck_uploads_state"),
        sa.ForeignKeyConstraint(
            ["measurement_id"],
            ["measurements.id"],
            name="fk_uploads_measurement_id_measurements",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("measurement_id", name="pk_uploads"),
    )
    op.create_index("ix_uploads_state_next_attempt_at", "uploads", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_uploads_state_next_attempt_at", "uploads")
    op.drop_table("uploads")
    op.drop_index("ix_rounds_report_id", "rounds")
    with op.batch_alter_table("rounds") as batch:
        batch.drop_column("report_id")
    op.drop_index("ix_measurements_test_name", "measurements")
    with op.batch_alter_table("measurements") as batch:
        batch.drop_column("test_name")
