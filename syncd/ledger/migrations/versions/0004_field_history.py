"""field history: due date, fix version / milestone, owners, estimate, logged time, priority

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 02:30:00.000000

Existing tasks are filled from their stored payloads (`syncd.ledger.backfill`), here,
in the same transaction as the table: an upgraded ledger has its history at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import syncd.ledger.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "field_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("field", sa.String(length=40), nullable=False),
        sa.Column("value", syncd.ledger.models.JSONValue(), nullable=True),
        sa.Column("changed_at", syncd.ledger.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", syncd.ledger.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("origin", sa.String(length=10), nullable=False),
        sa.Column("change_key", sa.String(length=200), nullable=False),
        sa.Column("changed_by", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_field_history_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_field_history")),
        sa.UniqueConstraint("task_id", "field", "change_key", name="uq_field_history_change"),
    )
    with op.batch_alter_table("field_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_field_history_task_id_field_changed_at",
            ["task_id", "field", "changed_at"],
            unique=False,
        )
    from syncd.ledger.backfill import backfill_field_history

    backfill_field_history(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table("field_history", schema=None) as batch_op:
        batch_op.drop_index("ix_field_history_task_id_field_changed_at")
    op.drop_table("field_history")
