"""Reading Jira changelog values, shared by the point-in-time replay (`history.py`) and the
ledger's field history (`fields.py`); no forecasting imports, so a sync stays light.

Each field's value at moment t is its current value rolled back through every changelog
item dated after t, using `from` / `fromString` (old Jira puts the value only in
`fromString`, e.g. "2009-07-14 00:00:00.0" for a due date).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar

T = TypeVar("T")

# Phrases, read from this side, meaning "this issue waits for the other one".
_WAITS_FOR = ("is blocked by", "depends on")
_SECONDS_PER_HOUR = 3600.0

_Item = tuple[datetime, Mapping[str, Any]]


def roll_back(current: T, items: Sequence[_Item], read: Callable[[Any, Any], T]) -> list[T]:
    """The value before the first item, then after each item (oldest first): before each
    item, the field held the item's `from`."""
    values = [current]
    value = current
    for _, item in reversed(items):
        value = read(item.get("from"), item.get("fromString"))
        values.append(value)
    return list(reversed(values))


def roll_back_set(
    current: frozenset[str],
    items: Sequence[_Item],
    member: Callable[[Mapping[str, Any], str], str | None],
) -> list[frozenset[str]]:
    """Set fields: undo each item by removing what it added and restoring what it removed."""
    values = [current]
    value = current
    for _, item in reversed(items):
        added, removed = member(item, "to"), member(item, "from")
        value = (value - {added} if added else value) | ({removed} if removed else set())
        values.append(value)
    return list(reversed(values))


def _waited_key(item: Mapping[str, Any], side: str) -> str | None:
    """A Link item's issue key when its text reads "this issue depends on / is blocked by"."""
    key, text = item.get(side), item.get(f"{side}String")
    if not isinstance(key, str) or not isinstance(text, str):
        return None
    return key if any(phrase in text.casefold() for phrase in _WAITS_FOR) else None


def _waits_for(fields: Mapping[str, Any]) -> frozenset[str]:
    keys: set[str] = set()
    for link in fields.get("issuelinks") or []:
        link_type = link.get("type") or {}
        for side, phrase in (("inwardIssue", "inward"), ("outwardIssue", "outward")):
            other = link.get(side)
            if (
                isinstance(other, Mapping)
                and str(link_type.get(phrase, "")).casefold() in _WAITS_FOR
            ):
                keys.add(str(other.get("key")))
    return frozenset(keys)


def _utc(stamp: datetime | None) -> datetime:
    if stamp is None:
        raise ValueError("an issue has no creation time")
    return stamp.astimezone(UTC)


def _name(value: object) -> str | None:
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        return str(value["name"])
    return None


def _user(value: object) -> str | None:
    if isinstance(value, Mapping):
        for field in ("accountId", "name", "key"):
            if isinstance(value.get(field), str):
                return str(value[field])
    return None


def _date(value: object) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _changelog_date(raw: object, text: object) -> date | None:
    return _date(raw) or _date(text)  # old Jira: only "2009-07-14 00:00:00.0" in fromString


def _hours(seconds: object) -> float | None:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    return seconds / _SECONDS_PER_HOUR


def _changelog_hours(raw: object, text: object) -> float | None:
    for value in (raw, text):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value) / _SECONDS_PER_HOUR
    return None


def _parent(fields: Mapping[str, Any]) -> str | None:
    parent = fields.get("parent")
    if isinstance(parent, Mapping) and isinstance(parent.get("key"), str):
        return str(parent["key"])
    return None
