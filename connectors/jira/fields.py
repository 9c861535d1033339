"""A Jira issue's field history as `FieldChange`s, for the ledger (`syncd.model.HISTORY_FIELDS`).

The values are those of the point-in-time replay (`history.py`): each field's current value
rolled back through the changelog, so a ledger filled from these rows replays exactly as the
export does. Each change is keyed by its changelog entry and item ("h<id>/<n>"); the value
the issue was created with is keyed "initial" and dated at creation; comments, changelog
entries and worklogs are `activity`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from syncd.connectors.jira.history import (
    _changelog_date,
    _changelog_hours,
    _date,
    _hours,
    _name,
    _parent,
    _roll_back_scalar,
    _roll_back_set,
    _user,
    _utc,
    _waited_key,
    _waits_for,
)
from syncd.connectors.jira.settings import DEFAULT_PRIORITY_MAP
from syncd.connectors.payload import timestamp
from syncd.forecast.timeline import Steps
from syncd.model import FieldChange, Priority

__all__ = ["current_fix_versions", "issue_field_changes"]

T = TypeVar("T")
_Keyed = tuple[datetime, str, Mapping[str, Any], str | None]  # at, key, item, author handle


def issue_field_changes(
    issue: Mapping[str, Any],
    *,
    person: Callable[[str], str],
    priority_map: Mapping[str, Priority] = DEFAULT_PRIORITY_MAP,
    histories: Sequence[Mapping[str, Any]] | None = None,
) -> list[FieldChange]:
    """Every tracked field's changes; `person` maps a Jira user handle to a person id;
    `histories` replaces the embedded changelog (e.g. one read from the changelog endpoint)."""
    fields: Mapping[str, Any] = issue.get("fields") or {}
    created = timestamp(fields, "created")
    if created is None:
        return []
    created = _utc(created)
    entries = list(histories) if histories is not None else _embedded(issue)
    items = _keyed_items(entries)
    levels = {name.casefold(): level for name, level in priority_map.items()}

    def level(name: object) -> str | None:
        found = levels.get(name.casefold()) if isinstance(name, str) else None
        return found.value if found else None

    def who(handle: str | None) -> str | None:
        return person(handle) if handle else None

    out: list[FieldChange] = []

    def scalar(
        field: str, jira: str, current: T, read: Callable[[Any, Any], T], show: Callable[[T], Any]
    ) -> None:
        chosen = [entry for entry in items if entry[2].get("field") == jira]
        steps = _roll_back_scalar(current, [(at, item) for at, _, item, _ in chosen], read)
        out.extend(_changes(field, steps, chosen, created, show, who))

    scalar("due", "duedate", _date(fields.get("duedate")), _changelog_date, _iso)
    scalar("owners", "assignee", _user(fields.get("assignee")), _raw, lambda h: _owners(h, person))
    scalar("priority", "priority", _name(fields.get("priority")), _text, level)
    scalar("resolution", "resolution", _name(fields.get("resolution")), _text, _same)
    estimate = "timeoriginalestimate"
    if not _has(items, estimate) and fields.get(estimate) is None:
        estimate = "timeestimate"
    scalar("estimate_hours", estimate, _hours(fields.get(estimate)), _changelog_hours, _same)
    scalar("logged_hours", "timespent", _hours(fields.get("timespent")), _changelog_hours, _same)
    scalar("parent", "Parent", _parent(fields), _text, _same)
    out.extend(_fix_version_changes(fields, items, created, who))
    out.extend(_blocker_changes(fields, items, created, who))
    out.extend(_activity(fields, entries, who))
    return out


def current_fix_versions(fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's fix versions now, in the history's form, sorted by id."""
    dates = _version_dates(fields)
    return sorted(
        (
            {"id": str(v["id"]), "name": v.get("name"), "date": dates.get(str(v["id"]))}
            for v in fields.get("fixVersions") or []
            if isinstance(v, Mapping) and "id" in v
        ),
        key=lambda v: v["id"],
    )


# --- changelog ----------------------------------------------------------------------------


def _embedded(issue: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    changelog = issue.get("changelog")
    if isinstance(changelog, Mapping):
        found = changelog.get("histories", changelog.get("values"))
        return [h for h in found or [] if isinstance(h, Mapping)]
    return []


def _keyed_items(histories: Iterable[Mapping[str, Any]]) -> list[_Keyed]:
    """Every item with its time and key, oldest first (stable within one entry)."""
    out: list[_Keyed] = []
    for position, history in enumerate(histories):
        at = timestamp(history, "created")
        if at is None:
            continue
        entry = history.get("id", f"#{position}")
        author = _user(history.get("author"))
        for number, item in enumerate(history.get("items") or []):
            if isinstance(item, Mapping):
                out.append((_utc(at), f"h{entry}/{number}", item, author))
    out.sort(key=lambda keyed: keyed[0])
    return out


def _has(items: Sequence[_Keyed], field: str) -> bool:
    return any(item.get("field") == field for _, _, item, _ in items)


def _changes(
    field: str,
    steps: Steps[T],
    chosen: Sequence[_Keyed],
    created: datetime,
    show: Callable[[T], Any],
    who: Callable[[str | None], str | None],
) -> list[FieldChange]:
    """The initial value (when set) at creation, then one change per changelog item."""
    out = []
    if steps.values[0] is not None:
        out.append(FieldChange(field, show(steps.values[0]), "initial", created))
    for (at, key, _, author), value in zip(chosen, steps.values[1:], strict=True):
        out.append(FieldChange(field, show(value), key, at, who(author)))
    return out


def _fix_version_changes(
    fields: Mapping[str, Any],
    items: Sequence[_Keyed],
    created: datetime,
    who: Callable[[str | None], str | None],
) -> list[FieldChange]:
    chosen = [entry for entry in items if entry[2].get("field") == "Fix Version"]
    current = current_fix_versions(fields)
    steps = _roll_back_set(
        frozenset(v["id"] for v in current),
        [(at, item) for at, _, item, _ in chosen],
        lambda item, side: item.get(side),
    )
    names = {v["id"]: v.get("name") for v in current}
    for _, _, item, _ in chosen:
        for side in ("from", "to"):
            if isinstance(item.get(side), str):
                names.setdefault(item[side], item.get(f"{side}String"))
    dates = _version_dates(fields)

    def show(ids: frozenset[str]) -> list[dict[str, Any]]:
        return [{"id": i, "name": names.get(i), "date": dates.get(i)} for i in sorted(ids)]

    out = []
    if steps.values[0]:
        out.append(FieldChange("fix_versions", show(steps.values[0]), "initial", created))
    for (at, key, _, author), value in zip(chosen, steps.values[1:], strict=True):
        out.append(FieldChange("fix_versions", show(value), key, at, who(author)))
    return out


def _blocker_changes(
    fields: Mapping[str, Any],
    items: Sequence[_Keyed],
    created: datetime,
    who: Callable[[str | None], str | None],
) -> list[FieldChange]:
    """The keys the issue waits for, through its "Link" items (those of other kinds
    leave the set as it was)."""
    chosen = [entry for entry in items if entry[2].get("field") == "Link"]
    steps = _roll_back_set(
        _waits_for(fields), [(at, item) for at, _, item, _ in chosen], _waited_key
    )
    out = []
    if steps.values[0]:
        out.append(FieldChange("blocked_by", sorted(steps.values[0]), "initial", created))
    for (at, key, _, author), value in zip(chosen, steps.values[1:], strict=True):
        out.append(FieldChange("blocked_by", sorted(value), key, at, who(author)))
    return out


def _version_dates(fields: Mapping[str, Any]) -> dict[str, str]:
    """Release date per version id this issue shows (fix and affects versions)."""
    dates: dict[str, str] = {}
    for name in ("fixVersions", "versions"):
        for version in fields.get(name) or []:
            if isinstance(version, Mapping) and "id" in version:
                released = _date(version.get("releaseDate"))
                if released is not None:
                    dates.setdefault(str(version["id"]), released.isoformat())
    return dates


def _activity(
    fields: Mapping[str, Any],
    histories: Sequence[Mapping[str, Any]],
    who: Callable[[str | None], str | None],
) -> list[FieldChange]:
    """Changelog entries, comments and worklogs: the moments someone acted on the issue."""
    out = []
    acts: list[tuple[str, Iterable[Any], Sequence[str]]] = [
        ("h", histories, ("created",)),
        ("c", _listed(fields.get("comment"), "comments"), ("created",)),
        ("w", _listed(fields.get("worklog"), "worklogs"), ("started", "created")),
    ]
    for prefix, entries, stamps in acts:
        for position, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                continue
            at = next((s for name in stamps if (s := timestamp(entry, name)) is not None), None)
            if at is None:
                continue
            author = _user(entry.get("author"))
            key = f"{prefix}{entry.get('id', f'#{position}')}"
            out.append(FieldChange("activity", who(author), key, _utc(at), who(author)))
    return out


def _listed(value: object, name: str) -> list[Any]:
    """`{"comments": [...], "total": n}` as issues embed it, or a bare list."""
    if isinstance(value, Mapping):
        value = value.get(name)
    return list(value) if isinstance(value, list) else []


# --- values -------------------------------------------------------------------------------


def _raw(raw: object, text: object) -> str | None:
    return raw if isinstance(raw, str) else None


def _text(raw: object, text: object) -> str | None:
    return text if isinstance(text, str) else None


def _iso(day: Any) -> str | None:
    return day.isoformat() if day is not None else None


def _same(value: T) -> T:
    return value


def _owners(handle: str | None, person: Callable[[str], str]) -> list[str]:
    return [person(handle)] if handle else []
