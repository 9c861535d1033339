"""Alembic environment: syncd passes its own engine in `config.attributes`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from syncd.ledger.models import Base

engine: Engine = context.config.attributes["engine"]

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
