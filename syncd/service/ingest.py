"""Webhook deliveries ingested straight into the ledger, in batches, by one worker thread.

The HTTP handler verifies a delivery and queues it; nothing slow happens on the
event loop. The worker takes whatever has queued up (one delivery when traffic
is light, up to `MAX_BATCH` under load: a group commit), maps each payload with
its connector's pure `webhook_items`, and ingests each source's share through
the same `Ledger.ingest_page` the polls use, in one transaction:

* no cursor moves, so the next poll still re-reads (and reconciles) these items;
* `newer_only`: a late or out-of-order delivery never replaces a newer state;
* a payload that fails to map is quarantined with the reason (the sender got
  its 2xx already: redelivering a malformed payload would not help).

The rules engine then re-evaluates the changed tasks on its incremental path.
A delivery whose payload cannot tell the whole story asks for a (coalesced)
poll instead. When the queue is full the delivery is not queued but turned
into such a poll, so a flood costs bounded memory and loses nothing.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from syncd.clock import Clock
from syncd.config import Settings
from syncd.connector import WebhookMapper
from syncd.connectors.payload import MappingError
from syncd.ledger.repository import IngestResult, Ledger
from syncd.logs import get_logger
from syncd.model import Activity, QuarantinedItem, Task
from syncd.people import PeopleDirectory
from syncd.plugins import connector_class
from syncd.sync import people_directory

MAX_QUEUE = 5_000  # deliveries waiting; past this they become polls
MAX_BATCH = 500  # deliveries per group commit
STREAM = "webhook"  # the quarantine's stream for deliveries that fail to map

log = get_logger("syncd.service.ingest")


@dataclass(frozen=True)
class Delivery:
    source: str
    event: str
    body: bytes
    received: float = field(default_factory=time.monotonic)


@dataclass
class BatchResult:
    """One group commit: per-source ledger outcome and the sources that want a poll."""

    sources: dict[str, IngestResult] = field(default_factory=dict)
    polls: set[str] = field(default_factory=set)
    changed_task_ids: list[int] = field(default_factory=list)


def webhook_mapper(kind: str) -> WebhookMapper | None:
    """The connector's `webhook_items`, when its webhooks carry whole items."""
    mapper: WebhookMapper | None = getattr(connector_class(kind), "webhook_items", None)
    return mapper


class WebhookIngest:
    """The queue and its worker. `process` is the whole job, callable without the thread."""

    def __init__(
        self,
        ledger: Ledger,
        clock: Clock,
        settings: Callable[[], Settings],
        *,
        on_poll: Callable[[str], None],
        on_ingested: Callable[[BatchResult], None],
        max_queue: int = MAX_QUEUE,
    ) -> None:
        self.ledger, self.clock, self._settings = ledger, clock, settings
        self._on_poll, self._on_ingested = on_poll, on_ingested
        self._queue: queue.Queue[Delivery] = queue.Queue(maxsize=max_queue)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._people: tuple[Settings, PeopleDirectory] | None = None

    # --- the HTTP side (any thread) -------------------------------------------------------

    def accepts(self, source: str) -> bool:
        """True when `source`'s deliveries can be ingested directly."""
        settings = self._settings().sources.get(source)
        return settings is not None and webhook_mapper(settings.kind) is not None

    def submit(self, delivery: Delivery) -> bool:
        """Queue a delivery; False when the queue is full (the caller polls instead)."""
        try:
            self._queue.put_nowait(delivery)
        except queue.Full:
            return False
        return True

    def pending(self) -> int:
        return self._queue.qsize()

    # --- the worker -------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="syncd-webhook-ingest", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> None:
        """Finish the batch in hand; what is still queued is re-read by the next poll."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            batch = self._take(timeout=0.25)
            if batch:
                self.process(batch)

    def _take(self, timeout: float) -> list[Delivery]:
        try:
            batch = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def drain(self) -> BatchResult:
        """Process everything queued now, on the calling thread (tests, shutdown)."""
        total = BatchResult()
        while batch := self._take(timeout=0):
            result = self.process(batch)
            total.polls |= result.polls
            total.changed_task_ids += result.changed_task_ids
            for name, counts in result.sources.items():
                total.sources.setdefault(name, IngestResult()).add(counts)
        return total

    def process(self, batch: list[Delivery]) -> BatchResult:
        """Map, ingest (one transaction per source) and report one batch of deliveries."""
        result = BatchResult()
        settings = self._settings()
        by_source: dict[str, list[Delivery]] = {}
        for delivery in batch:
            by_source.setdefault(delivery.source, []).append(delivery)
        for source, deliveries in by_source.items():
            try:
                counts, poll = self._ingest_source(settings, source, deliveries)
            except Exception:  # the ledger is down, a bug: the next poll reconciles
                log.exception("webhook ingest failed; polling instead", source=source)
                result.polls.add(source)
                continue
            result.sources[source] = counts
            result.changed_task_ids += counts.changed_task_ids
            if poll:
                result.polls.add(source)
        for source in result.polls:
            self._on_poll(source)
        if result.changed_task_ids or result.sources:
            self._on_ingested(result)
        return result

    def _ingest_source(
        self, settings: Settings, source: str, deliveries: list[Delivery]
    ) -> tuple[IngestResult, bool]:
        source_settings = settings.sources.get(source)
        mapper = webhook_mapper(source_settings.kind) if source_settings else None
        if source_settings is None or mapper is None:  # removed by a reload meanwhile
            return IngestResult(), source_settings is not None
        people = self._people_of(settings)
        now = self.clock.now()
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
        counts = self.ledger.ingest_page(
            source,
            list(_newest_each(tasks)),
            now=now,
            stream=STREAM,
            quarantined=quarantined,
            activity=activity,
            newer_only=True,
        )
        if counts.new or counts.updated:
            self.ledger.resolve_links()
        log.info("webhooks ingested", source=source, deliveries=len(deliveries), new=counts.new,
                 updated=counts.updated, unchanged=counts.unchanged, stale=counts.stale,
                 quarantined=counts.quarantined,
                 waited_ms=round((time.monotonic() - deliveries[0].received) * 1000, 1))  # fmt: skip
        return counts, poll

    def _people_of(self, settings: Settings) -> PeopleDirectory:
        # Built once per (re)loaded configuration.
        if self._people is None or self._people[0] is not settings:
            self._people = (settings, people_directory(settings))
        return self._people[1]


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
