"""Hand-made Jira issues and a cutter: an export as it would have been downloaded at D."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

DONE = {"id": 3, "key": "done", "name": "Done"}
NEW = {"id": 2, "key": "new", "name": "To Do"}
CATEGORY = {"open": NEW, "closed": DONE, "resolved": DONE, "in progress": {"key": "indeterminate"}}


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def issue(
    key: str,
    created: datetime,
    *,
    status: str = "Open",
    resolution: str | None = None,
    due: str | None = None,
    versions: Sequence[Mapping[str, Any]] = (),
    assignee: str | None = "user-a",
    histories: Sequence[tuple[datetime, Sequence[Mapping[str, Any]]]] = (),
) -> dict[str, Any]:
    return {
        "id": key.split("-")[1],
        "key": key,
        "fields": {
            "project": {"key": key.split("-")[0]},
            "created": stamp(created),
            "updated": stamp(max([created, *(at for at, _ in histories)])),
            "status": {"name": status, "statusCategory": CATEGORY.get(status.casefold(), NEW)},
            "resolution": {"name": resolution} if resolution else None,
            "duedate": due,
            "fixVersions": list(versions),
            "assignee": {"name": assignee} if assignee else None,
            "priority": {"name": "Major"},
            "issuelinks": [],
            "comment": {"comments": []},
            "worklog": {"worklogs": []},
        },
        "changelog": {
            "histories": [
                {"created": stamp(at), "author": {"name": "user-a"}, "items": list(items)}
                for at, items in histories
            ]
        },
    }


def status_item(before: str, after: str) -> dict[str, Any]:
    return {"field": "status", "from": None, "fromString": before, "to": None, "toString": after}


def cut_export(issues: Sequence[Mapping[str, Any]], moment: datetime) -> list[dict[str, Any]]:
    """The export as downloaded at `moment`: later issues, changes, comments and worklogs
    are gone and every field holds the value it had then."""
    versions = {str(v["id"]): v for raw in issues for v in raw["fields"].get("fixVersions") or []}
    categories = {
        raw["fields"]["status"]["name"]: raw["fields"]["status"].get("statusCategory")
        for raw in issues
    }
    out = []
    for raw in issues:
        if _parse(raw["fields"]["created"]) > moment:
            continue
        cut = copy.deepcopy(dict(raw))
        fields = cut["fields"]
        histories = cut.get("changelog", {}).get("histories", [])
        later = [h for h in histories if _parse(h["created"]) > moment]
        cut["changelog"]["histories"] = [h for h in histories if _parse(h["created"]) <= moment]
        for history in sorted(later, key=lambda h: _parse(h["created"]), reverse=True):
            for item in reversed(history["items"]):
                _undo(fields, item, versions, categories)
        for name in ("comment", "worklog"):
            holder = fields.get(name) or {}
            entries = holder.get("comments" if name == "comment" else "worklogs") or []
            entries[:] = [e for e in entries if _parse(e["created"]) <= moment]
        fields["updated"] = stamp(moment)
        out.append(cut)
    return out


def _undo(
    fields: dict[str, Any],
    item: Mapping[str, Any],
    versions: Mapping[str, Any],
    categories: Mapping[str, Any],
) -> None:
    name, before, before_text = item["field"], item.get("from"), item.get("fromString")
    if name == "status":
        fields["status"] = {"name": before_text, "statusCategory": categories.get(before_text)}
    elif name == "resolution":
        fields["resolution"] = {"name": before_text} if before_text else None
    elif name == "assignee":
        fields["assignee"] = {"name": before} if before else None
    elif name == "priority":
        fields["priority"] = {"name": before_text} if before_text else None
    elif name == "duedate":
        raw = before or before_text
        fields["duedate"] = raw[:10] if raw else None
    elif name in ("timeoriginalestimate", "timeestimate", "timespent"):
        fields[name] = int(before) if before else None
    elif name == "Fix Version":
        current = [v for v in fields.get("fixVersions") or [] if str(v["id"]) != item.get("to")]
        if before is not None:
            current.append(versions.get(str(before), {"id": str(before), "name": before_text}))
        fields["fixVersions"] = current
    elif name == "Link" and item.get("to"):
        fields["issuelinks"] = [
            link
            for link in fields.get("issuelinks") or []
            if (link.get("inwardIssue") or link.get("outwardIssue") or {}).get("key") != item["to"]
        ]
    elif name == "Parent":
        fields["parent"] = {"key": before_text} if before_text else None


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)
