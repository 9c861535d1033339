"""The webhook inbox: a verified delivery is committed to the ledger before it is answered 2xx.

Nothing a sender saw accepted lives only in memory. The HTTP handler hands the
delivery to `GroupCommit`, whose writer thread takes every delivery waiting at
that moment and inserts them in one transaction (a group commit: under load one
commit carries many deliveries, so throughput does not hang on one commit per
request), then resolves each handler's future; the handler awaits it without
blocking the event loop. The insert is `INSERT … ON CONFLICT (source,
delivery_id) DO NOTHING`: a redelivery, also one that reaches another replica
sharing the PostgreSQL ledger, is stored once and answered 2xx again. A
delivery that cannot be stored (the ledger is down, read-only or full, or too
many deliveries wait for the writer) is refused with `InboxUnavailable`, which
the app answers 503 so that the sender retries.

Durability: PostgreSQL commits with `synchronous_commit` on (its default). SQLite
runs in WAL mode with `synchronous=NORMAL` (set in `syncd.ledger.db`): a commit
has been written to the WAL file (the operating system's cache) before it
returns, so it survives the process being killed at any moment, SIGKILL
included. Only a power loss or kernel crash can roll back the last commits;
`synchronous=FULL` would guard against that too, at the price of an fsync per
commit, so we keep NORMAL and point those who need it at PostgreSQL.

The deliveries are then processed from the table by `syncd.service.ingest`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from syncd.clock import Clock
from syncd.ledger.models import WebhookDelivery
from syncd.ledger.repository import Ledger
from syncd.logs import get_logger

MAX_WAITING = 5_000  # deliveries waiting for the writer; past this they are refused (503)
MAX_GROUP = 500  # deliveries per group commit
RETENTION = timedelta(days=7)  # processed deliveries are kept this long (redelivery dedupe)
# A delivery not stored within this long is answered 503 (GitHub gives up after 10 s).
STORE_TIMEOUT = 5.0

STORED, DUPLICATE = "stored", "duplicate"

log = get_logger("syncd.service.inbox")


class InboxUnavailable(Exception):
    """The delivery could not be stored: the sender must retry (HTTP 503)."""


@dataclass(frozen=True)
class Incoming:
    """A verified delivery, as the inbox stores it."""

    source: str
    delivery_id: str
    event: str
    body: bytes


def store(ledger: Ledger, deliveries: Sequence[Incoming], now: datetime) -> set[tuple[str, str]]:
    """Insert the deliveries in one transaction; returns the (source, id) pairs that were new.

    Pairs already stored (a redelivery, or a duplicate inside this group) are left as they are.
    """
    unique = {(d.source, d.delivery_id): d for d in deliveries}
    if not unique:
        return set()
    rows = [
        {"source": d.source, "delivery_id": d.delivery_id, "event": d.event, "body": d.body,
         "received_at": now, "state": "pending", "attempts": 0}
        for d in unique.values()
    ]  # fmt: skip
    insert = postgresql.insert if ledger.engine.dialect.name == "postgresql" else sqlite.insert
    # One statement, executed for many rows (compiled once, cached): SQLAlchemy batches
    # the rows into multi-row INSERTs and returns the rows that were really inserted.
    statement = (
        insert(WebhookDelivery)
        .on_conflict_do_nothing(index_elements=["source", "delivery_id"])
        .returning(WebhookDelivery.source, WebhookDelivery.delivery_id)
    )
    with ledger.engine.begin() as connection:
        return {(row.source, row.delivery_id) for row in connection.execute(statement, rows)}


def is_stored(ledger: Ledger, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (source, delivery id) pairs the inbox holds (any state)."""
    query = select(WebhookDelivery.source, WebhookDelivery.delivery_id).where(
        tuple_(WebhookDelivery.source, WebhookDelivery.delivery_id).in_(list(pairs))
    )
    with ledger.engine.connect() as connection:
        return {(row.source, row.delivery_id) for row in connection.execute(query)}


def pending_count(ledger: Ledger) -> int:
    query = select(func.count()).where(WebhookDelivery.state == "pending")
    with ledger.engine.connect() as connection:
        return int(connection.scalar(query) or 0)


def prune(ledger: Ledger, now: datetime, retention: timedelta = RETENTION) -> int:
    """Forget processed deliveries older than `retention`; pending ones are never pruned."""
    statement = delete(WebhookDelivery).where(
        and_(WebhookDelivery.state != "pending", WebhookDelivery.processed_at < now - retention)
    )
    with ledger.engine.begin() as connection:
        return int(getattr(connection.execute(statement), "rowcount", 0) or 0)


@dataclass
class _Waiting:
    incoming: Incoming
    future: Future[str]


class GroupCommit:
    """A writer thread that stores waiting deliveries, one transaction per group.

    `submit` may be called from any thread; the returned future resolves to
    `"stored"` or `"duplicate"` once the delivery is committed, or fails with
    `InboxUnavailable`. A future cancelled before its group is written (the
    handler gave up waiting) is not written at all.
    """

    def __init__(
        self,
        ledger: Ledger,
        clock: Clock,
        *,
        on_stored: Callable[[], None],
        max_waiting: int = MAX_WAITING,
        max_group: int = MAX_GROUP,
    ) -> None:
        self.ledger, self.clock, self._on_stored = ledger, clock, on_stored
        self._max_waiting, self._max_group = max_waiting, max_group
        self._waiting: list[_Waiting] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, incoming: Incoming) -> Future[str]:
        future: Future[str] = Future()
        with self._cond:
            if self._closed:
                future.set_exception(InboxUnavailable("the service is shutting down"))
            elif len(self._waiting) >= self._max_waiting:
                future.set_exception(
                    InboxUnavailable(f"{self._max_waiting} deliveries are waiting to be stored")
                )
            else:
                self._waiting.append(_Waiting(incoming, future))
                self._ensure_thread()
                self._cond.notify()
        return future

    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def close(self, timeout: float = 3.0) -> None:
        """Store what is waiting, then refuse further deliveries."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _ensure_thread(self) -> None:
        # Started on first use, so a Service that never receives a webhook costs no thread.
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="syncd-webhook-inbox", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
                if not self._waiting:
                    return
                group = self._waiting[: self._max_group]
                del self._waiting[: self._max_group]
            self._commit(group)

    def _commit(self, group: list[_Waiting]) -> None:
        group = [w for w in group if w.future.set_running_or_notify_cancel()]
        if not group:
            return
        try:
            new = store(self.ledger, [w.incoming for w in group], self.clock.now())
        except Exception as error:  # the ledger is down, read-only or full; or a bug
            log.error("webhook deliveries could not be stored; answering 503",
                      deliveries=len(group), error=_first_line(error))  # fmt: skip
            for waiting in group:
                waiting.future.set_exception(InboxUnavailable("the ledger cannot store it now"))
            return
        self._on_stored()
        for waiting in group:
            key = (waiting.incoming.source, waiting.incoming.delivery_id)
            waiting.future.set_result(STORED if key in new else DUPLICATE)
            new.discard(key)  # a second copy inside the same group is a duplicate


async def stored_within(stored: Future[str], timeout: float = STORE_TIMEOUT) -> str:
    """Await a `GroupCommit.submit` future from an event loop: "stored" or "duplicate".

    Raises `InboxUnavailable` when it could not be stored, or not within `timeout`.
    """
    try:
        return await asyncio.wait_for(asyncio.wrap_future(stored), timeout)
    except TimeoutError:
        raise InboxUnavailable(f"not stored within {timeout:g} s") from None


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


__all__ = [
    "DUPLICATE",
    "RETENTION",
    "STORED",
    "STORE_TIMEOUT",
    "GroupCommit",
    "InboxUnavailable",
    "Incoming",
    "is_stored",
    "pending_count",
    "prune",
    "store",
    "stored_within",
]
