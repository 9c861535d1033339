"""webhook inbox: deliveries stored before they are acknowledged

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 01:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import syncd.ledger.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_inbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("delivery_id", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=100), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", syncd.ledger.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("processed_at", syncd.ledger.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_inbox")),
        sa.UniqueConstraint(
            "source", "delivery_id", name="uq_webhook_inbox_source_delivery_id"
        ),
    )
    with op.batch_alter_table("webhook_inbox", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_inbox_state_id", ["state", "id"], unique=False)
        batch_op.create_index("ix_webhook_inbox_processed_at", ["processed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webhook_inbox", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_inbox_processed_at")
        batch_op.drop_index("ix_webhook_inbox_state_id")
    op.drop_table("webhook_inbox")
