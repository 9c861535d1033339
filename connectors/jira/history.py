"""A Jira export (REST v2/v3 issues with `expand=changelog`) as point-in-time histories.

Each field's value at moment t is its current value rolled back through every changelog
item dated after t, using `from` / `fromString` (old Jira puts the value only in
`fromString`, e.g. "2009-07-14 00:00:00.0" for a due date); an item dated exactly t is
known at t. The result is source-neutral (`syncd.forecast.timeline`), for the forecast
backtest and anything else that replays history.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson

from syncd.connectors.jira.changelog import (
    _changelog_date,
    _changelog_hours,
    _date,
    _hours,
    _name,
    _parent,
    _user,
    _utc,
    _waited_key,
    _waits_for,
)
from syncd.connectors.jira.mapping import stock_status_kind
from syncd.connectors.jira.settings import DEFAULT_PRIORITY_MAP
from syncd.connectors.payload import timestamp
from syncd.forecast.timeline import BEGINNING, History, Steps, TaskTimeline
from syncd.model import Priority

__all__ = ["history_from_issues", "read_export"]

T = TypeVar("T")

# The contract's done statuses beside those an export marks with category "done".
_ALWAYS_DONE = frozenset({"resolved", "closed", "done"})
_PRIORITY_RANK = {Priority.HIGH: 1, Priority.MEDIUM: 2, Priority.LOW: 3}

_Item = tuple[datetime, Mapping[str, Any]]


def read_export(path: Path) -> list[dict[str, Any]]:
    """One issue per line, `.gz` allowed; blank lines are skipped."""
    opener: Callable[..., Any] = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as lines:
        return [orjson.loads(line) for line in lines if line.strip()]


def history_from_issues(issues: Sequence[Mapping[str, Any]]) -> History:
    categories = _status_categories(issues)
    done = frozenset(name for name, key in categories.items() if key == "done") | _ALWAYS_DONE
    in_progress = frozenset(
        name
        for name in set(categories) | _changelog_statuses(issues)
        if categories.get(name, stock_status_kind(name)) == "indeterminate"
    )
    timelines = [_timeline(issue) for issue in issues]
    stamps = [stamp for issue in issues for stamp in _all_stamps(issue)]
    return History(
        tasks=timelines,
        done_statuses=done,
        in_progress_statuses=in_progress,
        version_dates=_version_dates(issues),
        earliest=min(t.created_at for t in timelines),
        latest=max(stamps),
    )


# --- one issue -------------------------------------------------------------------------


def _timeline(issue: Mapping[str, Any]) -> TaskTimeline:
    fields: Mapping[str, Any] = issue["fields"]
    created = _utc(timestamp(fields, "created"))
    items = _items(issue)
    key = str(issue["key"])

    def scalar(name: str, current: T, read: Callable[[Any, Any], T]) -> Steps[T]:
        return _roll_back_scalar(current, _of(items, name), read)

    status = scalar("status", _name(fields.get("status")) or "", lambda raw, text: text or "")
    resolution = scalar("resolution", _name(fields.get("resolution")), lambda raw, text: text)
    owner = scalar("assignee", _user(fields.get("assignee")), lambda raw, text: raw)
    due = scalar("duedate", _date(fields.get("duedate")), _changelog_date)
    priority = scalar(
        "priority", _rank(_name(fields.get("priority"))), lambda raw, text: _rank(text)
    )
    estimate = scalar(
        "timeoriginalestimate", _hours(fields.get("timeoriginalestimate")), _changelog_hours
    )
    if not _of(items, "timeoriginalestimate") and fields.get("timeoriginalestimate") is None:
        estimate = scalar("timeestimate", _hours(fields.get("timeestimate")), _changelog_hours)
    logged = scalar("timespent", _hours(fields.get("timespent")), _changelog_hours)
    parent = scalar("Parent", _parent(fields), lambda raw, text: text)
    versions = _roll_back_set(
        frozenset(str(v["id"]) for v in fields.get("fixVersions") or [] if "id" in v),
        _of(items, "Fix Version"),
        lambda item, side: item.get(side),
    )
    blocked_by = _roll_back_set(_waits_for(fields), _of(items, "Link"), _waited_key)
    return TaskTimeline(
        key=key,
        team=_project(issue, fields),
        created_at=created,
        status=status,
        resolution=resolution,
        owner=owner,
        due=due,
        fix_versions=versions,
        priority_rank=priority,
        estimate_hours=estimate,
        logged_hours=logged,
        blocked_by=blocked_by,
        parent=parent,
        activity=tuple(sorted(_activity(issue))),
        final_resolution=resolution.values[-1],
    )


def _items(issue: Mapping[str, Any]) -> list[_Item]:
    """Every changelog item with its time, oldest first (stable within one history)."""
    histories = (issue.get("changelog") or {}).get("histories") or []
    out: list[_Item] = []
    for history in histories:
        at = timestamp(history, "created")
        if at is None:
            continue
        out.extend((_utc(at), item) for item in history.get("items") or [])
    out.sort(key=lambda pair: pair[0])
    return out


def _of(items: Sequence[_Item], field: str) -> list[_Item]:
    return [(at, item) for at, item in items if item.get("field") == field]


def _roll_back_scalar(
    current: T, items: Sequence[_Item], read: Callable[[Any, Any], T]
) -> Steps[T]:
    """Values from the newest back: before each item, the field held the item's `from`."""
    times: list[datetime] = []
    values: list[T] = []
    value = current
    for at, item in reversed(items):
        times.append(at)
        values.append(value)
        value = read(item.get("from"), item.get("fromString"))
    times.append(BEGINNING)
    values.append(value)
    return Steps(tuple(reversed(times)), tuple(reversed(values)))


def _roll_back_set(
    current: frozenset[str],
    items: Sequence[_Item],
    member: Callable[[Mapping[str, Any], str], str | None],
) -> Steps[frozenset[str]]:
    """Set fields: undo each item after t by removing what it added and restoring what it
    removed."""
    times: list[datetime] = []
    values: list[frozenset[str]] = []
    value = current
    for at, item in reversed(items):
        times.append(at)
        values.append(value)
        added, removed = member(item, "to"), member(item, "from")
        value = (value - {added} if added else value) | ({removed} if removed else set())
    times.append(BEGINNING)
    values.append(value)
    return Steps(tuple(reversed(times)), tuple(reversed(values)))


def _activity(issue: Mapping[str, Any]) -> Iterator[datetime]:
    fields: Mapping[str, Any] = issue["fields"]
    for history in (issue.get("changelog") or {}).get("histories") or []:
        if (at := timestamp(history, "created")) is not None:
            yield _utc(at)
    for comment in (fields.get("comment") or {}).get("comments") or []:
        if (at := timestamp(comment, "created")) is not None:
            yield _utc(at)
    for worklog in (fields.get("worklog") or {}).get("worklogs") or []:
        if (at := timestamp(worklog, "started") or timestamp(worklog, "created")) is not None:
            yield _utc(at)


def _all_stamps(issue: Mapping[str, Any]) -> Iterator[datetime]:
    fields: Mapping[str, Any] = issue["fields"]
    for name in ("created", "updated"):
        if (at := timestamp(fields, name)) is not None:
            yield _utc(at)
    yield from _activity(issue)
    for worklog in (fields.get("worklog") or {}).get("worklogs") or []:
        for name in ("created", "updated"):
            if (at := timestamp(worklog, name)) is not None:
                yield _utc(at)
    for comment in (fields.get("comment") or {}).get("comments") or []:
        if (at := timestamp(comment, "updated")) is not None:
            yield _utc(at)


# --- the export as a whole -------------------------------------------------------------


def _status_categories(issues: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Status name (casefolded) -> category key, wherever the export shows one: the issue's
    own status and those of the linked issues, subtasks and parent it embeds."""
    found: dict[str, str] = {}
    for issue in issues:
        fields = issue["fields"]
        embedded = [fields.get("parent"), *(fields.get("subtasks") or [])]
        for link in fields.get("issuelinks") or []:
            embedded += [link.get("inwardIssue"), link.get("outwardIssue")]
        statuses = [fields.get("status")] + [
            (other.get("fields") or {}).get("status")
            for other in embedded
            if isinstance(other, Mapping)
        ]
        for status in statuses:
            if isinstance(status, Mapping) and isinstance(status.get("name"), str):
                category = status.get("statusCategory")
                if isinstance(category, Mapping) and isinstance(category.get("key"), str):
                    found.setdefault(status["name"].casefold(), category["key"])
    return found


def _changelog_statuses(issues: Iterable[Mapping[str, Any]]) -> set[str]:
    names: set[str] = set()
    for issue in issues:
        for _, item in _of(_items(issue), "status"):
            for side in ("fromString", "toString"):
                if isinstance(item.get(side), str):
                    names.add(item[side].casefold())
    return names


def _version_dates(issues: Iterable[Mapping[str, Any]]) -> dict[str, date]:
    """Release date per version id wherever it appears (Jira keeps no history of them)."""
    dates: dict[str, date] = {}
    for issue in issues:
        for name in ("fixVersions", "versions"):
            for version in issue["fields"].get(name) or []:
                released = _date(version.get("releaseDate"))
                if released is not None and "id" in version:
                    dates.setdefault(str(version["id"]), released)
    return dates


# --- values ----------------------------------------------------------------------------


def _rank(name: str | None) -> int | None:
    if name is None:
        return None
    by_name = {raw.casefold(): level for raw, level in DEFAULT_PRIORITY_MAP.items()}
    level = by_name.get(name.casefold())
    return _PRIORITY_RANK[level] if level is not None else None


def _project(issue: Mapping[str, Any], fields: Mapping[str, Any]) -> str:
    project = fields.get("project")
    if isinstance(project, Mapping) and isinstance(project.get("key"), str):
        return str(project["key"])
    return str(issue["key"]).rsplit("-", 1)[0]
