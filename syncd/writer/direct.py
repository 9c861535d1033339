"""Messages to a person rather than on a task: daily digests and alerts to the admin.

Such a message has no thread to answer in, so it goes where the person reads
directly: by email when `[smtp]` is configured and they have an address, else as
a Slack direct message through the first Slack source. It is stored in the
outbox under its idempotency key and delivered exactly once, like any follow-up.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from syncd.config import Settings
from syncd.ledger.models import Base
from syncd.ledger.repository import Ledger

OUTBOX = Base.metadata.tables["outbox"]


def direct_target(
    person_id: str, settings: Settings, subject: str
) -> tuple[str, dict[str, Any]] | None:
    """(channel, target) that reaches this person directly, or None if nothing can."""
    person = settings.people.get(person_id)
    if person is None:
        return None
    if settings.smtp is not None and person.email:
        return "email", {"to": person.email, "subject": subject}
    slack = next((name for name, s in settings.sources.items() if s.kind == "slack"), None)
    if slack and person.slack:
        return "slack", {"source": slack, "user": person.slack}
    return None


def insert_message(
    ledger: Ledger,
    connection: Connection,
    *,
    key: str,
    kind: str,
    person_id: str,
    channel: str,
    target: dict[str, Any],
    body: str,
    now: datetime,
) -> bool:
    """Store one direct message in the caller's transaction; False if the key exists."""
    statement = (
        ledger._insert(OUTBOX)
        .values(
            idempotency_key=key,
            rule_id=kind,
            task_id=None,
            violation_id=None,
            channel=channel,
            target=target,
            recipient=person_id,
            body=body,
            state="pending",
            attempts=0,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(OUTBOX.c.id)
    )
    return connection.execute(statement).first() is not None
