"""Opening the ledger for the service: migrations run once, under a lock, on PostgreSQL.

Several replicas may start together; the first to take the advisory lock
migrates while the others wait on it, then find the schema current.
"""

from __future__ import annotations

from sqlalchemy import text

from syncd.ledger.db import create_ledger_engine, ensure_current, require_writable, upgrade
from syncd.ledger.repository import Ledger

# Advisory lock keys are one bigint namespace per database; these are syncd's.
MIGRATION_LOCK = 0x5E_0C_D0_01


def open_ledger(url: str) -> Ledger:
    engine = create_ledger_engine(url)
    if engine.dialect.name != "postgresql":
        ensure_current(engine)  # SQLite: one process, upgrades itself
        require_writable(engine)
        return Ledger(engine)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        try:
            upgrade(engine)
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
    return Ledger(engine)
