"""A GitHub issue's field history as `FieldChange`s, from its issue events.

Events are read repo-wide and only since the last sync, so each event's value is the
issue's current value rolled back through the events that came after it: assignees
(`assigned` / `unassigned`), milestone (`milestoned` / `demilestoned`; its `due_on` is
known for the current milestone only, events carry the title) and priority labels
(`labeled` / `unlabeled`). An event is keyed "e<id>". What no event explains (a first
sight, a `Due:` line edited in the body) the ledger records as observed at the sync.
Activity stays with `last_activity_at` (the mapping knows which events are passive).
Milestones are identified by title, the one thing their events carry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC
from typing import Any

from syncd.connectors.github.settings import DEFAULT_PRIORITY_LABELS
from syncd.connectors.payload import timestamp
from syncd.model import FieldChange, Priority

__all__ = ["current_milestone", "issue_field_changes"]

_RANK = {Priority.HIGH: 0, Priority.MEDIUM: 1, Priority.LOW: 2}


def current_milestone(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's milestone in the `fix_versions` form (a list of at most one)."""
    milestone = raw.get("milestone")
    if not isinstance(milestone, Mapping) or not isinstance(milestone.get("title"), str):
        return []
    due_on = timestamp(milestone, "due_on")
    day = due_on.astimezone(UTC).date().isoformat() if due_on else None
    return [{"id": milestone["title"], "name": milestone["title"], "date": day}]


def issue_field_changes(
    raw: Mapping[str, Any],
    *,
    person: Callable[[str], str],
    events: Sequence[Mapping[str, Any]] = (),
    priority_labels: Mapping[str, Priority] | None = None,
) -> list[FieldChange]:
    """Owners, milestone and priority after each of `events`, newest first rolled back."""
    labels_map = {k.lower(): v for k, v in (priority_labels or DEFAULT_PRIORITY_LABELS).items()}
    dated = sorted(
        (
            (at.astimezone(UTC), event)
            for event in events
            if isinstance(event, Mapping) and (at := timestamp(event, "created_at")) is not None
        ),
        key=lambda pair: pair[0],
    )
    owners = {a["login"] for a in raw.get("assignees") or [] if isinstance(a, Mapping)}
    milestone = current_milestone(raw)
    titles = {m["id"] for m in milestone}
    dates = {m["id"]: m["date"] for m in milestone}
    labels = {str(label.get("name", "")).lower() for label in raw.get("labels") or []
              if isinstance(label, Mapping)}  # fmt: skip
    out: list[FieldChange] = []
    for at, event in reversed(dated):
        kind, key = event.get("event"), f"e{event.get('id')}"
        actor = _login(event.get("actor"))
        by = person(actor) if actor else None
        if kind in ("assigned", "unassigned") and (login := _login(event.get("assignee"))):
            out.append(FieldChange("owners", sorted(person(o) for o in owners), key, at, by))
            owners = owners - {login} if kind == "assigned" else owners | {login}
        elif kind in ("milestoned", "demilestoned") and (title := _title(event)):
            value = [{"id": t, "name": t, "date": dates.get(t)} for t in sorted(titles)]
            out.append(FieldChange("fix_versions", value, key, at, by))
            titles = titles - {title} if kind == "milestoned" else titles | {title}
        elif kind in ("labeled", "unlabeled") and (name := _label(event)) in labels_map:
            out.append(FieldChange("priority", _priority(labels, labels_map), key, at, by))
            labels = labels - {name} if kind == "labeled" else labels | {name}
    out.reverse()
    return out


def _login(user: object) -> str | None:
    if isinstance(user, Mapping) and isinstance(user.get("login"), str):
        return str(user["login"])
    return None


def _title(event: Mapping[str, Any]) -> str | None:
    milestone = event.get("milestone")
    if isinstance(milestone, Mapping) and isinstance(milestone.get("title"), str):
        return str(milestone["title"])
    return None


def _label(event: Mapping[str, Any]) -> str:
    label = event.get("label")
    return str(label.get("name", "")).lower() if isinstance(label, Mapping) else ""


def _priority(labels: set[str], labels_map: Mapping[str, Priority]) -> str | None:
    levels = [labels_map[name] for name in labels if name in labels_map]
    return min(levels, key=lambda level: _RANK[level]).value if levels else None
