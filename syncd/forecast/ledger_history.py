"""The ledger's own history as point-in-time timelines, for `syncd forecast backtest -c`.

Built from the tasks, their status history and their field history
(`Ledger.field_history`), so it replays the same way as a Jira export read through
`syncd.connectors.jira.history`:

- status at t: the current raw status rolled back through the status transitions after
  t (each transition's `from`), as the export rolls back its changelog;
- other fields: the recorded values, each from its `changed_at` on; a value recorded as
  the one the task was created with holds from the beginning;
- done statuses: "Resolved", "Closed", "Done" and every raw status the ledger stores for
  a done, verified or cancelled task; in-progress ones likewise;
- release dates: the `date` the fix version / milestone values carry;
- team: the task's team, else its key's project part ("OPS" of "OPS-12"), else its source.

Tasks marked gone are left out (their last state is not their outcome).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, TypeVar

from syncd.forecast.timeline import BEGINNING, History, Steps, TaskTimeline
from syncd.ledger.models import FieldHistory, StatusHistory, TaskRow
from syncd.ledger.repository import Ledger

__all__ = ["history_from_ledger"]

T = TypeVar("T")

_ALWAYS_DONE = frozenset({"resolved", "closed", "done"})
_DONE_KINDS = frozenset({"done", "verified", "cancelled"})
_PROGRESS_KINDS = frozenset({"in_progress", "blocked"})
_RANK = {"high": 1, "medium": 2, "low": 3}


def history_from_ledger(ledger: Ledger, sources: Iterable[str] = ()) -> History:
    rows = list(ledger.tasks(sources=sources))
    if not rows:
        raise ValueError("the ledger holds no tasks to replay")
    ids = [row.id for row in rows]
    statuses = ledger.status_histories(ids)
    fields = ledger.field_history(ids)
    timelines = [_timeline(row, statuses.get(row.id, []), fields.get(row.id, [])) for row in rows]
    done, progress = _status_kinds(rows, statuses)
    return History(
        tasks=timelines,
        done_statuses=done,
        in_progress_statuses=progress,
        version_dates=_version_dates(fields),
        earliest=min(t.created_at for t in timelines),
        latest=max(_stamps(rows, statuses, fields)),
    )


def _timeline(
    row: TaskRow, transitions: Sequence[StatusHistory], changes: Sequence[FieldHistory]
) -> TaskTimeline:
    by_field: dict[str, list[FieldHistory]] = {}
    for change in changes:
        by_field.setdefault(change.field, []).append(change)

    def steps(name: str, empty: T, read: Callable[[Any], T]) -> Steps[T]:
        return _steps(by_field.get(name, []), empty, read)

    resolution = steps("resolution", None, _str)
    return TaskTimeline(
        key=row.key,
        team=row.team or _project(row.key) or row.source,
        created_at=row.created_at or row.first_seen_at,
        status=_status_steps(row, transitions),
        resolution=resolution,
        owner=steps("owners", None, lambda v: str(v[0]) if v else None),
        due=steps("due", None, lambda v: date.fromisoformat(v) if v else None),
        fix_versions=steps("fix_versions", frozenset(), _version_ids),
        priority_rank=steps("priority", None, lambda v: _RANK.get(v) if v else None),
        estimate_hours=steps("estimate_hours", None, _float),
        logged_hours=steps("logged_hours", None, _float),
        blocked_by=steps("blocked_by", frozenset(), lambda v: frozenset(v or ())),
        parent=steps("parent", None, _str),
        activity=tuple(sorted(c.changed_at for c in by_field.get("activity", []))),
        final_resolution=resolution.values[-1],
    )


def _steps(rows: Sequence[FieldHistory], empty: T, read: Callable[[Any], T]) -> Steps[T]:
    """Recorded values in order; the creation value (origin "initial") holds from the start."""
    times: list[datetime] = [BEGINNING]
    values: list[T] = [empty]
    for row in rows:
        if row.origin == "initial" and len(times) == 1:
            values[0] = read(row.value)
            continue
        times.append(row.changed_at)
        values.append(read(row.value))
    return Steps(tuple(times), tuple(values))


def _status_steps(row: TaskRow, transitions: Sequence[StatusHistory]) -> Steps[str]:
    """The current raw status rolled back: before each transition, the task held its `from`."""
    current = row.status_raw or row.status
    times: list[datetime] = []
    values: list[str] = []
    for transition in reversed(transitions):
        times.append(transition.at)
        values.append(current)
        current = transition.from_raw or transition.from_status or ""
    times.append(BEGINNING)
    values.append(current)
    return Steps(tuple(reversed(times)), tuple(reversed(values)))


def _status_kinds(
    rows: Sequence[TaskRow], statuses: Mapping[int, Sequence[StatusHistory]]
) -> tuple[frozenset[str], frozenset[str]]:
    kinds: dict[str, str] = {}
    for row in rows:
        if row.status_raw:
            kinds.setdefault(row.status_raw.casefold(), row.status)
    for transitions in statuses.values():
        for transition in transitions:
            if transition.to_raw and transition.to_status:
                kinds.setdefault(transition.to_raw.casefold(), transition.to_status)
    done = frozenset(name for name, kind in kinds.items() if kind in _DONE_KINDS)
    progress = frozenset(name for name, kind in kinds.items() if kind in _PROGRESS_KINDS)
    return done | _ALWAYS_DONE, progress - _ALWAYS_DONE


def _version_dates(fields: Mapping[int, Sequence[FieldHistory]]) -> dict[str, date]:
    dates: dict[str, date] = {}
    for task_id in sorted(fields):
        for change in fields[task_id]:
            if change.field != "fix_versions":
                continue
            for version in change.value or []:
                if isinstance(version, Mapping) and version.get("date"):
                    dates.setdefault(str(version["id"]), date.fromisoformat(version["date"]))
    return dates


def _stamps(
    rows: Sequence[TaskRow],
    statuses: Mapping[int, Sequence[StatusHistory]],
    fields: Mapping[int, Sequence[FieldHistory]],
) -> Iterable[datetime]:
    """Every time the sources gave (syncd's own observation times are not source data)."""
    for row in rows:
        for stamp in (row.created_at, row.updated_at, row.closed_at, row.last_activity_at):
            if stamp is not None:
                yield stamp
    for transitions in statuses.values():
        yield from (t.at for t in transitions)
    for changes in fields.values():
        yield from (c.changed_at for c in changes if c.origin != "observed")


def _version_ids(value: Any) -> frozenset[str]:
    return frozenset(str(v["id"]) for v in value or () if isinstance(v, Mapping) and "id" in v)


def _project(key: str) -> str | None:
    project, dash, number = key.rpartition("-")
    return project if dash and project and number.isdigit() else None


def _str(value: Any) -> str | None:
    return str(value) if value is not None else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None
