"""The ledger's write and read calls, used by every stage of the pipeline.

`ingest_page` is the heart: a page of normalized tasks, its quarantined items and
the cursor that follows it are committed in one transaction, so a crash resumes
from the last committed page with no gap and no duplicate. Unchanged items cost
one indexed read and no write.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from syncd.errors import SuspiciousDisappearance
from syncd.ledger.db import create_ledger_engine, ensure_current, require_writable
from syncd.ledger.field_history import current_values, field_history_rows
from syncd.ledger.models import (
    Base,
    FieldHistory,
    LedgerRevision,
    QuarantineRow,
    RawPayload,
    StatusHistory,
    SyncCursor,
    TaskLink,
    TaskRow,
)
from syncd.model import Activity, QuarantinedItem, Task

BATCH_SIZE = 500

# Columns copied from a Task into its row; the rest is bookkeeping.
TASK_FIELDS = (
    "source", "external_id", "key", "url", "title", "description", "status",
    "status_raw", "owners", "team", "reporter", "due", "priority", "priority_raw",
    "labels", "parent", "children", "blocked_by", "links", "acceptance_criteria",
    "estimate_hours", "logged_hours", "created_at", "updated_at", "closed_at",
    "last_activity_at", "verified_by", "participants",
)  # fmt: skip

# Core tables for the hot path: Core executemany batches RETURNING upserts per page.
TASKS = Base.metadata.tables["tasks"]
RAW_PAYLOADS = Base.metadata.tables["raw_payloads"]
HISTORY = Base.metadata.tables["status_history"]
LINKS = Base.metadata.tables["task_links"]
FIELD_HISTORY = Base.metadata.tables["field_history"]

LINK_KINDS = {"blocked_by": "blocked_by", "links": "same_work", "children": "child"}


@dataclass
class IngestResult:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    # Items older than what the ledger holds (a late or out-of-order delivery), skipped.
    stale: int = 0
    # Tasks elsewhere whose activity this page moved (see `Activity`).
    linked: int = 0
    changed_task_ids: list[int] = field(default_factory=list)

    def add(self, other: IngestResult) -> None:
        self.new += other.new
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.quarantined += other.quarantined
        self.stale += other.stale
        self.linked += other.linked
        self.changed_task_ids.extend(other.changed_task_ids)


@dataclass(frozen=True)
class _Known:
    id: int
    content_hash: str
    status: str
    status_raw: str | None
    gone: bool
    last_activity_at: datetime | None
    participants: list[str]
    updated_at: datetime | None


class Ledger:
    """One ledger database: SQLite file by default, PostgreSQL for teams."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self._insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    @classmethod
    def open(cls, url: str, *, auto_upgrade: bool = True, writable: bool = False) -> Ledger:
        """The ledger at `url`; `writable` checks up front that it can be written."""
        engine = create_ledger_engine(url)
        try:
            if auto_upgrade:
                ensure_current(engine)
            if writable:
                require_writable(engine)
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    # --- writes -----------------------------------------------------------------

    def ingest_page(
        self,
        source: str,
        tasks: Sequence[Task],
        *,
        now: datetime,
        stream: str = "default",
        cursor: dict[str, Any] | None = None,
        quarantined: Sequence[QuarantinedItem] = (),
        activity: Sequence[Activity] = (),
        newer_only: bool = False,
    ) -> IngestResult:
        """Upsert a page, record its quarantine and activity, and move its cursor, atomically.

        With `newer_only`, an item whose `updated_at` is older than the stored one is
        skipped (counted as `stale`): a late webhook delivery, or a read that raced
        one, never replaces a newer state. Equal stamps are applied (the source's
        clock has second precision, so two edits in one second look alike).
        """
        with self.sessions.begin() as session:
            return self.ingest_page_in(
                session, source, tasks, now=now, stream=stream, cursor=cursor,
                quarantined=quarantined, activity=activity, newer_only=newer_only,
            )  # fmt: skip

    def ingest_page_in(
        self,
        session: Session,
        source: str,
        tasks: Sequence[Task],
        *,
        now: datetime,
        stream: str = "default",
        cursor: dict[str, Any] | None = None,
        quarantined: Sequence[QuarantinedItem] = (),
        activity: Sequence[Activity] = (),
        newer_only: bool = False,
    ) -> IngestResult:
        """`ingest_page` inside the caller's transaction (which commits it with its own rows,
        e.g. the webhook inbox marking the deliveries it came from as processed)."""
        result = IngestResult(quarantined=len(quarantined))
        unique = {task.external_id: task for task in tasks if task.source == source}
        if len(unique) != len({t.external_id for t in tasks}):
            raise ValueError(f"every task of this page must belong to source {source!r}")
        for batch in _batches(list(unique.values()), BATCH_SIZE):
            result.add(self._ingest_batch(session, source, batch, now, newer_only))
        if quarantined:
            session.add_all(_quarantine_rows(source, stream, quarantined, now))
        if activity:
            touched = self._record_activity(session, activity, now)
            result.linked = len(touched)
            result.changed_task_ids.extend(touched)
        if cursor is not None:
            self._save_cursor(session, source, stream, cursor, now)
        return result

    def _ingest_batch(
        self, session: Session, source: str, batch: list[Task], now: datetime, newer_only: bool
    ) -> IngestResult:
        known = self._known(session, source, [t.external_id for t in batch])
        result = IngestResult()
        rows: list[dict[str, Any]] = []
        for task in batch:
            previous = known.get(task.external_id)
            if newer_only and previous is not None and _older(task, previous):
                result.stale += 1
                continue
            if previous is not None:
                _keep_activity(task, previous)
            digest = task.content_hash()
            if previous is not None and previous.content_hash == digest and not previous.gone:
                result.unchanged += 1
                continue
            if previous is None:
                result.new += 1
            else:
                result.updated += 1
            rows.append(_row(task, digest, now, self._revision(session)))
        if not rows:
            return result
        ids = self._upsert(session, rows, newer_only)
        by_external = {t.external_id: t for t in batch}
        changed = [(ids[eid], by_external[eid], known.get(eid)) for eid in ids]
        self._write_payloads(session, changed, now)
        self._write_history(session, changed, now)
        self._write_field_history(session, changed, now)
        self._write_links(session, changed)
        result.changed_task_ids = [task_id for task_id, _, _ in changed]
        return result

    def record_activity(self, activity: Sequence[Activity], *, now: datetime) -> list[int]:
        """Credit activity to the tasks it names, in any source; returns the tasks moved."""
        with self.sessions.begin() as session:
            return self._record_activity(session, activity, now)

    def _record_activity(
        self, session: Session, activity: Sequence[Activity], now: datetime
    ) -> list[int]:
        """Move each named task's last activity forward and add the person as a participant.

        Idempotent (a re-read credits nothing new) and forward-only, like `_keep_activity`.
        A key no task has yet is skipped: the next look-back re-read credits it.
        """
        query = select(TaskRow.id, TaskRow.key, TaskRow.last_activity_at, TaskRow.participants)
        query = query.where(
            TaskRow.key.in_({item.target_key for item in activity}), TaskRow.gone_at.is_(None)
        )
        touched: list[int] = []
        for row in session.execute(query).all():
            latest, participants = row.last_activity_at, list(row.participants or [])
            for item in activity:
                if item.target_key != row.key:
                    continue
                if latest is None or item.at > latest:
                    latest = item.at
                if item.person is not None and item.person not in participants:
                    participants.append(item.person)
            if (latest, participants) != (row.last_activity_at, list(row.participants or [])):
                session.execute(
                    update(TaskRow)
                    .where(TaskRow.id == row.id)
                    .values(
                        last_activity_at=latest,
                        participants=participants,
                        changed_at=now,
                        revision=self._revision(session),
                    )
                )
                touched.append(row.id)
        return touched

    def _revision(self, session: Session) -> int:
        """This transaction's ledger revision, taken once (the counter row stays locked)."""
        if "revision" not in session.info:
            bumped = session.execute(
                update(LedgerRevision)
                .where(LedgerRevision.id == 1)
                .values(value=LedgerRevision.value + 1)
                .returning(LedgerRevision.value)
            ).scalar_one()
            session.info["revision"] = bumped
        revision: int = session.info["revision"]
        return revision

    def _known(self, session: Session, source: str, external_ids: list[str]) -> dict[str, _Known]:
        query = select(
            TaskRow.external_id,
            TaskRow.id,
            TaskRow.content_hash,
            TaskRow.status,
            TaskRow.status_raw,
            TaskRow.gone_at,
            TaskRow.last_activity_at,
            TaskRow.participants,
            TaskRow.updated_at,
        ).where(TaskRow.source == source, TaskRow.external_id.in_(external_ids))
        return {
            row.external_id: _Known(
                row.id,
                row.content_hash,
                row.status,
                row.status_raw,
                row.gone_at is not None,
                row.last_activity_at,
                list(row.participants or []),
                row.updated_at,
            )
            for row in session.execute(query)
        }

    def _upsert(
        self, session: Session, rows: list[dict[str, Any]], newer_only: bool = False
    ) -> dict[str, int]:
        insert = self._insert(TASKS)
        excluded = insert.excluded
        updatable = [c for c in rows[0] if c not in ("source", "external_id", "first_seen_at")]
        # A concurrent writer may have stored the same content already.
        where = (TaskRow.content_hash != excluded.content_hash) | TaskRow.gone_at.is_not(None)
        if newer_only:
            # ...or a newer state, between our read of the known rows and this write.
            where = where & (
                TaskRow.updated_at.is_(None)
                | excluded.updated_at.is_(None)
                | (excluded.updated_at >= TaskRow.updated_at)
            )
        statement = insert.on_conflict_do_update(
            index_elements=[TaskRow.source, TaskRow.external_id],
            set_={column: excluded[column] for column in updatable},
            where=where,
        ).returning(TaskRow.id, TaskRow.external_id)
        # Core execution (not the ORM bulk path) batches the RETURNING upsert per page.
        result = session.connection().execute(statement, rows)
        return {external_id: task_id for task_id, external_id in result}

    def _write_payloads(
        self, session: Session, changed: list[tuple[int, Task, _Known | None]], now: datetime
    ) -> None:
        statement = self._insert(RAW_PAYLOADS)
        statement = statement.on_conflict_do_update(
            index_elements=[RawPayload.task_id],
            set_={
                "payload": statement.excluded.payload,
                "fetched_at": statement.excluded.fetched_at,
            },
        )
        session.connection().execute(
            statement,
            [{"task_id": tid, "payload": task.raw, "fetched_at": now} for tid, task, _ in changed],
        )

    def _write_history(
        self, session: Session, changed: list[tuple[int, Task, _Known | None]], now: datetime
    ) -> None:
        rows = []
        for task_id, task, previous in changed:
            if previous is None:
                # A new task has no transition of its own; the source's changelog may.
                rows.extend(_changelog_rows(task_id, task))
                continue
            if (previous.status, previous.status_raw) == (task.status.value, task.status_raw):
                continue
            rows.append(
                {
                    "task_id": task_id,
                    "at": _transition_time(task, now),
                    "from_status": previous.status,
                    "to_status": task.status.value,
                    "from_raw": previous.status_raw,
                    "to_raw": task.status_raw,
                }
            )
        if rows:
            session.connection().execute(self._insert(HISTORY), rows)

    def _write_field_history(
        self, session: Session, changed: list[tuple[int, Task, _Known | None]], now: datetime
    ) -> None:
        """The changes each task carries, plus a change syncd observed itself where a field's
        value differs from the latest one recorded (dated now: the source did not say when).
        Only the changed tasks' latest values are read; existing (task, field, key) rows are
        left alone, so a re-read writes nothing."""
        existing = [task_id for task_id, _, previous in changed if previous is not None]
        latest = self._latest_field_values(session, existing) if existing else {}
        rows: list[dict[str, Any]] = []
        for task_id, task, _ in changed:
            rows.extend(field_history_rows(task_id, task, latest.get(task_id, {}), now))
        if rows:
            statement = self._insert(FIELD_HISTORY).on_conflict_do_nothing(
                index_elements=["task_id", "field", "change_key"]
            )
            session.connection().execute(statement, rows)

    def _latest_field_values(
        self, session: Session, task_ids: list[int]
    ) -> dict[int, dict[str, tuple[datetime, Any]]]:
        query = (
            select(
                FieldHistory.task_id,
                FieldHistory.field,
                FieldHistory.changed_at,
                FieldHistory.value,
            )
            .where(FieldHistory.task_id.in_(task_ids))
            .order_by(FieldHistory.task_id, FieldHistory.changed_at, FieldHistory.id)
        )
        return current_values(session.execute(query))

    def _write_links(
        self, session: Session, changed: list[tuple[int, Task, _Known | None]]
    ) -> None:
        existing = [task_id for task_id, _, previous in changed if previous is not None]
        if existing:
            session.execute(delete(TaskLink).where(TaskLink.task_id.in_(existing)))
        rows = [
            {"task_id": task_id, "kind": kind, "target_key": target, "target_task_id": None}
            for task_id, task, _ in changed
            for kind, target in _edges(task)
        ]
        if rows:
            session.connection().execute(self._insert(LINKS).on_conflict_do_nothing(), rows)

    def _save_cursor(
        self, session: Session, source: str, stream: str, value: dict[str, Any], now: datetime
    ) -> None:
        statement = self._insert(SyncCursor).values(
            source=source, stream=stream, value=value, updated_at=now
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[SyncCursor.source, SyncCursor.stream],
                set_={"value": statement.excluded.value, "updated_at": now},
            )
        )

    def save_cursor(self, source: str, stream: str, value: dict[str, Any], now: datetime) -> None:
        with self.sessions.begin() as session:
            self._save_cursor(session, source, stream, value, now)

    def forget_cursor(self, source: str, stream: str) -> None:
        with self.sessions.begin() as session:
            session.execute(
                delete(SyncCursor).where(SyncCursor.source == source, SyncCursor.stream == stream)
            )

    def mark_gone(
        self,
        source: str,
        present: set[str],
        *,
        now: datetime,
        scope_prefix: str | None = None,
        max_share: float = 0.5,
        min_refused: int = 10,
    ) -> list[int]:
        """Mark tasks missing from a complete listing as gone (never delete them).

        A listing that would make more than `max_share` of the source's live tasks
        (and at least `min_refused` of them) disappear at once is refused as
        suspicious: a broken filter or a half-empty API answer must not close work.
        """
        query = select(TaskRow.id, TaskRow.external_id).where(
            TaskRow.source == source, TaskRow.gone_at.is_(None)
        )
        if scope_prefix is not None:
            query = query.where(TaskRow.key.startswith(scope_prefix, autoescape=True))
        with self.sessions.begin() as session:
            live = session.execute(query).all()
            missing = [row.id for row in live if row.external_id not in present]
            if len(missing) >= min_refused and len(missing) > max_share * len(live):
                raise SuspiciousDisappearance(
                    f"a complete listing of {source} lacks {len(missing)} of its "
                    f"{len(live)} tasks; refusing to mark them gone"
                )
            for chunk in range(0, len(missing), BATCH_SIZE):
                session.execute(
                    update(TaskRow)
                    .where(TaskRow.id.in_(missing[chunk : chunk + BATCH_SIZE]))
                    .values(gone_at=now, changed_at=now, revision=self._revision(session))
                )
        return missing

    def resolve_links(self) -> int:
        """Point link rows at the tasks their keys name, once those tasks are known."""
        target = (
            select(TaskRow.id)
            .where(TaskRow.key == TaskLink.target_key)
            .order_by(TaskRow.id)
            .limit(1)
            .scalar_subquery()
        )
        with self.sessions.begin() as session:
            outcome = session.execute(
                update(TaskLink)
                .where(TaskLink.target_task_id.is_(None))
                .values(target_task_id=target)
                .execution_options(synchronize_session=False)
            )
            return int(getattr(outcome, "rowcount", 0) or 0)

    # --- reads ------------------------------------------------------------------

    def cursor(self, source: str, stream: str = "default") -> dict[str, Any] | None:
        with self.sessions() as session:
            row = session.get(SyncCursor, (source, stream))
            return dict(row.value) if row is not None else None

    def payloads(self, source: str, external_ids: Collection[str]) -> dict[str, dict[str, Any]]:
        """External id → the raw payload last stored, for the source's live tasks among these."""
        wanted = sorted(set(external_ids))
        found: dict[str, dict[str, Any]] = {}
        with self.sessions() as session:
            for start in range(0, len(wanted), BATCH_SIZE):
                query = (
                    select(TaskRow.external_id, RawPayload.payload)
                    .join(RawPayload, RawPayload.task_id == TaskRow.id)
                    .where(
                        TaskRow.source == source,
                        TaskRow.external_id.in_(wanted[start : start + BATCH_SIZE]),
                        TaskRow.gone_at.is_(None),
                    )
                )
                found.update((row.external_id, row.payload) for row in session.execute(query))
        return found

    def tasks(
        self,
        *,
        sources: Iterable[str] = (),
        statuses: Iterable[str] = (),
        include_gone: bool = False,
    ) -> Iterator[TaskRow]:
        query: Select[TaskRow] = select(TaskRow).order_by(TaskRow.source, TaskRow.id)
        if sources := list(sources):
            query = query.where(TaskRow.source.in_(sources))
        if statuses := list(statuses):
            query = query.where(TaskRow.status.in_(statuses))
        if not include_gone:
            query = query.where(TaskRow.gone_at.is_(None))
        with self.sessions() as session:
            yield from session.scalars(query.execution_options(yield_per=1000))

    def task_by_key(self, key: str, source: str | None = None) -> TaskRow | None:
        query = select(TaskRow).where(TaskRow.key == key)
        if source is not None:
            query = query.where(TaskRow.source == source)
        with self.sessions() as session:
            return session.scalars(query.order_by(TaskRow.id).limit(1)).first()

    def status_history(self, task_id: int) -> list[StatusHistory]:
        query = select(StatusHistory).where(StatusHistory.task_id == task_id)
        with self.sessions() as session:
            return list(session.scalars(query.order_by(StatusHistory.at, StatusHistory.id)))

    def status_histories(self, task_ids: Iterable[int]) -> dict[int, list[StatusHistory]]:
        """Task id -> its status transitions, oldest first (tasks without any are absent)."""
        wanted = sorted(set(task_ids))
        found: dict[int, list[StatusHistory]] = {}
        with self.sessions() as session:
            for start in range(0, len(wanted), BATCH_SIZE):
                query = (
                    select(StatusHistory)
                    .where(StatusHistory.task_id.in_(wanted[start : start + BATCH_SIZE]))
                    .order_by(StatusHistory.task_id, StatusHistory.at, StatusHistory.id)
                )
                for row in session.scalars(query):
                    found.setdefault(row.task_id, []).append(row)
        return found

    def field_history(
        self, task_ids: Iterable[int], fields: Iterable[str] | None = None
    ) -> dict[int, list[FieldHistory]]:
        """Task id -> its recorded field changes, ordered by `(changed_at, id)`.

        `fields` narrows to some of `syncd.model.HISTORY_FIELDS` ("due", "fix_versions",
        "owners", "estimate_hours", "logged_hours", "priority"); values are in the JSON
        form documented there. A row holds from its `changed_at` on (a change dated
        exactly t is known at t); tasks without rows are absent.
        """
        wanted = sorted(set(task_ids))
        names = list(fields) if fields is not None else None
        found: dict[int, list[FieldHistory]] = {}
        with self.sessions() as session:
            for start in range(0, len(wanted), BATCH_SIZE):
                query = select(FieldHistory).where(
                    FieldHistory.task_id.in_(wanted[start : start + BATCH_SIZE])
                )
                if names is not None:
                    query = query.where(FieldHistory.field.in_(names))
                query = query.order_by(
                    FieldHistory.task_id, FieldHistory.changed_at, FieldHistory.id
                )
                for row in session.scalars(query):
                    found.setdefault(row.task_id, []).append(row)
        return found

    def field_values_at(
        self, task_ids: Iterable[int], moment: datetime, fields: Iterable[str] | None = None
    ) -> dict[int, dict[str, Any]]:
        """Task id -> {field: value known at `moment`} (fields with no row by then are absent)."""
        out: dict[int, dict[str, Any]] = {}
        for task_id, rows in self.field_history(task_ids, fields).items():
            values = {row.field: row.value for row in rows if row.changed_at <= moment}
            if values:
                out[task_id] = values
        return out

    def deadline_moves(self, task_ids: Iterable[int], as_of: datetime) -> dict[int, int]:
        """Task id -> how many times its due date moved (from one date to another, not first
        set or cleared) by `as_of` included: "slips already seen". Tasks with none: 0."""
        wanted = set(task_ids)
        moves = dict.fromkeys(wanted, 0)
        for task_id, rows in self.field_history(wanted, ["due"]).items():
            last: Any = None
            for row in rows:
                if row.changed_at > as_of:
                    break
                if last is not None and row.value is not None and row.value != last:
                    moves[task_id] += 1
                if row.value is not None:
                    last = row.value
        return moves

    def quarantine(self, source: str | None = None) -> list[QuarantineRow]:
        query = select(QuarantineRow).order_by(QuarantineRow.id)
        if source is not None:
            query = query.where(QuarantineRow.source == source)
        with self.sessions() as session:
            return list(session.scalars(query))


def _older(task: Task, previous: _Known) -> bool:
    """The incoming item says it is older than the stored one (unknown stamps: not older)."""
    return (
        task.updated_at is not None
        and previous.updated_at is not None
        and task.updated_at < previous.updated_at
    )


def _keep_activity(task: Task, previous: _Known) -> None:
    """Activity only moves forward: an incremental read sees recent comments and events
    only, so what earlier reads saw is kept rather than forgotten."""
    if previous.last_activity_at is not None and (
        task.last_activity_at is None or task.last_activity_at < previous.last_activity_at
    ):
        task.last_activity_at = previous.last_activity_at
    missing = [p for p in previous.participants if p not in task.participants]
    if missing:
        task.participants = [*missing, *task.participants]


def _row(task: Task, digest: str, now: datetime, revision: int) -> dict[str, Any]:
    row = {name: getattr(task, name) for name in TASK_FIELDS}
    row["status"] = task.status.value
    row["priority"] = task.priority.value if task.priority else None
    row.update(
        content_hash=digest, first_seen_at=now, changed_at=now, gone_at=None, revision=revision
    )
    return row


def _edges(task: Task) -> Iterator[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    if task.parent:
        seen.add(("parent", task.parent))
        yield "parent", task.parent
    for attribute, kind in LINK_KINDS.items():
        for target in getattr(task, attribute):
            if (kind, target) not in seen and target != task.key:
                seen.add((kind, target))
                yield kind, target


def _transition_time(task: Task, now: datetime) -> datetime:
    """When the status changed: the source's word for it where it has one."""
    for change in reversed(task.status_changes):
        if change.to_raw == task.status_raw:
            return change.at
    return task.updated_at or now


def _changelog_rows(task_id: int, task: Task) -> list[dict[str, Any]]:
    return [
        {
            "task_id": task_id,
            "at": change.at,
            "from_status": None,
            "to_status": change.to_status.value if change.to_status else None,
            "from_raw": change.from_raw,
            "to_raw": change.to_raw,
        }
        for change in task.status_changes
    ]


def _quarantine_rows(
    source: str, stream: str, items: Sequence[QuarantinedItem], now: datetime
) -> list[QuarantineRow]:
    return [
        QuarantineRow(
            source=source,
            stream=stream,
            external_ref=item.external_ref,
            reason=item.reason,
            payload=item.payload,
            created_at=now,
        )
        for item in items
    ]


def _batches(items: list[Task], size: int) -> Iterator[list[Task]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def task_to_dict(row: TaskRow) -> dict[str, Any]:
    """Every normalized field of a stored task, JSON-ready (`syncd tasks --format json`)."""
    out: dict[str, Any] = {name: getattr(row, name) for name in TASK_FIELDS}
    out["id"] = row.id
    out["gone"] = row.gone_at is not None
    ready: dict[str, Any] = json.loads(json.dumps(out, default=_json_default))
    return ready


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
