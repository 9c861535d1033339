"""Field history rows: what a task carries (`Task.field_changes`) plus what syncd observed.

Kept apart from the repository so the ingest path and the 0004 backfill write the same
rows. Values are in the JSON form documented at `syncd.model.HISTORY_FIELDS`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from syncd.model import HISTORY_FIELDS, FieldChange, Task

__all__ = ["current_values", "field_history_rows", "task_values"]

_Latest = Mapping[str, tuple[datetime, Any]]


def task_values(task: Task) -> dict[str, Any]:
    """The task's current value of each tracked field it knows, in the history's JSON form."""
    values: dict[str, Any] = {
        "due": task.due.isoformat() if task.due else None,
        "owners": list(task.owners),
        "estimate_hours": task.estimate_hours,
        "logged_hours": task.logged_hours,
        "priority": task.priority.value if task.priority else None,
    }
    if task.fix_versions is not None:
        values["fix_versions"] = sorted(task.fix_versions, key=lambda v: str(v.get("id")))
    return values


def current_values(rows: Iterable[Any]) -> dict[int, dict[str, tuple[datetime, Any]]]:
    """Rows with task_id, field, changed_at, value, in (changed_at, id) order -> the latest."""
    latest: dict[int, dict[str, tuple[datetime, Any]]] = {}
    for row in rows:
        latest.setdefault(row.task_id, {})[row.field] = (row.changed_at, row.value)
    return latest


def field_history_rows(
    task_id: int, task: Task, latest: _Latest, now: datetime, *, observe: bool = True
) -> list[dict[str, Any]]:
    """Rows for the changes `task` carries, and (with `observe`) one observed change, dated
    `now`, per field whose current value differs from the latest one known, carried
    changes included."""
    known = dict(latest)
    rows = []
    for change in task.field_changes:
        if change.field not in HISTORY_FIELDS:
            raise ValueError(f"{task.key}: {change.field!r} is not a tracked field")
        rows.append(_row(task_id, change, now))
        at = change.at or now
        if change.field not in known or known[change.field][0] <= at:
            known[change.field] = (at, change.value)
    if not observe:
        return rows
    for name, value in task_values(task).items():
        previous = known.get(name)
        if _same(previous[1] if previous else None, value):
            continue
        observed = FieldChange(name, value, f"seen {now.isoformat()}", None)
        rows.append(_row(task_id, observed, now))
    return rows


def _row(task_id: int, change: FieldChange, now: datetime) -> dict[str, Any]:
    if change.key == "initial":
        origin = "initial"
    else:
        origin = "source" if change.at is not None else "observed"
    return {
        "task_id": task_id,
        "field": change.field,
        "value": change.value,
        "changed_at": change.at or now,
        "recorded_at": now,
        "origin": origin,
        "change_key": change.key[:200],
        "changed_by": change.by,
    }


def _same(old: Any, new: Any) -> bool:
    """Equal values; an empty list and null are alike (no owners, no versions)."""
    return bool(_none_if_empty(old) == _none_if_empty(new))


def _none_if_empty(value: Any) -> Any:
    return None if value == [] else value
