"""rule schedule and violation kind

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 05:05:57.062047
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
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "next_check_at", syncd.ledger.models.UTCDateTime(timezone=True), nullable=True
            )
        )
        batch_op.create_index("ix_tasks_next_check_at", ["next_check_at"], unique=False)

    with op.batch_alter_table("violations", schema=None) as batch_op:
        # Existing violations predate the column: an empty kind until re-evaluated.
        batch_op.add_column(
            sa.Column("kind", sa.String(length=50), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("violations", schema=None) as batch_op:
        batch_op.drop_column("kind")

    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_next_check_at")
        batch_op.drop_column("next_check_at")
