"""One id name, the outcome for people as a column, and the test list's metadata.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Frozen: plain SQLAlchemy types, never ``measurements.store.tables``.

* ``measurements.uuid`` becomes ``measurement_uid`` (OONI's name, the one used in JSONL,
  CSV and ``--json``), wide enough for OONI's form
  (``YYYYMMDDhhmmss.ffffff_CC_webconnectivity_<16 hex>``); rows stored before keep their
  UUID4 as their ``measurement_uid``.
* ``measurements.outcome`` (indexed): what people read, backfilled here with
  :func:`probe.outcome.outcome_of` — the one derivation, which the store also runs when it
  writes a round — over each row's stored columns and its round's ``network_up``.
* ``targets.date_added``, ``source`` and ``notes``: the citizenlab columns not kept before
  (empty for the targets already stored, until a list names them again).

On SQLite the measurements table is copied once (dropping the old unique constraint needs
it), after the backfill, which therefore runs as plain UPDATEs; PostgreSQL alters in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VERDICT = ("blocking", "accessible", "mechanism", "confirmed", "control_failure")
_COMBOS_PER_UPDATE = 100
"""WHEN branches per UPDATE (6 bound values each: under SQLite's old 999-parameter limit)."""


def upgrade() -> None:
    with op.batch_alter_table("targets") as batch:  # plain ADD COLUMNs: no table copy
        for name in ("date_added", "source", "notes"):
            batch.add_column(sa.Column(name, sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("measurements") as batch:
        batch.add_column(sa.Column("outcome", sa.String(length=32), nullable=True))
    _backfill_outcomes()
    with op.batch_alter_table("measurements") as batch:  # SQLite: one copy of the table
        batch.drop_constraint("uq_measurements_uuid", type_="unique")
        batch.alter_column(
            "uuid",
            new_column_name="measurement_uid",
            existing_type=sa.String(length=36),
            type_=sa.String(length=64),
            existing_nullable=False,
        )
        batch.alter_column("outcome", existing_type=sa.String(length=32), nullable=False)
    # After the copy, as plain CREATE INDEXes (inside the copy, batch mode would look the
    # renamed column up by its old name). A unique index, not a constraint: SQLite can add
    # one without copying the table again.
    op.create_index("ix_measurements_measurement_uid", "measurements", ["measurement_uid"], unique=True)
    op.create_index("ix_measurements_outcome", "measurements", ["outcome"])


def _backfill_outcomes() -> None:
    """Set every row's outcome, one UPDATE per :data:`_COMBOS_PER_UPDATE` distinct verdicts.

    ``outcome_of`` is Python, so it runs once per distinct (verdict columns, network_up)
    combination — a few dozen in practice — and the database maps each row to its
    combination's outcome in one pass (a CASE of null-safe comparisons).
    """
    from probe.outcome import outcome_of

    m = sa.table(
        "measurements",
        sa.column("round_id", sa.Integer()),
        sa.column("outcome", sa.String(32)),
        sa.column("blocking", sa.String(16)),
        sa.column("accessible", sa.Boolean()),
        sa.column("mechanism", sa.Text()),
        sa.column("confirmed", sa.Text()),
        sa.column("control_failure", sa.Text()),
    )
    r = sa.table("rounds", sa.column("id", sa.Integer()), sa.column("network_up", sa.Boolean()))
    network_up = sa.select(r.c.network_up).where(r.c.id == m.c.round_id).scalar_subquery()
    conn = op.get_bind()
    combos = conn.execute(
        sa.select(*(m.c[name] for name in _VERDICT), network_up.label("network_up")).distinct()
    ).all()
    for start in range(0, len(combos), _COMBOS_PER_UPDATE):
        whens = []
        for combo in combos[start : start + _COMBOS_PER_UPDATE]:
            values = dict(zip((*_VERDICT, "network_up"), combo, strict=True))
            outcome = outcome_of(**values)
            match = sa.and_(
                *(m.c[name].is_not_distinct_from(values[name]) for name in _VERDICT),
                network_up.is_not_distinct_from(values["network_up"]),
            )
            whens.append((match, outcome.value))
        conn.execute(m.update().where(m.c.outcome.is_(None)).values(outcome=sa.case(*whens, else_=None)))


def downgrade() -> None:
    op.drop_index("ix_measurements_outcome", "measurements")
    op.drop_index("ix_measurements_measurement_uid", "measurements")
    with op.batch_alter_table("measurements") as batch:
        # Kept 64 wide: OONI-form ids stored since would not fit revision 0003's 36.
        batch.alter_column("measurement_uid", new_column_name="uuid", existing_type=sa.String(length=64))
        batch.drop_column("outcome")
    with op.batch_alter_table("measurements") as batch:
        batch.create_unique_constraint("uq_measurements_uuid", ["uuid"])
    with op.batch_alter_table("targets") as batch:
        for name in ("notes", "source", "date_added"):
            batch.drop_column(name)
