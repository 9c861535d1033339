"""Which sources this process may poll now: all of them alone, one replica each on PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Protocol

from sqlalchemy import Connection, Engine, text

from syncd.ledger.repository import Ledger


class SourceLocks(Protocol):
    def acquire(self, names: list[str]) -> list[str]:
        """The subset of `names` this process now holds; the rest are busy elsewhere."""

    def release(self, names: list[str]) -> None: ...

    def exclusive(self, name: str) -> AbstractContextManager[None]:
        """Wait for `name` and hold it for the block (for short, shared steps)."""


class NoLocks:
    """A single process (SQLite): every source is ours."""

    def acquire(self, names: list[str]) -> list[str]:
        return list(names)

    def release(self, names: list[str]) -> None:
        return None

    def exclusive(self, name: str) -> AbstractContextManager[None]:
        return nullcontext()


class AdvisoryLocks:
    """PostgreSQL session advisory locks, one per source, on a connection of their own.

    The lock lives as long as the holding connection: a replica that is killed
    loses its connection and with it the lock, so another replica takes the
    source over on its next attempt, with no lease to wait out.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None

    def _conn(self) -> Connection:
        if self._connection is None or self._connection.closed:
            self._connection = self._engine.connect().execution_options(
                isolation_level="AUTOCOMMIT"
            )
        return self._connection

    def acquire(self, names: list[str]) -> list[str]:
        held = []
        for name in names:
            query = text("SELECT pg_try_advisory_lock(:key)")
            if self._conn().scalar(query, {"key": lock_key(name)}):
                held.append(name)
        return held

    def release(self, names: list[str]) -> None:
        for name in names:
            self._conn().execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key(name)})

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        key = {"key": lock_key(name)}
        self._conn().execute(text("SELECT pg_advisory_lock(:key)"), key)
        try:
            yield
        finally:
            self._conn().execute(text("SELECT pg_advisory_unlock(:key)"), key)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


def lock_key(name: str) -> int:
    """A stable signed 64-bit key per name (advisory locks take a bigint)."""
    digest = hashlib.blake2b(f"syncd:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def source_locks(ledger: Ledger) -> SourceLocks:
    if ledger.engine.dialect.name == "postgresql":
        return AdvisoryLocks(ledger.engine)
    return NoLocks()
