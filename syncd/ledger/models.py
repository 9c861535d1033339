"""The ledger's tables (SQLAlchemy 2.x typed models).

A task's identity is `(source, external_id)`, the source's immutable id; `key` is
the human alias and may change (a transferred issue, a moved Jira issue), so
history, violations and follow-up cooldowns survive the move.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL stores `timestamptz`. SQLite has no datetime type: values are kept
    as sortable UTC text ("2026-03-02 09:30:00.000000"), formatted here once
    rather than through a second processor, since ingest binds many of them.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the ledger stores aware datetimes only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.strftime(_SQLITE_FORMAT)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # our own sortable format, which fromisoformat reads fast
            return datetime.fromisoformat(value).replace(tzinfo=UTC)
        aware: datetime = value.replace(tzinfo=UTC) if value.tzinfo is None else value
        return aware.astimezone(UTC)


_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


JSONType = JSON().with_variant(JSONB(), "postgresql")


class JSONValue(TypeDecorator[Any]):
    """Any JSON value, scalars included: JSONB on PostgreSQL, JSON text on SQLite.

    SQLite's JSON column has numeric affinity, so a bare number stored as text would come
    back as a number the JSON decoder refuses; a TEXT column keeps the encoding intact.
    """

    impl = JSONB
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(Text())
        return dialect.type_descriptor(JSONB())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return orjson.dumps(value).decode()
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if dialect.name == "sqlite" and isinstance(value, str):
            return orjson.loads(value)
        return value


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: UTCDateTime(),
        date: Date(),
        dict[str, Any]: JSONType,
        list[str]: JSONType,
        list[Any]: JSONType,
    }


class TaskRow(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_tasks_source_external_id"),
        Index("ix_tasks_source_key", "source", "key"),
        Index("ix_tasks_key", "key"),
        Index("ix_tasks_changed_at", "changed_at"),
        Index("ix_tasks_status", "status"),
        Index("ix_tasks_next_check_at", "next_check_at"),
        Index("ix_tasks_revision", "revision"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(100))
    external_id: Mapped[str] = mapped_column(String(200))
    key: Mapped[str] = mapped_column(String(400))
    url: Mapped[str | None] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(20))
    status_raw: Mapped[str | None] = mapped_column(String(200))
    owners: Mapped[list[str]] = mapped_column(default=list)
    team: Mapped[str | None] = mapped_column(String(200))
    reporter: Mapped[str | None] = mapped_column(String(300))
    due: Mapped[date | None]
    priority: Mapped[str | None] = mapped_column(String(10))
    priority_raw: Mapped[str | None] = mapped_column(String(200))
    labels: Mapped[list[str]] = mapped_column(default=list)
    parent: Mapped[str | None] = mapped_column(String(400))
    children: Mapped[list[str]] = mapped_column(default=list)
    blocked_by: Mapped[list[str]] = mapped_column(default=list)
    links: Mapped[list[str]] = mapped_column(default=list)
    acceptance_criteria: Mapped[str | None] = mapped_column(Text)
    estimate_hours: Mapped[float | None] = mapped_column(Float)
    logged_hours: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime | None]
    updated_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    last_activity_at: Mapped[datetime | None]
    verified_by: Mapped[str | None] = mapped_column(String(300))
    participants: Mapped[list[str]] = mapped_column(default=list)
    # Ledger bookkeeping, not source data.
    content_hash: Mapped[str] = mapped_column(String(64))
    first_seen_at: Mapped[datetime]
    changed_at: Mapped[datetime]
    gone_at: Mapped[datetime | None]
    # The next moment a time-based rule (stale, due soon…) can change its verdict.
    next_check_at: Mapped[datetime | None]
    # The ledger revision of the transaction that last wrote this row (see LedgerRevision).
    revision: Mapped[int] = mapped_column(BigInteger, default=0)


class LedgerRevision(Base):
    """One counter, bumped by every transaction that writes tasks.

    Timestamps can tie; revisions cannot, and they follow commit order because the
    counter's row stays locked until the writing transaction commits. The rules
    engine evaluates exactly the tasks written since the revision it last saw.
    """

    __tablename__ = "ledger_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class RawPayload(Base):
    """The source's own JSON for a task, as last fetched."""

    __tablename__ = "raw_payloads"

    task_id: Mapped[int] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    payload: Mapped[dict[str, Any]]
    fetched_at: Mapped[datetime]


class PersonRow(Base):
    __tablename__ = "people"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(300))


class IdentityRow(Base):
    """A person's handle in one tool (GitHub login, Jira accountId, Slack id, email)."""

    __tablename__ = "identities"
    __table_args__ = (UniqueConstraint("kind", "handle", name="uq_identities_kind_handle"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    handle: Mapped[str] = mapped_column(String(300))


class TaskLink(Base):
    """An edge between tasks: `same_work`, `blocked_by` or `parent`, by key.

    `target_key` is what the source said; `target_task_id` is filled when that key
    is in the ledger (the target may live in another source, or not be synced yet).
    """

    __tablename__ = "task_links"
    __table_args__ = (
        UniqueConstraint("task_id", "kind", "target_key", name="uq_task_links_task_id"),
        Index("ix_task_links_target_key", "target_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    target_key: Mapped[str] = mapped_column(String(400))
    target_task_id: Mapped[int | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="SET NULL"), index=True
    )


class StatusHistory(Base):
    __tablename__ = "status_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    from_raw: Mapped[str | None] = mapped_column(String(200))
    to_raw: Mapped[str | None] = mapped_column(String(200))


class FieldHistory(Base):
    """A tracked field (`syncd.model.HISTORY_FIELDS`) took `value` from `changed_at` on.

    `origin` says where the date comes from: "source" (the source dated the change),
    "initial" (the value the task was created with, dated at its creation) or
    "observed" (syncd saw the value change between two syncs; dated at that sync).
    `change_key` is the source's stable id of the change (see `syncd.model.FieldChange`);
    `(task_id, field, change_key)` is unique, so re-reading a history adds no rows.
    Within one task and field, rows order by `(changed_at, id)`.
    """

    __tablename__ = "field_history"
    __table_args__ = (
        UniqueConstraint("task_id", "field", "change_key", name="uq_field_history_change"),
        Index("ix_field_history_task_id_field_changed_at", "task_id", "field", "changed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(40))
    value: Mapped[Any] = mapped_column(JSONValue, nullable=True)
    changed_at: Mapped[datetime]
    recorded_at: Mapped[datetime]
    origin: Mapped[str] = mapped_column(String(10))
    change_key: Mapped[str] = mapped_column(String(200))
    changed_by: Mapped[str | None] = mapped_column(String(300))


class SyncCursor(Base):
    """Where a source's stream resumes; moves in the same transaction as its page."""

    __tablename__ = "sync_cursors"

    source: Mapped[str] = mapped_column(String(100), primary_key=True)
    stream: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class QuarantineRow(Base):
    """An item that could not be parsed or mapped, kept with the reason."""

    __tablename__ = "quarantine"
    __table_args__ = (Index("ix_quarantine_source_created_at", "source", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(100))
    stream: Mapped[str] = mapped_column(String(200))
    external_ref: Mapped[str | None] = mapped_column(String(400))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class Violation(Base):
    """One episode of a task breaking a rule: first seen, last seen, resolved."""

    __tablename__ = "violations"
    __table_args__ = (
        Index("ix_violations_rule_id_task_id", "rule_id", "task_id"),
        Index("ix_violations_open", "resolved_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(50), default="")
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), index=True)
    severity: Mapped[str] = mapped_column(String(10))
    message: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    resolved_at: Mapped[datetime | None]


class OutboxItem(Base):
    """A planned follow-up. The idempotency key makes a second plan of it a no-op."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_state_not_before", "state", "not_before"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    rule_id: Mapped[str] = mapped_column(String(200))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    violation_id: Mapped[int | None] = mapped_column(
        ForeignKey("violations.id", ondelete="SET NULL")
    )
    channel: Mapped[str] = mapped_column(String(20))
    target: Mapped[dict[str, Any]]
    recipient: Mapped[str | None] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    remote_id: Mapped[str | None] = mapped_column(String(300))
    not_before: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class WebhookDelivery(Base):
    """A verified webhook delivery, stored before it is answered 2xx, then processed from here.

    `(source, delivery_id)` is unique: the sender's own id for the delivery (GitHub's
    `X-GitHub-Delivery`, Slack's `event_id`, Jira's `X-Atlassian-Webhook-Identifier`,
    else a hash of the body), so a redelivery, also to another replica, is stored once.
    `state` is `pending` until processed (`done`), or `failed` after too many attempts;
    processed rows are pruned after a retention period.
    """

    __tablename__ = "webhook_inbox"
    __table_args__ = (
        UniqueConstraint("source", "delivery_id", name="uq_webhook_inbox_source_delivery_id"),
        Index("ix_webhook_inbox_state_id", "state", "id"),
        Index("ix_webhook_inbox_processed_at", "processed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(100))
    delivery_id: Mapped[str] = mapped_column(String(200))
    event: Mapped[str] = mapped_column(String(100))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(10), default="pending")
    processed_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
