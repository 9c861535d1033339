"""Deadline-risk forecasts of the ledger's open work, kept incremental.

The ledger -> model adapter. A `RiskBoard` holds, per ledger and per process:

- a snapshot of every task (the rules engine's `TaskView`s: a full evaluation hands
  over all of them, an incremental one the changed ones; a cold board loads them once),
  plus each task's first move into progress and last move to done (status history);
- the `Evidence` (finished work, open work, the team's deadline record), rebuilt once a
  day (`evidence_day`): the day is the forecasts' time threshold;
- each task's last `Forecast` with the `TaskAtMoment` it came from: a task is simulated
  again only when its inputs (owner, status, deadline, queue position, blockers,
  subtasks, hours, deadline moves, last activity) changed or the day changed.

A `TaskAtMoment` is built from the ledger: the owner (first of `owners`), the team
(else the project), status (blocked when an open blocker exists), created / started
(first move into progress), the deadline (the due date, else the earliest release date
among the fix versions / milestone the field history holds), priority rank (high 1,
medium 2, low 3), estimate / logged hours, open blockers (`blocked_by`) and open subtasks
(`parent`) as `OpenItem`s, `ahead` (the owner's open work before it by priority,
deadline and age), the last activity, and the deadline moves
(`Ledger.deadline_moves`: the due date moved from one date to another).

The cache lives in memory (no migration may add a table for it): `syncd run` keeps it
between cycles; a one-shot `syncd reconcile` builds it once per process. The rules'
`next_check_at` brings every forecast task back at the start of the next day.
"""

from __future__ import annotations

import weakref
from bisect import bisect_left, insort
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select

from syncd.forecast.model import (
    DEFAULT_PARAMS,
    DeadlineOutcome,
    DeadlineSource,
    Evidence,
    FinishedWork,
    Forecast,
    ModelParams,
    OpenItem,
    OpenWork,
    TaskAtMoment,
    end_of_day,
    forecast_many,
)
from syncd.ledger.models import StatusHistory, TaskRow
from syncd.ledger.repository import Ledger
from syncd.rules.view import CLOSED, TaskView

__all__ = ["PRIORITY_RANK", "RiskBoard", "TaskRisk", "board_for", "forget_boards"]

PRIORITY_RANK = {"high": 1, "medium": 2, "low": 3}
_DONE = ("done", "verified")
_QUEUE_LAST = (99, date.max)

_ALL_KNOWN = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TaskRisk:
    """One open task's forecast, with the inputs it was made from."""

    task_id: int
    moment: TaskAtMoment
    forecast: Forecast
    as_of: datetime


@dataclass
class _Marks:
    started: datetime | None = None  # first move into progress
    finished: datetime | None = None  # last move to done / verified


@dataclass
class RiskBoard:
    ledger: Ledger
    params: ModelParams = DEFAULT_PARAMS
    seed: int = 0
    # Deadline moves and fix-version / milestone dates are read as known at this moment
    # (None: everything the field history holds).
    history_as_of: datetime | None = None
    views: dict[int, TaskView] = field(default_factory=dict)
    marks: dict[int, _Marks] = field(default_factory=dict)
    moves: dict[int, int] = field(default_factory=dict)
    version_dates: dict[int, date] = field(default_factory=dict)
    evidence: Evidence | None = None
    evidence_day: date | None = None
    cache: dict[int, TaskRisk] = field(default_factory=dict)
    simulated: int = 0  # tasks simulated so far: what the cache saves is visible
    revision: int = -1  # the ledger revision the snapshot reflects
    _by_key: dict[str, int] = field(default_factory=dict)
    _children: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    _blocking: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    # Per owner, the rank keys of their open work, sorted (see `count_ahead`), and a
    # version that moves whenever that queue changes.
    _queues: dict[str, list[tuple[int, date, datetime, int]]] = field(default_factory=dict)
    _queue_versions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    # Each task's last inputs, with the queue version they were built at.
    _moments: dict[int, tuple[TaskAtMoment, int]] = field(default_factory=dict)

    # --- keeping the snapshot -----------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self.revision >= 0

    def sync(self, views: Sequence[TaskView], revision: int, *, complete: bool) -> None:
        """Brings the snapshot to `revision`. `views`: every task (`complete`, a full
        evaluation) or the evaluated ones, which include every task changed since the
        last evaluation. Only rows written after the snapshot's revision are read again."""
        if not self.loaded:
            if complete:
                self.replace_all(views)
            else:
                from syncd.rules.store import RuleStore

                self.replace_all(RuleStore(self.ledger, rules_only=True).load_all())
        elif revision != self.revision:
            changed = self._changed_since(self.revision, revision)
            self.update([view for view in views if view.id in changed])
        self.revision = revision

    def _changed_since(self, after: int, until: int) -> set[int]:
        from syncd.rules.store import RuleStore

        return RuleStore(self.ledger).changed_between(after, until)

    def replace_all(self, views: Sequence[TaskView]) -> None:
        self.views = {view.id: view for view in views}
        self._by_key = {}
        self._children = defaultdict(set)
        self._blocking = defaultdict(set)
        self._moments = {}
        for view in views:
            self._index(view)
        self.marks = self._read_marks(None)
        self.moves, self.version_dates = {}, {}
        self._read_history(list(self.views))
        queues: dict[str, list[tuple[int, date, datetime, int]]] = defaultdict(list)
        for view in views:
            owner = _owner(view)
            if owner is not None and not view.closed:
                queues[owner].append(_queue_entry(view))
        for rows in queues.values():
            rows.sort()
        self._queues = dict(queues)
        for owner in self._queues:
            self._queue_versions[owner] += 1

    def update(self, views: Iterable[TaskView]) -> None:
        """Tasks that changed: their rows, marks and slips read again; the inputs of the
        tasks they block, their parent and their owners' queues marked stale."""
        changed = []
        for view in views:
            old = self.views.get(view.id)
            if old is not None:
                self._unindex(old)
            self.views[view.id] = view
            self._index(view)
            changed.append(view.id)
            for key in {view.key, *(() if old is None else (old.key,))}:
                for stale in (*self._blocking.get(key, ()), self._by_key.get(view.parent or "")):
                    if stale is not None:
                        self._moments.pop(stale, None)
            if old is not None and old.parent and old.parent != view.parent:
                self._moments.pop(self._by_key.get(old.parent, -1), None)
            self._moments.pop(view.id, None)
        if not changed:
            return
        self.marks.update(self._read_marks(changed))
        self._read_history(changed)

    def _unindex(self, view: TaskView) -> None:
        if view.parent:
            self._children[view.parent].discard(view.id)
        for key in view.blocked_by:
            self._blocking[key].discard(view.id)
        owner = _owner(view)
        if owner is not None and not view.closed:
            queue = self._queues.get(owner, [])
            entry = _queue_entry(view)
            at = bisect_left(queue, entry)
            if at < len(queue) and queue[at] == entry:
                del queue[at]
                self._queue_versions[owner] += 1

    def _index(self, view: TaskView) -> None:
        self._by_key.setdefault(view.key, view.id)
        if view.parent:
            self._children[view.parent].add(view.id)
        for key in view.blocked_by:
            self._blocking[key].add(view.id)
        owner = _owner(view)
        if owner is not None and not view.closed and self.loaded:
            insort(self._queues.setdefault(owner, []), _queue_entry(view))
            self._queue_versions[owner] += 1

    def _read_marks(self, ids: Sequence[int] | None) -> dict[int, _Marks]:
        query = (
            select(StatusHistory.task_id, StatusHistory.to_status, func.min(StatusHistory.at),
                   func.max(StatusHistory.at))
            .where(StatusHistory.to_status.in_(("in_progress", *_DONE)))
            .group_by(StatusHistory.task_id, StatusHistory.to_status)
        )  # fmt: skip
        marks: dict[int, _Marks] = {i: _Marks() for i in ids} if ids is not None else {}
        chunks = [None] if ids is None else [ids[i : i + 500] for i in range(0, len(ids), 500)]
        with self.ledger.sessions() as session:
            for chunk in chunks:
                scoped = query if chunk is None else query.where(StatusHistory.task_id.in_(chunk))
                for task_id, status, first, last in session.execute(scoped):
                    mark = marks.setdefault(task_id, _Marks())
                    if status == "in_progress":
                        mark.started = _utc(first)
                    else:
                        moment = _utc(last)
                        if mark.finished is None or (moment and moment > mark.finished):
                            mark.finished = moment
            # Work that arrived already done has no transition of its own: its closed_at.
            # Asked by id alone: with the status in the query SQLite walks the status index.
            closed = select(TaskRow.id, TaskRow.status, TaskRow.closed_at)
            for chunk in chunks:
                scoped_closed = (
                    closed.where(TaskRow.status.in_(_DONE))
                    if chunk is None
                    else closed.where(TaskRow.id.in_(chunk))
                )
                for task_id, status, closed_at in session.execute(scoped_closed):
                    if status not in _DONE or closed_at is None:
                        continue
                    mark = marks.setdefault(task_id, _Marks())
                    if mark.finished is None:
                        mark.finished = _utc(closed_at)
        return marks

    def _read_history(self, ids: Sequence[int]) -> None:
        """Deadline moves (`Ledger.deadline_moves`) and each task's earliest fix-version or
        milestone date (the latest `fix_versions` value of the field history)."""
        moment = self.history_as_of or _ALL_KNOWN
        for task_id in ids:
            self.moves.pop(task_id, None)
            self.version_dates.pop(task_id, None)
        if not ids:
            return
        # One read of the field history for both (`Ledger.deadline_moves` counts the same
        # way: a due date that moved from one date to another, not one first set or cleared).
        for task_id, rows in self.ledger.field_history(ids, ["due", "fix_versions"]).items():
            last_due: Any = None
            versions: Any = None
            for row in rows:
                if row.changed_at > moment:
                    break
                if row.field == "fix_versions":
                    versions = row.value
                    continue
                if last_due is not None and row.value is not None and row.value != last_due:
                    self.moves[task_id] = self.moves.get(task_id, 0) + 1
                if row.value is not None:
                    last_due = row.value
            dates = [
                date.fromisoformat(v["date"])
                for v in versions or []
                if isinstance(v, dict) and isinstance(v.get("date"), str)
            ]
            if dates:
                self.version_dates[task_id] = min(dates)

    def deadline(self, view: TaskView) -> tuple[date, DeadlineSource] | None:
        """The due date, else the earliest fix-version / milestone release date."""
        if view.due is not None:
            return view.due, "due"
        released = self.version_dates.get(view.id)
        if released is None:
            return None
        return released, "milestone" if "#" in view.key else "fix_version"

    # --- evidence -----------------------------------------------------------------

    def evidence_at(self, now: datetime) -> Evidence:
        """The team's history as of the start of today: rebuilt once a day."""
        day = now.date()
        if self.evidence is None or self.evidence_day != day:
            self.evidence = self._build_evidence(datetime.combine(day, time(0), tzinfo=UTC))
            self.evidence_day = day
            self.cache.clear()  # new evidence: every forecast is made again
        return self.evidence

    def _build_evidence(self, as_of: datetime) -> Evidence:
        finished: list[FinishedWork] = []
        still_open: list[OpenWork] = []
        outcomes: list[DeadlineOutcome] = []
        for view in self.views.values():
            created = view.created_at
            if created is None:
                continue
            mark = self.marks.get(view.id) or _Marks()
            if view.status in _DONE and mark.finished is not None:
                finished.append(
                    FinishedWork(view.key, _owner(view), _team(view), created, mark.started,
                                 mark.finished, view.estimate_hours, view.logged_hours)
                )  # fmt: skip
                if view.due is not None:
                    closes = end_of_day(view.due)
                    missed = mark.finished > closes
                    decided = closes if missed else mark.finished
                    outcomes.append(
                        DeadlineOutcome(view.key, _team(view), view.due, decided, missed)
                    )
            elif view.status not in CLOSED:
                still_open.append(_open_work(view, mark))
                if view.due is not None and end_of_day(view.due) < as_of:
                    outcomes.append(
                        DeadlineOutcome(view.key, _team(view), view.due, end_of_day(view.due), True)
                    )
        return Evidence.from_finished(finished, as_of, self.params, still_open, outcomes)

    # --- forecasts ----------------------------------------------------------------

    def forecasts(self, task_ids: Iterable[int], now: datetime) -> dict[int, TaskRisk]:
        """Forecasts for these tasks (open, with a due date); cached ones reused when their
        inputs are the same and the day has not changed."""
        evidence = self.evidence_at(now)
        # One pass, locals bound: a full evaluation asks for every task of the ledger.
        views, moments, versions = self.views, self._moments, self._queue_versions
        cache, version_dates, closed = self.cache, self.version_dates, CLOSED
        wanted: dict[int, TaskAtMoment] = {}
        stale: list[int] = []
        for task_id in task_ids:
            view = views.get(task_id)
            if view is None or view.status in closed or view.created_at is None:
                continue
            if view.due is None and task_id not in version_dates:
                continue
            owners = view.owners
            known = moments.get(task_id)
            if known is not None and known[1] == (versions[owners[0]] if owners else 0):
                moment = known[0]
            else:
                moment = self.moment(view)
            wanted[task_id] = moment
            made = cache.get(task_id)
            if made is None or (made.moment is not moment and made.moment != moment):
                stale.append(task_id)
        if stale:
            fresh = forecast_many([wanted[i] for i in stale], evidence, now, seed=self.seed,
                                  params=self.params)  # fmt: skip
            self.simulated += len(stale)
            for task_id, made_one in zip(stale, fresh, strict=True):
                cache[task_id] = TaskRisk(task_id, wanted[task_id], made_one, now)
        return {i: cache[i] for i in wanted}

    def moment(self, view: TaskView) -> TaskAtMoment:
        """The task's inputs: rebuilt when the task, what it waits for or its owner's
        queue changed."""
        owner = _owner(view)
        version = self._queue_versions[owner] if owner is not None else 0
        known = self._moments.get(view.id)
        if known is not None and known[1] == version:
            return known[0]
        built = self._build_moment(view, owner)
        self._moments[view.id] = (built, version)
        return built

    def _build_moment(self, view: TaskView, owner: str | None) -> TaskAtMoment:
        deadline = self.deadline(view)
        assert deadline is not None and view.created_at is not None
        mark = self.marks.get(view.id) or _Marks()
        blockers = tuple(self._item(j) for j in self._open_ids(view.blocked_by) if j != view.id)
        subtasks = tuple(
            self._item(j) for j in sorted(self._children.get(view.key, ()))
            if not self.views[j].closed
        )  # fmt: skip
        in_progress = view.status == "in_progress"
        queue = self._queues.get(owner, []) if owner is not None else []
        return TaskAtMoment(
            key=view.key,
            owner=owner,
            team=_team(view),
            status="blocked" if blockers else ("in_progress" if in_progress else "open"),
            created_at=view.created_at,
            started_at=mark.started if in_progress else None,
            deadline=deadline[0],
            deadline_source=deadline[1],
            priority_rank=PRIORITY_RANK.get(view.priority or ""),
            estimate_hours=view.estimate_hours,
            logged_hours=view.logged_hours,
            blockers=blockers,
            open_subtasks=subtasks,
            deadline_moves=self.moves.get(view.id, 0),
            last_activity=view.last_activity_at,
            ahead=bisect_left(queue, _queue_entry(view)),
        )

    def _open_ids(self, keys: Iterable[str]) -> list[int]:
        found = (self._by_key.get(key) for key in sorted(set(keys)))
        return [j for j in found if j is not None and not self.views[j].closed]

    def _item(self, task_id: int) -> OpenItem:
        view = self.views[task_id]
        mark = self.marks.get(task_id) or _Marks()
        started = mark.started if view.status == "in_progress" else None
        return OpenItem(view.key, view.created_at or _EPOCH, started, _owner(view))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _rank(view: TaskView) -> tuple[int, date, datetime]:
    return (
        PRIORITY_RANK.get(view.priority or "", _QUEUE_LAST[0]),
        view.due or _QUEUE_LAST[1],
        view.created_at or _EPOCH,
    )


def _queue_entry(view: TaskView) -> tuple[int, date, datetime, int]:
    return (*_rank(view), view.id)


def _owner(view: TaskView) -> str | None:
    return view.owners[0] if view.owners else None


def _team(view: TaskView) -> str:
    return view.team or view.project


def _open_work(view: TaskView, mark: _Marks) -> OpenWork:
    return OpenWork(
        view.key, _owner(view), _team(view), PRIORITY_RANK.get(view.priority or ""), view.due,
        view.created_at or _EPOCH, mark.started if view.status == "in_progress" else None,
    )  # fmt: skip


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_BOARDS: weakref.WeakKeyDictionary[Ledger, RiskBoard] = weakref.WeakKeyDictionary()


def board_for(ledger: Ledger) -> RiskBoard:
    """The process's board for this ledger (created cold)."""
    board = _BOARDS.get(ledger)
    if board is None:
        board = _BOARDS[ledger] = RiskBoard(ledger)
    return board


def forget_boards() -> None:
    _BOARDS.clear()


def start_of_next_day(now: datetime) -> datetime:
    return datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=UTC)
