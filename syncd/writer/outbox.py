"""The outbox: planned follow-ups stored once, then delivered exactly once.

States: pending → sending → sent, or failed (with the error). A row is marked
`sending` and committed *before* the writer posts, so a crash after posting
leaves it `sending`; the next drain asks the writer to find the follow-up's
marker at the target before it would ever post again. A `sending` row is only
taken over after a lease, so two replicas never deliver the same row at once.

The target remembers what the ledger may not. Before it posts, the drain asks
the writer for syncd's markers of the same series in the target thread (see
`syncd.writer.base`). One carrying this very key, or one the ledger has no row
for that was posted less than the rule's `every` ago, means the follow-up is
already there, sent before this ledger knew (an empty or restored ledger): the
row is recorded `sent` with the earlier post's remote id and the reason in
`error`, and nothing is posted. Markers the ledger does know are its own
earlier nudges, which the cooldown already accounts for.
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
from syncd.writer.base import ChannelWriter, Delivery, Marker, UnconfirmableDelivery, WriteError
from syncd.writer.plan import PlannedFollowup

OUTBOX = Base.metadata.tables["outbox"]
LEASE = timedelta(minutes=5)
log = structlog.get_logger("syncd.outbox")

WriterFor = Callable[[Delivery], ChannelWriter]


def enqueue(ledger: Ledger, planned: list[PlannedFollowup], now: datetime) -> int:
    """Store what is not stored yet; a plan seen before (same key) is a no-op."""
    planned = _not_stored_under_legacy_keys(ledger, planned)
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
            "target": {**p.delivery.target, **_delivery_extras(p.delivery)},
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


def _not_stored_under_legacy_keys(
    ledger: Ledger, planned: list[PlannedFollowup]
) -> list[PlannedFollowup]:
    """Drop what an older syncd stored under its own key format (upgrades post nothing twice)."""
    legacy = [p.legacy_key for p in planned if p.legacy_key]
    if not legacy:
        return planned
    stored: set[str] = set()
    with ledger.sessions() as session:
        for start in range(0, len(legacy), 500):
            chunk = legacy[start : start + 500]
            query = select(OutboxItem.idempotency_key).where(
                OutboxItem.idempotency_key.in_(chunk)
            )
            stored.update(session.scalars(query))
    return [p for p in planned if p.legacy_key not in stored]


KNOWN_BEFORE = "already sent before the ledger knew"


def _delivery_extras(delivery: Delivery) -> dict[str, Any]:
    """What the outbox keeps beside the target (no column of its own); `_claim` takes it back."""
    extras: dict[str, Any] = {"mention": delivery.mention}
    if delivery.repeat_after is not None:
        extras["repeat_after_s"] = delivery.repeat_after.total_seconds()
    return extras


@dataclass
class DrainResult:
    sent: int = 0
    failed: int = 0
    unconfirmed: int = 0
    already_delivered: int = 0  # found at the target instead of posted (counts the next too)
    known_to_target: int = 0  # of those, sent before the ledger knew of them
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Claim:
    delivery: Delivery
    attempted_before: bool
    # Keys and remote ids of the ledger's other follow-ups for this rule and task.
    known: frozenset[str]


def drain(ledger: Ledger, writer_for: WriterFor, now: datetime, *, limit: int = 500) -> DrainResult:
    """Deliver what is due, one row at a time; one failure never blocks the others."""
    result = DrainResult()
    for row_id in _due(ledger, now, limit):
        claimed = _claim(ledger, row_id, now)
        if claimed is None:
            continue  # another replica has it
        _deliver(ledger, row_id, claimed, writer_for, now, result)
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


def _claim(ledger: Ledger, row_id: int, now: datetime) -> _Claim | None:
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
        repeat_after = target.pop("repeat_after_s", None)
        delivery = Delivery(
            idempotency_key=row.idempotency_key,
            channel=row.channel,
            target=target,
            recipient=row.recipient,
            mention=mention,
            body=row.body,
            repeat_after=timedelta(seconds=repeat_after) if repeat_after is not None else None,
        )
        known: frozenset[str] = frozenset()
        if delivery.repeat_after is not None and row.task_id is not None:
            siblings = select(OutboxItem.idempotency_key, OutboxItem.remote_id).where(
                OutboxItem.rule_id == row.rule_id,
                OutboxItem.task_id == row.task_id,
                OutboxItem.id != row.id,
            )
            known = frozenset(
                value for pair in session.execute(siblings) for value in pair if value
            )
    return _Claim(delivery, attempted_before, known)


def _deliver(
    ledger: Ledger,
    row_id: int,
    claim: _Claim,
    writer_for: WriterFor,
    now: datetime,
    result: DrainResult,
) -> None:
    delivery = claim.delivery
    try:
        writer = writer_for(delivery)
        if claim.attempted_before:
            earlier = writer.find(delivery)
            if earlier is not None:
                _finish(ledger, row_id, now, state="sent", remote_id=earlier)
                result.already_delivered += 1
                return
        held = _held_by_target(writer.markers(delivery), claim, now)
        if held is not None:
            reason = f"{KNOWN_BEFORE}: the target holds {held.remote_id}" + (
                f", posted {held.at.isoformat(timespec='seconds')}" if held.at else ""
            )
            _finish(ledger, row_id, now, state="sent", remote_id=held.remote_id, error=reason)
            result.already_delivered += 1
            result.known_to_target += 1
            log.info("follow-up already at the target", key=delivery.idempotency_key,
                     remote_id=held.remote_id)  # fmt: skip
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


def _held_by_target(markers: list[Marker], claim: _Claim, now: datetime) -> Marker | None:
    """A marker at the target that stands for this follow-up, if one does (module docstring)."""
    repeat_after = claim.delivery.repeat_after
    for marker in markers:
        if marker.exact:
            return marker
        if repeat_after is None or marker.remote_id in claim.known or marker.key in claim.known:
            continue
        # A post whose time the target does not say is taken as recent: never send twice.
        if marker.at is None or now - marker.at < repeat_after:
            return marker
    return None


def _finish(ledger: Ledger, row_id: int, now: datetime, **values: Any) -> None:
    if values.get("state") == "sent":
        values["sent_at"] = now
    with ledger.sessions.begin() as session:
        session.execute(
            update(OutboxItem).where(OutboxItem.id == row_id).values(updated_at=now, **values)
        )
