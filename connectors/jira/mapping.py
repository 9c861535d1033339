"""Pure mapping: a Jira REST issue payload (v2 or v3, Cloud or Server) -> `syncd.model.Task`.

Nothing here talks to the network. `field_ids` (display name -> field id, from
`/field`) lets settings name custom fields either way. Anything that cannot be
mapped raises `MappingError` with a reason in plain words, so the connector can
quarantine the item and store the rest of the page.

syncd's own comments are not human activity. syncd marks them twice: a comment
property whose key starts with `syncd` (machine-readable, survives edits of the
text) and a visible `[syncd]` tag in the body (Jira has no invisible comment
text). Either mark is enough, so a comment that lost its property still counts
as syncd's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from syncd.connectors.jira.settings import JiraSettings
from syncd.connectors.payload import MappingError, optional_str, require_str, timestamp, unique
from syncd.model import Priority, Status, StatusChange, Task
from syncd.people import PeopleDirectory

__all__ = [
    "SYNCD_COMMENT_PROPERTY",
    "SYNCD_TAG",
    "MappingError",
    "adf_to_text",
    "map_issue",
    "stock_status_kind",
    "wiki_to_text",
]

SYNCD_COMMENT_PROPERTY = "syncd"
SYNCD_TAG = "[syncd]"

_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*-\d+$")
_CATEGORY_STATUS = {"new": Status.OPEN, "indeterminate": Status.IN_PROGRESS, "done": Status.DONE}
# Server payloads without a status category: the stock workflow's names.
_STOCK_STATUS = {
    "open": Status.OPEN,
    "to do": Status.OPEN,
    "reopened": Status.OPEN,
    "backlog": Status.OPEN,
    "in progress": Status.IN_PROGRESS,
    "in review": Status.IN_PROGRESS,
    "resolved": Status.DONE,
    "done": Status.DONE,
    "closed": Status.DONE,
}
_CANCELLING_RESOLUTIONS = frozenset({"won't do", "won't fix", "duplicate", "cancelled", "canceled"})
# Link types whose inward side reads "this issue waits for that one".
_BLOCKING_INWARD = frozenset({"is blocked by", "depends on"})
_RELATED_LINK_TYPES = frozenset({"relates", "duplicate", "cloners"})
_SECONDS_PER_HOUR = 3600.0


def stock_status_kind(name: str) -> str | None:
    """The status category ("new", "indeterminate", "done") of a stock workflow status name,
    for payloads (and changelog items) that carry no category."""
    status = _STOCK_STATUS.get(name.casefold())
    return {value: key for key, value in _CATEGORY_STATUS.items()}.get(status) if status else None


def map_issue(
    raw: Mapping[str, Any],
    *,
    source: str,
    settings: JiraSettings,
    people: PeopleDirectory,
    field_ids: Mapping[str, str] | None = None,
    comments: Sequence[Mapping[str, Any]] = (),
    changelog: Sequence[Mapping[str, Any]] = (),
    now: datetime | None = None,
) -> Task:
    """Map one Jira issue to a Task.

    `comments` and `changelog` add entries fetched separately (the comment and
    changelog endpoints) to those embedded in the payload; duplicates by id are
    dropped. `now` caps activity stamped in the future (clock skew).
    """
    # Imported here: the field history reader builds on `history.py`, which imports this.
    from syncd.connectors.jira.fields import current_fix_versions, issue_field_changes

    if not isinstance(raw, Mapping):
        raise MappingError(f"an issue must be a JSON object, got {type(raw).__name__}")
    external_id = _issue_id(raw)
    key = _issue_key(raw)
    fields = raw.get("fields")
    if not isinstance(fields, Mapping):
        raise MappingError("the issue has no fields (an id-only listing or a create response)")
    title = require_str(fields, "summary")
    field_ids = field_ids or {}
    status, status_raw = _status(fields, settings)
    verified_by = _verification(fields, settings, field_ids, people, status, status_raw)
    if status is Status.DONE and verified_by is not None:
        status = Status.VERIFIED
    priority, priority_raw = _priority(fields, settings)
    human_comments = [c for c in _comments(fields, comments) if not _is_syncd_comment(c)]
    histories = _histories(raw, changelog)
    created_at = timestamp(fields, "created")
    activity, participants = _human_activity(human_comments, histories, people)
    blocked_by, links = _issue_links(fields)
    return Task(
        source=source,
        external_id=external_id,
        key=key,
        title=title,
        url=f"{_site(raw, settings)}/browse/{key}",
        description=_text(fields.get("description"), "description"),
        status=status,
        status_raw=status_raw,
        owners=[owner] if (owner := _person(fields.get("assignee"), "assignee", people)) else [],
        team=_team(fields, settings, field_ids),
        reporter=_person(fields.get("reporter"), "reporter", people),
        due=_due(fields),
        priority=priority,
        priority_raw=priority_raw,
        labels=_labels(fields),
        parent=_linked_key(fields.get("parent"), "parent"),
        children=_children(fields),
        blocked_by=blocked_by,
        links=links,
        acceptance_criteria=_acceptance(fields, settings, field_ids),
        estimate_hours=_hours(
            fields,
            ("timeoriginalestimate", "timeestimate", "aggregatetimeoriginalestimate"),
            ("originalEstimateSeconds", "remainingEstimateSeconds"),
        ),
        logged_hours=_hours(fields, ("timespent", "aggregatetimespent"), ("timeSpentSeconds",)),
        created_at=created_at,
        updated_at=timestamp(fields, "updated"),
        closed_at=timestamp(fields, "resolutiondate"),
        last_activity_at=_latest([created_at, *activity], now),
        verified_by=verified_by,
        participants=participants,
        status_changes=_status_changes(histories, people),
        fix_versions=current_fix_versions(fields),
        field_changes=issue_field_changes(
            raw,
            person=lambda handle: people.resolve("jira", handle),
            priority_map=settings.priority_map,
            histories=histories,
        ),
        raw=dict(raw),
    )


# --- identity -------------------------------------------------------------------------


def _issue_id(raw: Mapping[str, Any]) -> str:
    value = raw.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.isdigit():
        return value
    if value is None:
        raise MappingError("the issue has no 'id'")
    raise MappingError(f"'id' must be a number, got {value!r:.40}")


def _issue_key(raw: Mapping[str, Any]) -> str:
    key = raw.get("key")
    if not isinstance(key, str):
        raise MappingError("the issue has no 'key'")
    if not _KEY.match(key):
        raise MappingError(f"{key!r:.40} is not a Jira issue key")
    return key


def _site(raw: Mapping[str, Any], settings: JiraSettings) -> str:
    """The site root, from the issue's own REST URL (`<site>/rest/...`), else the config."""
    self_url = raw.get("self")
    if isinstance(self_url, str) and "/rest/" in self_url:
        return self_url.split("/rest/", 1)[0]
    return settings.url.rstrip("/")


# --- fields -----------------------------------------------------------------------------


def _person(user: object, role: str, people: PeopleDirectory) -> str | None:
    handle = _user_handle(user, role)
    return people.resolve("jira", handle) if handle else None


def _user_handle(user: object, role: str) -> str | None:
    """Cloud identifies people by accountId; Server by `name` (login) or `key`."""
    if user is None:
        return None
    if not isinstance(user, Mapping):
        raise MappingError(f"the {role} must be an object")
    for field in ("accountId", "name", "key"):
        handle = user.get(field)
        if isinstance(handle, str) and handle:
            return handle
    raise MappingError(f"the {role} has no accountId, name or key")


def _status(fields: Mapping[str, Any], settings: JiraSettings) -> tuple[Status, str | None]:
    status = fields.get("status")
    if status is None:
        return Status.OPEN, None  # agile listings may leave it out; nothing says otherwise
    if not isinstance(status, Mapping) or not isinstance(status.get("name"), str):
        raise MappingError("the status has no name")
    name: str = status["name"]
    folded = name.casefold()
    if _resolution_name(fields).casefold() in _CANCELLING_RESOLUTIONS:
        return Status.CANCELLED, name
    if folded in {s.casefold() for s in settings.verified_statuses}:
        return Status.VERIFIED, name
    if folded in {s.casefold() for s in settings.blocked_statuses}:
        return Status.BLOCKED, name
    category = status.get("statusCategory")
    if isinstance(category, Mapping) and category.get("key") in _CATEGORY_STATUS:
        return _CATEGORY_STATUS[category["key"]], name
    if folded in _STOCK_STATUS:
        return _STOCK_STATUS[folded], name
    return (Status.DONE if _resolution_name(fields) else Status.OPEN), name


def _resolution_name(fields: Mapping[str, Any]) -> str:
    resolution = fields.get("resolution")
    if isinstance(resolution, Mapping) and isinstance(resolution.get("name"), str):
        return str(resolution["name"])
    return ""


def _verification(
    fields: Mapping[str, Any],
    settings: JiraSettings,
    field_ids: Mapping[str, str],
    people: PeopleDirectory,
    status: Status,
    status_raw: str | None,
) -> str | None:
    """Who or what verified the work: the configured field when set, else a verified status."""
    if settings.verified_field:
        field_id = field_ids.get(settings.verified_field, settings.verified_field)
        value = fields.get(field_id)
        if isinstance(value, Mapping) and ("accountId" in value or "name" in value):
            return _person(value, "verifier", people)
        if value:
            return f"field:{settings.verified_field}"
    if status is Status.VERIFIED:
        return f"status:{status_raw}"
    return None


def _priority(
    fields: Mapping[str, Any], settings: JiraSettings
) -> tuple[Priority | None, str | None]:
    priority = fields.get("priority")
    if priority is None:
        return None, None
    if not isinstance(priority, Mapping) or not isinstance(priority.get("name"), str):
        raise MappingError("the priority has no name")
    name: str = priority["name"]
    by_folded_name = {raw.casefold(): value for raw, value in settings.priority_map.items()}
    return by_folded_name.get(name.casefold()), name


def _due(fields: Mapping[str, Any]) -> date | None:
    value = optional_str(fields, "duedate")
    if not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise MappingError(f"'duedate' is not a date: {value!r:.40}") from None


def _labels(fields: Mapping[str, Any]) -> list[str]:
    labels = fields.get("labels")
    if labels is None:
        return []
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise MappingError("'labels' must be a list of text")
    return list(labels)


def _linked_key(issue: object, role: str) -> str | None:
    if issue is None:
        return None
    if not isinstance(issue, Mapping) or not isinstance(issue.get("key"), str):
        raise MappingError(f"the {role} issue has no key")
    return str(issue["key"])


def _children(fields: Mapping[str, Any]) -> list[str]:
    keys = [_linked_key(sub, "subtask") for sub in _list(fields, "subtasks")]
    # The v3 examples show sub-tasks as links: {"outwardIssue": {...}, "type": {...}}.
    keys += [
        _linked_key(link.get("outwardIssue"), "sub-task") for link in _list(fields, "sub-tasks")
    ]
    return unique(key for key in keys if key)


def _issue_links(fields: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(blocked_by, links): an inward "is blocked by" link waits on the other issue."""
    blocked_by: list[str] = []
    links: list[str] = []
    for link in _list(fields, "issuelinks"):
        link_type = link.get("type")
        if not isinstance(link_type, Mapping):
            raise MappingError("an issue link has no type")
        name = str(link_type.get("name", "")).casefold()
        inward = _linked_key(link.get("inwardIssue"), "linked")
        other = inward or _linked_key(link.get("outwardIssue"), "linked")
        if other is None:
            raise MappingError("an issue link points at no issue")
        is_blocking = (
            name == "blocks" or str(link_type.get("inward", "")).casefold() in _BLOCKING_INWARD
        )
        if is_blocking and inward:
            blocked_by.append(inward)
        elif name in _RELATED_LINK_TYPES:
            links.append(other)
    return unique(blocked_by), unique(links)


def _custom_field(
    fields: Mapping[str, Any], configured: str | None, field_ids: Mapping[str, str]
) -> object:
    if not configured:
        return None
    return fields.get(field_ids.get(configured, configured))


def _team(
    fields: Mapping[str, Any], settings: JiraSettings, field_ids: Mapping[str, str]
) -> str | None:
    value = _custom_field(fields, settings.team_field, field_ids)
    if isinstance(value, list):
        value = value[0] if value else None  # a multi-select team field: the first is the owner
    if isinstance(value, Mapping):
        for name_field in ("name", "title", "value", "displayName"):
            if isinstance(value.get(name_field), str):
                return str(value[name_field])
        return None
    return value if isinstance(value, str) and value else None


def _acceptance(
    fields: Mapping[str, Any], settings: JiraSettings, field_ids: Mapping[str, str]
) -> str | None:
    value = _custom_field(fields, settings.acceptance_field, field_ids)
    text = _text(value, "acceptance criteria")
    return text or None


def _hours(
    fields: Mapping[str, Any], names: Sequence[str], tracking: Sequence[str]
) -> float | None:
    """Seconds in the first field that has them, else in `timetracking`, as hours."""
    tracked = fields.get("timetracking")
    candidates = [(name, fields.get(name)) for name in names]
    if isinstance(tracked, Mapping):
        candidates += [(f"timetracking.{name}", tracked.get(name)) for name in tracking]
    for name, seconds in candidates:
        if seconds is None:
            continue
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise MappingError(f"{name!r} must be a number of seconds, got {seconds!r:.40}")
        return seconds / _SECONDS_PER_HOUR
    return None


# --- comments, changelog, activity ------------------------------------------------------


def _comments(
    fields: Mapping[str, Any], extra: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    embedded = fields.get("comment")
    if isinstance(embedded, Mapping):
        embedded = embedded.get("comments")  # v2/v3 issue: {"comments": [...], "total": n}
    if embedded is not None and not isinstance(embedded, list):
        raise MappingError("'comment' must hold a list of comments")
    return _by_id([*(embedded or []), *extra], "comment")


def _histories(
    raw: Mapping[str, Any], extra: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    embedded = raw.get("changelog")
    if isinstance(embedded, Mapping):
        embedded = embedded.get("histories", embedded.get("values"))
    if embedded is not None and not isinstance(embedded, list):
        raise MappingError("'changelog' must hold a list of histories")
    return _by_id([*(embedded or []), *extra], "changelog entry")


def _by_id(items: Iterable[object], what: str) -> list[Mapping[str, Any]]:
    seen: dict[object, Mapping[str, Any]] = {}
    for position, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise MappingError(f"a {what} is not an object")
        seen.setdefault(item.get("id", f"#{position}"), item)
    return list(seen.values())


def _is_syncd_comment(comment: Mapping[str, Any]) -> bool:
    properties = comment.get("properties")
    if isinstance(properties, list) and any(
        isinstance(p, Mapping) and str(p.get("key", "")).startswith(SYNCD_COMMENT_PROPERTY)
        for p in properties
    ):
        return True
    return SYNCD_TAG in _text(comment.get("body"), "comment body")


def _is_app(user: object) -> bool:
    # Cloud marks integrations (automation, apps) with accountType "app".
    return isinstance(user, Mapping) and user.get("accountType") == "app"


def _human_activity(
    comments: Sequence[Mapping[str, Any]],
    histories: Sequence[Mapping[str, Any]],
    people: PeopleDirectory,
) -> tuple[list[datetime], list[str]]:
    stamps: list[datetime] = []
    participants: list[str] = []
    for author, stamp in _acts(comments, histories):
        if author is None or _is_app(author):
            continue  # no author means Jira itself or an anonymous automation acted
        if stamp is not None:
            stamps.append(stamp)
        if (person := _person(author, "author", people)) is not None:
            participants.append(person)
    return stamps, unique(participants)


def _acts(
    comments: Sequence[Mapping[str, Any]], histories: Sequence[Mapping[str, Any]]
) -> Iterator[tuple[object, datetime | None]]:
    for comment in comments:
        editor = comment.get("updateAuthor") or comment.get("author")
        yield comment.get("author"), timestamp(comment, "created")
        if comment.get("updated") and comment.get("updated") != comment.get("created"):
            yield editor, timestamp(comment, "updated")
    for history in histories:
        yield history.get("author"), timestamp(history, "created")


def _status_changes(
    histories: Sequence[Mapping[str, Any]], people: PeopleDirectory
) -> list[StatusChange]:
    changes = []
    for history in histories:
        at = timestamp(history, "created")
        items = history.get("items")
        if at is None or not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, Mapping) and item.get("field") == "status":
                to_raw = item.get("toString")
                if isinstance(to_raw, str):
                    from_raw = item.get("fromString")
                    changes.append(
                        StatusChange(
                            at=at,
                            from_raw=from_raw if isinstance(from_raw, str) else None,
                            to_raw=to_raw,
                            by=_person(history.get("author"), "author", people),
                            # Changelog items carry no category: the stock names' kind.
                            to_status=_STOCK_STATUS.get(to_raw.casefold()),
                        )
                    )
    return sorted(changes, key=lambda change: change.at)


def _latest(stamps: Iterable[datetime | None], now: datetime | None) -> datetime | None:
    present = [stamp for stamp in stamps if stamp is not None]
    if not present:
        return None
    latest = max(present)
    return min(latest, now) if now is not None else latest


# --- rich text ----------------------------------------------------------------------------


def _text(value: object, what: str) -> str:
    """Plain text of a v2 wiki string, a v3 ADF document, or nothing."""
    if value is None:
        return ""
    if isinstance(value, str):
        return wiki_to_text(value)
    if isinstance(value, Mapping):
        return adf_to_text(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise MappingError(f"the {what} is neither text nor a document")


_ADF_BLOCKS = frozenset(
    {
        "paragraph",
        "heading",
        "blockquote",
        "codeBlock",
        "panel",
        "rule",
        "mediaSingle",
        "mediaGroup",
        "expand",
        "nestedExpand",
        "decisionList",
        "taskList",
        "table",
    }
)


def adf_to_text(doc: Mapping[str, Any]) -> str:
    """Plain text of an Atlassian Document Format node: one line per block, lists as `- `."""
    lines = _adf_block(doc, indent="")
    return "\n".join(lines).strip()


def _adf_block(node: object, indent: str) -> list[str]:
    if not isinstance(node, Mapping):
        return []
    kind = node.get("type")
    children = _field_of(node, "content", list, [])
    if kind in ("bulletList", "orderedList", "taskList", "decisionList"):
        lines = []
        for number, item in enumerate(children, start=1):
            bullet = f"{number}. " if kind == "orderedList" else "- "
            item_lines = _adf_children(item, indent + "  ")
            first, *rest = item_lines or [""]
            lines.append(f"{indent}{bullet}{first.strip()}")
            lines.extend(rest)
        return lines
    if kind == "table":
        return [_adf_row(row) for row in children]
    if kind == "codeBlock":
        return [indent + line for line in _adf_inline(node).splitlines()]
    if kind == "rule":
        return []
    if kind in ("paragraph", "heading"):
        return [indent + line for line in _adf_inline(node).splitlines() or [""]]
    if any(
        isinstance(child, Mapping)
        and child.get("type") in _ADF_BLOCKS | {"bulletList", "orderedList"}
        for child in children
    ):
        return _adf_children(node, indent)
    inline = _adf_inline(node)
    return [indent + inline] if inline else _adf_children(node, indent)


def _field_of(node: Mapping[str, Any], field: str, kind: type, default: Any) -> Any:
    """ADF from the wild may carry anything anywhere: take the field only if it has the right shape."""
    value = node.get(field)
    return value if isinstance(value, kind) else default


def _adf_children(node: object, indent: str) -> list[str]:
    if not isinstance(node, Mapping) or not isinstance(node.get("content"), list):
        return []
    return [line for child in node["content"] for line in _adf_block(child, indent)]


def _adf_row(row: object) -> str:
    cells = row.get("content") if isinstance(row, Mapping) else None
    if not isinstance(cells, list):
        return ""
    return " | ".join(" ".join(_adf_children(cell, "")).strip() for cell in cells)


def _adf_inline(node: object) -> str:
    if not isinstance(node, Mapping):
        return ""
    kind = node.get("type")
    attrs: Mapping[str, Any] = _field_of(node, "attrs", Mapping, {})
    if kind == "text":
        return _adf_text_with_link(node)
    if kind == "hardBreak":
        return "\n"
    if kind == "mention":
        text = str(attrs.get("text") or attrs.get("id") or "")
        return text if text.startswith("@") else f"@{text}"
    if kind == "emoji":
        return str(attrs.get("text") or attrs.get("shortName") or "")
    if kind in ("inlineCard", "blockCard", "embedCard"):
        return str(attrs.get("url") or "")
    if kind == "status":
        return str(attrs.get("text") or "")
    if kind == "date":
        return _adf_date(attrs.get("timestamp"))
    content = node.get("content")
    if isinstance(content, list):
        return "".join(_adf_inline(child) for child in content)
    return ""


def _adf_text_with_link(node: Mapping[str, Any]) -> str:
    text = str(node.get("text") or "")
    marks = _field_of(node, "marks", list, [])
    for mark in marks:
        if isinstance(mark, Mapping) and mark.get("type") == "link":
            attrs = mark.get("attrs")
            href = attrs.get("href") if isinstance(attrs, Mapping) else None
            if isinstance(href, str) and href and href != text:
                return f"{text} ({href})"
    return text


def _adf_date(timestamp: object) -> str:
    try:
        return datetime.fromtimestamp(int(str(timestamp)) / 1000, UTC).date().isoformat()
    except (ValueError, OverflowError, OSError):
        return ""


def _wiki_list(match: re.Match[str]) -> str:
    markers = match[1]
    depth = len(markers) - 1
    bullet = "1. " if markers.endswith("#") else "- "
    return "  " * depth + bullet


def _wiki_table(match: re.Match[str]) -> str:
    cells = [cell.strip() for cell in re.split(r"\|\|?", match[1])]
    return " | ".join(cell for cell in cells if cell)


_WIKI_RULES: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"^[ \t]*-{4,}[ \t]*$", re.MULTILINE), ""),  # horizontal rule
    (re.compile(r"^h[1-6]\.[ \t]*", re.MULTILINE), ""),  # headings: keep the text
    (re.compile(r"^bq\.[ \t]*", re.MULTILINE), ""),
    (re.compile(r"^[ \t]*([*#-]+)[ \t]+", re.MULTILINE), _wiki_list),
    (re.compile(r"\{(?:code|noformat|quote|panel)(?::[^}]*)?\}"), ""),
    (re.compile(r"\{color(?::[^}]*)?\}"), ""),
    (re.compile(r"\[~accountid:([^\]]+)\]"), r"@\1"),
    (re.compile(r"\[~([^\]]+)\]"), r"@\1"),
    (re.compile(r"\[([^|\]]+)\|([^\]]+)\]"), r"\1 (\2)"),  # [text|url]
    (re.compile(r"\[((?:https?|mailto):[^\]]+)\]"), r"\1"),
    (re.compile(r"!([^!\s|]+)(?:\|[^!]*)?!"), ""),  # embedded images
    (re.compile(r"^\|\|?(.*?)\|?\|?[ \t]*$", re.MULTILINE), _wiki_table),
    (re.compile(r"(?<![\w*])\*(\S(?:[^*\n]*\S)?)\*(?![\w*])"), r"\1"),  # *bold*
    (re.compile(r"(?<![\w_])_(\S(?:[^_\n]*\S)?)_(?![\w_])"), r"\1"),  # _italic_
    (re.compile(r"\{\{(.*?)\}\}"), r"\1"),  # {{monospace}}
    (re.compile(r"\\\\"), "\n"),  # a forced line break
]


def wiki_to_text(markup: str) -> str:
    """Plain text of Jira wiki markup: markers dropped, lists as `- `, table cells joined by ` | `."""
    text = markup.replace("\r\n", "\n")
    for pattern, replacement in _WIKI_RULES:
        text = pattern.sub(replacement, text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# --- primitive readers ---------------------------------------------------------------------


def _list(raw: Mapping[str, Any], field: str) -> list[Mapping[str, Any]]:
    value = raw.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, Mapping) for item in value):
        raise MappingError(f"{field!r} must be a list of objects")
    return value
