"""Stored webhook deliveries processed into the ledger, in batches, by one worker thread.

Every verified delivery is first committed to the webhook inbox
(`syncd.service.inbox`); this worker reads the pending ones back, oldest first,
and processes a batch in one transaction that also marks them processed, so a
crash leaves each delivery either processed or still pending, never half-done.
On PostgreSQL the batch is claimed with `FOR UPDATE SKIP LOCKED`: replicas
sharing the ledger each take other deliveries, none is processed twice. At start
the service processes the stored backlog before its first poll (`backlog`).

Processing maps each payload with its connector's pure `webhook_items` and
ingests each source's share through `Ledger.ingest_page_in`, the polls' own path:

* no cursor moves, so the next poll still re-reads (and reconciles) these items;
* `newer_only`: a late or out-of-order delivery never replaces a newer state;
* a payload that fails to map is quarantined with the reason (the sender got
  its 2xx already: redelivering a malformed payload would not help).

The rules engine then re-evaluates the changed tasks on its incremental path.
A delivery whose payload cannot tell the whole story (or whose source has no
direct ingest, like Jira and Slack) asks for a coalesced poll instead. A batch
that fails is retried one delivery at a time; a delivery that keeps failing is
given up after `MAX_ATTEMPTS` (its source is polled, which reconciles it).
Processed deliveries are pruned after `inbox.RETENTION`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from syncd.clock import Clock
from syncd.config import Settings
from syncd.connector import WebhookMapper
from syncd.connectors.payload import MappingError
from syncd.ledger.models import WebhookDelivery
from syncd.ledger.repository import IngestResult, Ledger
from syncd.logs import get_logger
from syncd.model import Activity, QuarantinedItem, Task
from syncd.people import PeopleDirectory
from syncd.plugins import connector_class
from syncd.service import inbox
from syncd.sync import people_directory

MAX_BATCH = 200  # deliveries per processing transaction (bounds how long it holds the ledger)
MAX_ATTEMPTS = 10  # a delivery failing this often is given up (and its source polled)
IDLE_WAIT = 1.0  # seconds between looks when idle: another replica's deliveries, a lost wake
MAX_BACKOFF = 30.0  # seconds, after repeated failures (the ledger is down)
PRUNE_EVERY = timedelta(hours=1)
STREAM = "webhook"  # the quarantine's stream for deliveries that fail to map

log = get_logger("syncd.service.ingest")


@dataclass(frozen=True)
class Delivery:
    """A stored delivery, as the worker reads it back."""

    id: int
    source: str
    event: str
    body: bytes
    received_at: datetime
    attempts: int = 0


@dataclass
class BatchResult:
    """One processed batch: per-source ledger outcome and the sources that want a poll."""

    deliveries: int = 0
    sources: dict[str, IngestResult] = field(default_factory=dict)
    polls: set[str] = field(default_factory=set)
    changed_task_ids: list[int] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        self.deliveries += other.deliveries
        self.polls |= other.polls
        self.changed_task_ids += other.changed_task_ids
        for name, counts in other.sources.items():
            self.sources.setdefault(name, IngestResult()).add(counts)


def webhook_mapper(kind: str) -> WebhookMapper | None:
    """The connector's `webhook_items`, when its webhooks carry whole items."""
    mapper: WebhookMapper | None = getattr(connector_class(kind), "webhook_items", None)
    return mapper


class WebhookIngest:
    """The worker over the inbox. `step` is the whole job, callable without the thread."""

    def __init__(
        self,
        ledger: Ledger,
        clock: Clock,
        settings: Callable[[], Settings],
        *,
        on_poll: Callable[[str], None],
        on_ingested: Callable[[BatchResult], None],
    ) -> None:
        self.ledger, self.clock, self._settings = ledger, clock, settings
        self._on_poll, self._on_ingested = on_poll, on_ingested
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._people: tuple[Settings, PeopleDirectory] | None = None
        self._pruned_at: datetime | None = None

    def notify(self) -> None:
        """Deliveries were stored (any thread): look now rather than at the next idle tick."""
        self._wake.set()

    def pending(self) -> int:
        return inbox.pending_count(self.ledger)

    # --- the worker -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="syncd-webhook-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        """Finish the batch in hand; what is still pending stays stored for the next start."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self._prune_now_and_then()
                result = self.step()
            except Exception:  # the ledger is unreachable, a bug: back off, the rows wait
                failures += 1
                log.exception("webhook processing failed; retrying", failures=failures)
                self._stopping.wait(min(2.0 ** (failures - 1), MAX_BACKOFF))
                continue
            failures = 0
            if result is None:
                self._wake.wait(IDLE_WAIT)

    def backlog(self) -> BatchResult:
        """Process the deliveries stored before now (at start, before the first poll)."""
        query = select(func.max(WebhookDelivery.id)).where(WebhookDelivery.state == "pending")
        with self.ledger.sessions() as session:
            last: int | None = session.scalar(query)
        total = self.drain(upto=last) if last is not None else BatchResult()
        if total.deliveries:
            log.info("stored webhook backlog processed", deliveries=total.deliveries)
        return total

    def drain(self, upto: int | None = None) -> BatchResult:
        """Process every pending delivery (up to id `upto`) on the calling thread."""
        total = BatchResult()
        while (result := self.step(upto)) is not None:
            total.add(result)
        return total

    def step(self, upto: int | None = None) -> BatchResult | None:
        """Claim, process and mark one batch; None when nothing is pending."""
        settings = self._settings()
        now = self.clock.now()
        claimed: list[Delivery] = []
        try:
            with self.ledger.sessions.begin() as session:
                claimed = _claim(session, MAX_BATCH, upto)
                if not claimed:
                    return None
                result = self._process(session, settings, claimed, now)
        except Exception as error:
            if len(claimed) == 0:
                raise  # the claim itself failed: nothing to isolate
            log.warning("webhook batch failed; retrying its deliveries one by one",
                        deliveries=len(claimed), error=repr(error))  # fmt: skip
            result = self._one_by_one(settings, claimed, now)
        self._after_commit(result)
        return result

    def _one_by_one(self, settings: Settings, batch: list[Delivery], now: datetime) -> BatchResult:
        total = BatchResult()
        for delivery in batch:
            try:
                with self.ledger.sessions.begin() as session:
                    mine = _claim(session, 1, only=delivery.id)
                    if mine:
                        total.add(self._process(session, settings, mine, now))
            except Exception as error:
                total.deliveries += 1
                if self._record_failure(delivery, error, now):
                    total.polls.add(delivery.source)  # given up: the poll reconciles
        return total

    def _record_failure(self, delivery: Delivery, error: Exception, now: datetime) -> bool:
        """Count the attempt; True when the delivery is now given up."""
        attempts = delivery.attempts + 1
        given_up = attempts >= MAX_ATTEMPTS
        values: dict[str, Any] = {"attempts": attempts, "error": repr(error)[:2000]}
        if given_up:
            values.update(state="failed", processed_at=now)
        with self.ledger.sessions.begin() as session:
            session.execute(
                update(WebhookDelivery).where(WebhookDelivery.id == delivery.id).values(**values)
            )
        log.error("webhook delivery failed", source=delivery.source, delivery=delivery.id,
                  attempts=attempts, given_up=given_up, error=repr(error))  # fmt: skip
        return given_up

    def _after_commit(self, result: BatchResult) -> None:
        if any(counts.new or counts.updated for counts in result.sources.values()):
            self.ledger.resolve_links()
        for source in result.polls:
            self._on_poll(source)
        if result.changed_task_ids or result.sources:
            self._on_ingested(result)

    def _prune_now_and_then(self) -> None:
        now = self.clock.now()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        pruned = inbox.prune(self.ledger, now)
        if pruned:
            log.info("processed webhook deliveries pruned", deliveries=pruned)

    # --- one batch, inside the caller's transaction ------------------------------------------

    def _process(
        self, session: Session, settings: Settings, batch: list[Delivery], now: datetime
    ) -> BatchResult:
        result = BatchResult(deliveries=len(batch))
        by_source: dict[str, list[Delivery]] = {}
        for delivery in batch:
            by_source.setdefault(delivery.source, []).append(delivery)
        for source, deliveries in by_source.items():
            counts, poll = self._ingest_source(session, settings, source, deliveries, now)
            result.sources[source] = counts
            result.changed_task_ids += counts.changed_task_ids
            if poll:
                result.polls.add(source)
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_([d.id for d in batch]))
            .values(state="done", processed_at=now)
        )
        return result

    def _ingest_source(
        self,
        session: Session,
        settings: Settings,
        source: str,
        deliveries: list[Delivery],
        now: datetime,
    ) -> tuple[IngestResult, bool]:
        source_settings = settings.sources.get(source)
        mapper = webhook_mapper(source_settings.kind) if source_settings else None
        if source_settings is None or mapper is None:  # Jira, Slack; or removed by a reload
            return IngestResult(), source_settings is not None
        people = self._people_of(settings)
        tasks: list[Task] = []
        quarantined: list[QuarantinedItem] = []
        activity: list[Activity] = []
        poll = False
        for delivery in deliveries:
            try:
                items = mapper(
                    delivery.event,
                    _payload(delivery.body),
                    source=source,
                    settings=source_settings,
                    people=people,
                    now=now,
                )
            except MappingError as error:
                quarantined.append(_quarantined(delivery, str(error)))
                log.warning("webhook quarantined", source=source, webhook_event=delivery.event,
                            reason=str(error))  # fmt: skip
                poll = True  # the listing may carry what this payload could not
                continue
            tasks += items.tasks
            activity += items.activity
            poll = poll or items.poll
        if not (tasks or quarantined or activity):
            return IngestResult(), poll
        counts = self.ledger.ingest_page_in(
            session,
            source,
            list(_newest_each(tasks)),
            now=now,
            stream=STREAM,
            quarantined=quarantined,
            activity=activity,
            newer_only=True,
        )
        log.info("webhooks ingested", source=source, deliveries=len(deliveries), new=counts.new,
                 updated=counts.updated, unchanged=counts.unchanged, stale=counts.stale,
                 quarantined=counts.quarantined,
                 waited_ms=round((now - deliveries[0].received_at).total_seconds() * 1000, 1))  # fmt: skip
        return counts, poll

    def _people_of(self, settings: Settings) -> PeopleDirectory:
        # Built once per (re)loaded configuration.
        if self._people is None or self._people[0] is not settings:
            self._people = (settings, people_directory(settings))
        return self._people[1]


def _claim(
    session: Session, limit: int, upto: int | None = None, *, only: int | None = None
) -> list[Delivery]:
    """The oldest pending deliveries, locked for this transaction (others skip them)."""
    query = (
        select(
            WebhookDelivery.id,
            WebhookDelivery.source,
            WebhookDelivery.event,
            WebhookDelivery.body,
            WebhookDelivery.received_at,
            WebhookDelivery.attempts,
        )
        .where(WebhookDelivery.state == "pending")
        .order_by(WebhookDelivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)  # PostgreSQL; SQLite has a single writer anyway
    )
    if upto is not None:
        query = query.where(WebhookDelivery.id <= upto)
    if only is not None:
        query = query.where(WebhookDelivery.id == only)
    return [
        Delivery(row.id, row.source, row.event, bytes(row.body), row.received_at, row.attempts)
        for row in session.execute(query)
    ]


def _payload(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as error:
        raise MappingError(f"the body is not JSON: {error}") from None


def _quarantined(delivery: Delivery, reason: str) -> QuarantinedItem:
    return QuarantinedItem(
        reason=f"{delivery.event} webhook: {reason}",
        payload=delivery.body[:100_000].decode("utf-8", errors="replace"),
        external_ref=None,
    )


def _newest_each(tasks: list[Task]) -> Iterator[Task]:
    """One task per item: the one with the newest `updated_at` (ties: the later delivery)."""
    newest: dict[str, Task] = {}
    for task in tasks:
        kept = newest.get(task.external_id)
        if kept is None or _stamp(task) >= _stamp(kept):
            newest[task.external_id] = task
    return iter(newest.values())


def _stamp(task: Task) -> float:
    return task.updated_at.timestamp() if task.updated_at is not None else float("-inf")


__all__ = ["BatchResult", "Delivery", "WebhookIngest", "webhook_mapper"]
