"""The rules engine's reads and writes on the ledger, in batches.

Loads task views (the columns rules need, never raw payloads) with their
blockers and same-work links resolved across sources, and records violations:
new ones inserted, confirmed ones stamped `last_seen`, vanished ones resolved.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, func, literal, select, update

from syncd.ledger.models import Base, LedgerRevision, TaskLink, TaskRow, UTCDateTime, Violation
from syncd.ledger.repository import Ledger
from syncd.rules.view import TaskView

BATCH = 500
TASKS = Base.metadata.tables["tasks"]
VIOLATIONS = Base.metadata.tables["violations"]
WATERMARK = ("syncd:rules", "engine")

VIEW_COLUMNS = (
    TaskRow.id, TaskRow.source, TaskRow.key, TaskRow.title, TaskRow.status, TaskRow.url,
    TaskRow.description, TaskRow.status_raw, TaskRow.owners, TaskRow.team, TaskRow.reporter,
    TaskRow.due, TaskRow.priority, TaskRow.labels, TaskRow.parent, TaskRow.blocked_by,
    TaskRow.links, TaskRow.acceptance_criteria, TaskRow.estimate_hours, TaskRow.logged_hours,
    TaskRow.created_at, TaskRow.updated_at, TaskRow.closed_at, TaskRow.last_activity_at,
    TaskRow.verified_by, TaskRow.participants,
)  # fmt: skip
VIEW_FIELDS = tuple(column.key for column in VIEW_COLUMNS)


@dataclass(frozen=True)
class Finding:
    rule_id: str
    kind: str
    severity: str
    task_id: int
    message: str


@dataclass
class RuleCounts:
    open: int = 0
    new: int = 0
    resolved: int = 0

    def as_json(self) -> dict[str, int]:
        return {"open": self.open, "new": self.new, "resolved": self.resolved}


class RuleStore:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._stored_next: dict[int, datetime | None] = {}

    # --- what to evaluate -------------------------------------------------------

    def watermark(self) -> dict[str, Any] | None:
        return self.ledger.cursor(*WATERMARK)

    def save_watermark(self, revision: int, fingerprint: str, now: datetime) -> None:
        value = {
            "revision": revision,
            "fingerprint": fingerprint,
        }
        self.ledger.save_cursor(*WATERMARK, value, now)

    def latest_revision(self) -> int:
        with self.ledger.sessions() as session:
            return int(session.scalar(select(LedgerRevision.value)) or 0)

    def changed_between(self, after: int, until: int) -> set[int]:
        """Tasks written after revision `after`, up to and including `until`."""
        query = select(TaskRow.id).where(TaskRow.revision > after, TaskRow.revision <= until)
        with self.ledger.sessions() as session:
            return set(session.scalars(query))

    def came_due(self, now: datetime) -> set[int]:
        query = select(TaskRow.id).where(TaskRow.next_check_at <= now, TaskRow.gone_at.is_(None))
        with self.ledger.sessions() as session:
            return set(session.scalars(query))

    def dependents_of(self, task_ids: set[int]) -> set[int]:
        """Tasks whose verdict may change with these: what they block, the same work elsewhere."""
        found: set[int] = set()
        with self.ledger.sessions() as session:
            for chunk in _chunks(sorted(task_ids)):
                pointing_here = select(TaskLink.task_id).where(
                    TaskLink.target_task_id.in_(chunk),
                    TaskLink.kind.in_(("blocked_by", "same_work")),
                )
                pointed_at = select(TaskLink.target_task_id).where(
                    TaskLink.task_id.in_(chunk),
                    TaskLink.kind == "same_work",
                    TaskLink.target_task_id.is_not(None),
                )
                found.update(session.scalars(pointing_here))
                found.update(i for i in session.scalars(pointed_at) if i is not None)
        return found

    def ids_with_open_violations(self) -> set[int]:
        with self.ledger.sessions() as session:
            return set(
                session.scalars(select(Violation.task_id).where(Violation.resolved_at.is_(None)))
            )

    # --- loading views ----------------------------------------------------------------

    def load_all(self) -> list[TaskView]:
        views = self._views(
            select(*VIEW_COLUMNS, TaskRow.next_check_at).where(TaskRow.gone_at.is_(None))
        )
        self._connect(views)
        return views

    def load_ids(self, task_ids: Iterable[int]) -> list[TaskView]:
        views: list[TaskView] = []
        for chunk in _chunks(sorted(task_ids)):
            views.extend(
                self._views(
                    select(*VIEW_COLUMNS, TaskRow.next_check_at).where(
                        TaskRow.id.in_(chunk), TaskRow.gone_at.is_(None)
                    )
                )
            )
        self._connect(views)
        return views

    def _views(self, query: Any) -> list[TaskView]:
        with self.ledger.sessions() as session:
            # Core, not the ORM: plain rows are all a view needs, and much cheaper.
            rows = session.connection().execute(query).all()
        views = []
        for row in rows:
            views.append(_view(row))
            self._stored_next[row.id] = row.next_check_at
        return views

    def _connect(self, views: list[TaskView], depth: int = 6) -> None:
        """Resolve blockers (following the chain) and same-work links, across sources."""
        by_key: dict[str, TaskView] = {view.key: view for view in views}
        pending = list(views)
        for _ in range(depth):
            wanted = {k for v in pending for k in (*v.blocked_by, *v.links) if k not in by_key}
            if not wanted:
                break
            loaded = self._by_keys(wanted)
            by_key.update((view.key, view) for view in loaded)
            pending = loaded
        reverse = self._same_work_pointing_at({v.id for v in views})
        by_id = {view.id: view for view in by_key.values()}
        for view in by_key.values():
            view.blockers = [by_key[k] for k in view.blocked_by if k in by_key]
            view.same_work = [by_key[k] for k in view.links if k in by_key]
        for target_id, source_ids in reverse.items():
            target = by_id.get(target_id)
            if target is None:
                continue
            extra = [i for i in source_ids if i not in {w.id for w in target.same_work}]
            target.same_work.extend(self._by_ids(extra, by_id))

    def _by_keys(self, keys: set[str]) -> list[TaskView]:
        views: list[TaskView] = []
        with self.ledger.sessions() as session:
            for chunk in _chunks(sorted(keys)):
                query = select(*VIEW_COLUMNS).where(
                    TaskRow.key.in_(chunk), TaskRow.gone_at.is_(None)
                )
                views.extend(_view(row) for row in session.execute(query))
        return views

    def _by_ids(self, ids: list[int], known: dict[int, TaskView]) -> list[TaskView]:
        missing = [i for i in ids if i not in known]
        if missing:
            with self.ledger.sessions() as session:
                query = select(*VIEW_COLUMNS).where(TaskRow.id.in_(missing))
                for row in session.execute(query):
                    known[row.id] = _view(row)
        return [known[i] for i in ids if i in known]

    def _same_work_pointing_at(self, task_ids: set[int]) -> dict[int, list[int]]:
        reverse: dict[int, list[int]] = {}
        with self.ledger.sessions() as session:
            for chunk in _chunks(sorted(task_ids)):
                query = select(TaskLink.target_task_id, TaskLink.task_id).where(
                    TaskLink.target_task_id.in_(chunk), TaskLink.kind == "same_work"
                )
                for target, source in session.execute(query):
                    if target is not None:
                        reverse.setdefault(target, []).append(source)
        return reverse

    # --- recording ---------------------------------------------------------------------

    def record(
        self,
        findings: list[Finding],
        evaluated: set[int],
        rule_ids: set[str],
        now: datetime,
        *,
        full: bool,
    ) -> dict[str, RuleCounts]:
        counts: dict[str, RuleCounts] = {}
        found = {(f.rule_id, f.task_id): f for f in findings}
        with self.ledger.sessions.begin() as session:
            open_rows = self._open_violations(session, evaluated, full)
            still_open, resolved = [], []
            for row in open_rows:
                violation_id, rule_id, message = row.id, row.rule_id, row.message
                finding = found.pop((rule_id, row.task_id), None)
                if finding is None or rule_id not in rule_ids:
                    resolved.append(violation_id)
                    counts.setdefault(rule_id, RuleCounts()).resolved += 1
                elif finding.message != message:
                    session.execute(
                        update(Violation)
                        .where(Violation.id == violation_id)
                        .values(message=finding.message, last_seen=now)
                    )
                else:
                    still_open.append(violation_id)
            for chunk in _chunks(still_open):
                session.execute(
                    update(Violation).where(Violation.id.in_(chunk)).values(last_seen=now)
                )
            for chunk in _chunks(resolved):
                session.execute(
                    update(Violation).where(Violation.id.in_(chunk)).values(resolved_at=now)
                )
            if found:
                session.execute(
                    # `now` is bound once for the statement, not once per row.
                    VIOLATIONS.insert().values(
                        first_seen=literal(now, UTCDateTime()), last_seen=literal(now, UTCDateTime())
                    ),
                    [
                        {"rule_id": f.rule_id, "kind": f.kind, "task_id": f.task_id,
                         "severity": f.severity, "message": f.message}
                        for f in found.values()
                    ],
                )  # fmt: skip
            for finding in found.values():
                counts.setdefault(finding.rule_id, RuleCounts()).new += 1
            open_query = (
                select(Violation.rule_id, func.count())
                .where(Violation.resolved_at.is_(None))
                .group_by(Violation.rule_id)
            )
            for rule_id, count in session.execute(open_query):
                counts.setdefault(rule_id, RuleCounts()).open = count
        return counts

    def _open_violations(self, session: Any, evaluated: set[int], full: bool) -> list[Row[Any]]:
        columns = select(Violation.id, Violation.rule_id, Violation.task_id, Violation.message)
        open_only = columns.where(Violation.resolved_at.is_(None))
        if full:
            return list(session.execute(open_only).all())
        rows = []
        for chunk in _chunks(sorted(evaluated)):
            rows.extend(session.execute(open_only.where(Violation.task_id.in_(chunk))).all())
        return rows

    def set_next_checks(self, next_checks: dict[int, datetime | None]) -> None:
        """Store each task's next time-based check, writing only what moved."""
        moved = [
            {"task_id": task_id, "moment": moment}
            for task_id, moment in next_checks.items()
            if self._stored_next.get(task_id) != moment
        ]
        if not moved:
            return
        statement = (
            update(TASKS)
            .where(TASKS.c.id == bindparam("task_id"))
            .values(next_check_at=bindparam("moment"))
        )
        with self.ledger.sessions.begin() as session:
            session.connection().execute(statement, moved)


_LISTS = frozenset(("owners", "labels", "blocked_by", "links", "participants"))
_LIST_POSITIONS = [i for i, name in enumerate(VIEW_FIELDS) if name in _LISTS]
_DESCRIPTION = VIEW_FIELDS.index("description")


def _view(row: Any) -> TaskView:
    # Positional: VIEW_COLUMNS are in TaskView's field order (checked at import below).
    values = list(row[: len(VIEW_FIELDS)])
    for position in _LIST_POSITIONS:
        values[position] = values[position] or []
    values[_DESCRIPTION] = values[_DESCRIPTION] or ""
    return TaskView(*values)


assert tuple(TaskView.__dataclass_fields__)[: len(VIEW_FIELDS)] == VIEW_FIELDS


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]
