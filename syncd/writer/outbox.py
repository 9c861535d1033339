"""The outbox: planned follow-ups stored once, then delivered exactly once.

States: pending → sending → sent, or failed (with the error). A row is marked
`sending` and committed *before* the writer posts, so a crash after posting
leaves it `sending`; the next drain asks the writer to find the follow-up's
marker at the target before it would ever post again. A `sending` row is only
taken over after a lease, so two replicas never deliver the same row at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import or_, select, update

from syncd.ledger.models import Base, OutboxItem
from syncd.ledger.repository import Ledger
from syncd.writer.base import ChannelWriter, Delivery, UnconfirmableDelivery, WriteError
from syncd.writer.plan import PlannedFollowup

OUTBOX = Base.metadata.tables["outbox"]
LEASE = timedelta(minutes=5)
log = structlog.get_logger("syncd.outbox")

WriterFor = Callable[[Delivery], ChannelWriter]


def enqueue(ledger: Ledger, planned: list[PlannedFollowup], now: datetime) -> int:
    """Store what is not stored yet; a plan seen before (same key) is a no-op."""
    if not planned:
        return 0
    insert = ledger._insert(OUTBOX)  # the dialect's INSERT … ON CONFLICT
    rows = [
        {
            "idempotency_key": p.delivery.idempotency_key,
            "rule_id": p.rule_id,
            "task_id": p.task_id,
            "violation_id": p.violation_id,
            "channel": p.delivery.channel,
            "target": {**p.delivery.target, "mention": p.delivery.mention},
            "recipient": p.delivery.recipient,
            "body": p.delivery.body,
            # Digest items wait for the recipient's daily digest instead of going out alone.
            "state": "digest" if p.digest else "pending",
            "attempts": 0,
            "not_before": p.not_before,
            "created_at": now,
            "updated_at": now,
        }
        for p in planned
    ]
    with ledger.sessions.begin() as session:
        result = session.connection().execute(
            insert.on_conflict_do_nothing(index_elements=["idempotency_key"]).returning(
                OUTBOX.c.id
            ),
            rows,
        )
        return len(result.all())


@dataclass
class DrainResult:
    sent: int = 0
    failed: int = 0
    unconfirmed: int = 0
    already_delivered: int = 0
    errors: list[str] = field(default_factory=list)


def drain(ledger: Ledger, writer_for: WriterFor, now: datetime, *, limit: int = 500) -> DrainResult:
    """Deliver what is due, one row at a time; one failure never blocks the others."""
    result = DrainResult()
    for row_id in _due(ledger, now, limit):
        claimed = _claim(ledger, row_id, now)
        if claimed is None:
            continue  # another replica has it
        delivery, attempted_before = claimed
        _deliver(ledger, row_id, delivery, attempted_before, writer_for, now, result)
    return result


def next_held_until(ledger: Ledger, now: datetime) -> datetime | None:
    """The earliest moment a follow-up held for working hours becomes deliverable."""
    query = (
        select(OutboxItem.not_before)
        .where(OutboxItem.state == "pending", OutboxItem.not_before > now)
        .order_by(OutboxItem.not_before)
        .limit(1)
    )
    with ledger.sessions() as session:
        moment: datetime | None = session.scalar(query)
    return moment


def _due(ledger: Ledger, now: datetime, limit: int) -> list[int]:
    query = (
        select(OutboxItem.id)
        .where(
            or_(
                OutboxItem.state == "pending",
                (OutboxItem.state == "sending") & (OutboxItem.updated_at < now - LEASE),
            ),
            or_(OutboxItem.not_before.is_(None), OutboxItem.not_before <= now),
        )
        .order_by(OutboxItem.id)
        .limit(limit)
    )
    with ledger.sessions() as session:
        return list(session.scalars(query))


def _claim(ledger: Ledger, row_id: int, now: datetime) -> tuple[Delivery, bool] | None:
    """Mark the row `sending` and commit, before anything is posted."""
    with ledger.sessions.begin() as session:
        row = session.scalars(
            select(OutboxItem).where(OutboxItem.id == row_id).with_for_update(skip_locked=True)
        ).first()
        if row is None or not (
            row.state == "pending" or (row.state == "sending" and row.updated_at < now - LEASE)
        ):
            return None
        attempted_before = row.attempts > 0 or row.state == "sending"
        row.state, row.attempts, row.updated_at = "sending", row.attempts + 1, now
        target = dict(row.target)
        mention = target.pop("mention", None)
        delivery = Delivery(
            idempotency_key=row.idempotency_key,
            channel=row.channel,
            target=target,
            recipient=row.recipient,
            mention=mention,
            body=row.body,
        )
    return delivery, attempted_before


def _deliver(
    ledger: Ledger,
    row_id: int,
    delivery: Delivery,
    attempted_before: bool,
    writer_for: WriterFor,
    now: datetime,
    result: DrainResult,
) -> None:
    try:
        writer = writer_for(delivery)
        if attempted_before:
            earlier = writer.find(delivery)
            if earlier is not None:
                _finish(ledger, row_id, now, state="sent", remote_id=earlier)
                result.already_delivered += 1
                return
        remote_id = writer.post(delivery)
    except UnconfirmableDelivery as error:
        # Cannot tell whether the first attempt went out: report, never send twice.
        _finish(ledger, row_id, now, state="unconfirmed", error=str(error))
        result.unconfirmed += 1
        return
    except WriteError as error:
        _finish(
            ledger, row_id, now, state="failed" if error.permanent else "pending", error=str(error)
        )
        result.failed += 1
        result.errors.append(f"{delivery.idempotency_key}: {error}")
        log.warning("follow-up failed", key=delivery.idempotency_key, error=str(error))
        return
    _finish(ledger, row_id, now, state="sent", remote_id=remote_id)
    result.sent += 1
    log.info("follow-up sent", key=delivery.idempotency_key, channel=delivery.channel)


def _finish(ledger: Ledger, row_id: int, now: datetime, **values: Any) -> None:
    if values.get("state") == "sent":
        values["sent_at"] = now
    with ledger.sessions.begin() as session:
        session.execute(
            update(OutboxItem).where(OutboxItem.id == row_id).values(updated_at=now, **values)
        )
