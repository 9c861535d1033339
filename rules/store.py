"""The rules engine's reads and writes on the ledger, in batches.

Loads task views (the columns rules need, never raw payloads) with their
blockers and same-work links resolved across sources, and records violations:
new ones inserted, confirmed ones stamped `last_seen`, vanished ones resolved.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import chain
from operator import itemgetter
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Connection, Row, Table, bindparam, func, null, select, type_coerce, update
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.types import NullType

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
# Untyped, so rows come back as the driver returns them and `_views_of` decodes them once,
# without SQLAlchemy's per-value result processors (most of a 100,000-task load).
RAW_COLUMNS = tuple(type_coerce(column, NullType()).label(column.key) for column in VIEW_COLUMNS)
RAW_NEXT_CHECK = type_coerce(TaskRow.next_check_at, NullType()).label("next_check_at")
# Fields no rule kind or expression variable reads, only reports: left out (NULL, so the
# view has the field's default) when views are loaded for rules alone.
REPORT_ONLY = frozenset(("url", "updated_at", "closed_at", "participants"))
RULE_COLUMNS = tuple(
    null().label(column.key) if column.key in REPORT_ONLY else column for column in RAW_COLUMNS
)
CHUNK = 5000  # rows fetched at a time


class Finding(NamedTuple):  # a tuple: a full evaluation makes 100,000s of them
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
    def __init__(self, ledger: Ledger, *, rules_only: bool = False) -> None:
        """`rules_only`: views without the REPORT_ONLY fields, which rules never read."""
        self.ledger = ledger
        self._columns = RULE_COLUMNS if rules_only else RAW_COLUMNS
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
        query = select(*self._columns, RAW_NEXT_CHECK).where(TaskRow.gone_at.is_(None))
        views = self._views(query)
        self._connect(views, complete=True)
        return views

    def load_ids(self, task_ids: Iterable[int]) -> list[TaskView]:
        views: list[TaskView] = []
        for chunk in _chunks(sorted(task_ids)):
            views.extend(
                self._views(
                    select(*self._columns, RAW_NEXT_CHECK).where(
                        TaskRow.id.in_(chunk), TaskRow.gone_at.is_(None)
                    )
                )
            )
        self._connect(views)
        return views

    def _views(self, query: Any) -> list[TaskView]:
        views = []
        with self.ledger.engine.connect() as connection:
            result = connection.execution_options(yield_per=CHUNK).execute(query)
            for rows in result.partitions():
                views.extend(_views_of(rows))
                self._stored_next.update(
                    zip([row[0] for row in rows], _moments([row[-1] for row in rows]), strict=True)
                )
        return views

    def _connect(self, views: list[TaskView], *, complete: bool = False, depth: int = 6) -> None:
        """Resolve blockers (following the chain) and same-work links, across sources.

        `complete`: the views are every live task, so there is no other to load by key.
        """
        by_key: dict[str, TaskView] = {view.key: view for view in views}
        pending = [] if complete else list(views)
        for _ in range(depth):
            wanted = {k for v in pending for k in (*v.blocked_by, *v.links) if k not in by_key}
            if not wanted:
                break
            loaded = self._by_keys(wanted)
            by_key.update((view.key, view) for view in loaded)
            pending = loaded
        reverse = self._same_work_pointing_at(None if complete else {v.id for v in views})
        by_id = {view.id: view for view in by_key.values()}
        for view in by_key.values():
            if view.blocked_by:  # else blockers is still the empty list the view came with
                view.blockers = [by_key[k] for k in view.blocked_by if k in by_key]
            if view.links:
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
                query = select(*self._columns).where(
                    TaskRow.key.in_(chunk), TaskRow.gone_at.is_(None)
                )
                views.extend(_views_of(session.execute(query).all()))
        return views

    def _by_ids(self, ids: list[int], known: dict[int, TaskView]) -> list[TaskView]:
        missing = [i for i in ids if i not in known]
        if missing:
            with self.ledger.sessions() as session:
                query = select(*self._columns).where(TaskRow.id.in_(missing))
                known.update((view.id, view) for view in _views_of(session.execute(query).all()))
        return [known[i] for i in ids if i in known]

    def _same_work_pointing_at(self, task_ids: set[int] | None) -> dict[int, list[int]]:
        """Same-work links pointing at these tasks (None: at any task), in link order."""
        query = (
            select(TaskLink.target_task_id, TaskLink.task_id)
            .where(TaskLink.kind == "same_work")
            .order_by(TaskLink.id)
        )
        chunks = [None] if task_ids is None else _chunks(sorted(task_ids))
        reverse: dict[int, list[int]] = {}
        with self.ledger.sessions() as session:
            for chunk in chunks:
                selected = (
                    query if chunk is None else query.where(TaskLink.target_task_id.in_(chunk))
                )
                for target, source in session.execute(selected):
                    if target is not None:
                        reverse.setdefault(target, []).append(source)
        return reverse

    # --- recording ---------------------------------------------------------------------

    def record(
        self,
        findings: list[Finding],
        next_checks: dict[int, datetime | None],
        evaluated: set[int],
        rule_ids: set[str],
        now: datetime,
        *,
        full: bool,
    ) -> dict[str, RuleCounts]:
        """Violations opened, confirmed and resolved, and the next checks, in one transaction."""
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
                stamp = _UTC.process_bind_param(now, self.ledger.engine.dialect)
                _insert_rows(
                    session.connection(),
                    VIOLATIONS,
                    (*Finding._fields, "first_seen", "last_seen"),
                    [(*finding, stamp, stamp) for finding in found.values()],
                )
            for finding in found.values():
                counts.setdefault(finding.rule_id, RuleCounts()).new += 1
            open_query = (
                select(Violation.rule_id, func.count())
                .where(Violation.resolved_at.is_(None))
                .group_by(Violation.rule_id)
            )
            for rule_id, count in session.execute(open_query):
                counts.setdefault(rule_id, RuleCounts()).open = count
            self._write_next_checks(session.connection(), next_checks)
        return counts

    def _open_violations(self, session: Any, evaluated: set[int], full: bool) -> list[Row[Any]]:
        columns = select(Violation.id, Violation.rule_id, Violation.task_id, Violation.message)
        if full:
            return list(session.execute(columns.where(Violation.resolved_at.is_(None))).all())
        # By task, and the resolved ones dropped here: asked for open ones of some tasks,
        # SQLite (no statistics) walks the index of every open violation instead.
        by_task = columns.add_columns(Violation.resolved_at.is_(None).label("open"))
        rows: list[Row[Any]] = []
        for chunk in _chunks(sorted(evaluated)):
            found = session.execute(by_task.where(Violation.task_id.in_(chunk)))
            rows.extend(row for row in found if row.open)
        return rows

    def _write_next_checks(
        self, connection: Connection, next_checks: dict[int, datetime | None]
    ) -> None:
        """Store each task's next time-based check, writing only what moved."""
        moved = [
            (task_id, moment)
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
        bind = _UTC.process_bind_param
        rows = [(task_id, bind(moment, connection.dialect)) for task_id, moment in moved]
        _executemany(connection, statement, ("task_id", "moment"), rows)


def _executemany(
    connection: Connection, statement: Any, names: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """One statement over many rows whose values are already as the driver takes them.

    SQLAlchemy's executemany builds and processes every row's parameters anew, most of
    the time of writing 100,000 violations; here the statement is compiled once for the
    connection's dialect and the rows go to the DB-API's executemany as they are.
    """
    compiled = statement.compile(dialect=connection.dialect, column_keys=list(names))
    params: list[Any]
    if compiled.positional:
        order = [names.index(name) for name in compiled.positiontup or ()]
        params = rows if order == sorted(order) else list(map(itemgetter(*order), rows))
    else:
        params = [dict(zip(names, row, strict=True)) for row in rows]
    connection.exec_driver_sql(str(compiled), params)


def _insert_rows(
    connection: Connection, table: Table, names: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    """Rows inserted many to a statement (`VALUES (…), (…), …`), values as the driver takes them.

    A third faster than an executemany of single-row inserts on SQLite, and fewer round
    trips on PostgreSQL. Statements stay under 999 bound values, SQLite's oldest limit.
    """
    dialect = connection.dialect
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}[dialect.paramstyle]
    quote = dialect.identifier_preparer
    columns = ", ".join(quote.quote(name) for name in names)
    head = f"INSERT INTO {quote.format_table(table)} ({columns}) VALUES "
    group = f"({', '.join([mark] * len(names))})"
    per = max(1, 999 // len(names))
    full = head + ", ".join([group] * per)
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        sql = full if len(chunk) == per else head + ", ".join([group] * len(chunk))
        connection.exec_driver_sql(sql, tuple(chain.from_iterable(chunk)))


_LISTS = frozenset(("owners", "labels", "blocked_by", "links", "participants"))
_MOMENTS = frozenset(("created_at", "updated_at", "closed_at", "last_activity_at"))
_LIST_POSITIONS = [i for i, name in enumerate(VIEW_FIELDS) if name in _LISTS]
_MOMENT_POSITIONS = [i for i, name in enumerate(VIEW_FIELDS) if name in _MOMENTS]
_DUE = VIEW_FIELDS.index("due")
_DESCRIPTION = VIEW_FIELDS.index("description")
_UTC = UTCDateTime()
_NO_DIALECT = DefaultDialect()  # UTCDateTime reads values the same on every dialect
_loads = orjson.loads  # as the engine's json_deserializer (syncd.ledger.db)
_fromisoformat = datetime.fromisoformat


def _views_of(rows: Sequence[Any]) -> list[TaskView]:
    """Views from untyped rows, decoded as the column types would (see RAW_COLUMNS).

    Column by column: one comprehension per column rather than a call per value.
    """
    if not rows:
        return []
    # Positional: VIEW_COLUMNS are in TaskView's field order (checked at import below).
    columns: list[Sequence[Any]] = []
    columns.extend(zip(*rows, strict=True))
    del columns[len(VIEW_FIELDS) :]
    for position in _LIST_POSITIONS:
        columns[position] = [
            (_loads(v) if v.__class__ is str else v) or [] for v in columns[position]
        ]
    for position in _MOMENT_POSITIONS:
        columns[position] = _moments(columns[position])
    columns[_DUE] = [date.fromisoformat(v) if v.__class__ is str else v for v in columns[_DUE]]
    columns[_DESCRIPTION] = [v or "" for v in columns[_DESCRIPTION]]
    return list(map(TaskView, *columns))


def _moments(values: Sequence[Any]) -> list[datetime | None]:
    """Stored moments as UTCDateTime reads them; SQLite's naive-UTC text takes a fast path."""
    try:
        return [None if v is None else _fromisoformat(v + "+00:00") for v in values]
    except (TypeError, ValueError):  # PostgreSQL's datetimes, or text of another shape
        return [_UTC.process_result_value(v, _NO_DIALECT) for v in values]


assert tuple(TaskView.__dataclass_fields__)[: len(VIEW_FIELDS)] == VIEW_FIELDS


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), BATCH):
        yield items[start : start + BATCH]
