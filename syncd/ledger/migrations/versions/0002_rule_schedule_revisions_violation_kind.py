"""rule schedule, revisions, violation kind

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 05:36:04.598065
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import syncd.ledger.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ledger_revision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_revision")),
    )
    op.execute("INSERT INTO ledger_revision (id, value) VALUES (1, 0)")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "next_check_at", syncd.ledger.models.UTCDateTime(timezone=True), nullable=True
            )
        )
        # Rows written before revisions existed count as revision 0.
        batch_op.add_column(
            sa.Column("revision", sa.BigInteger(), nullable=False, server_default="0")
        )
        batch_op.create_index("ix_tasks_next_check_at", ["next_check_at"], unique=False)
        batch_op.create_index("ix_tasks_revision", ["revision"], unique=False)

    with op.batch_alter_table("violations", schema=None) as batch_op:
        # Existing violations predate the column: an empty kind until re-evaluated.
        batch_op.add_column(
            sa.Column("kind", sa.String(length=50), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("violations", schema=None) as batch_op:
        batch_op.drop_column("kind")

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_revision")
        batch_op.drop_index("ix_tasks_next_check_at")
        batch_op.drop_column("revision")
        batch_op.drop_column("next_check_at")

    op.drop_table("ledger_revision")
