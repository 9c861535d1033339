"""Pure mapping: a GitHub REST issue payload -> `syncd.model.Task`.

Nothing here talks to the network. The gateway fetches the issue and, when the
issue says it has them, its comments, events, sub-issues and blocked-by listing,
then hands the raw dicts to `map_issue`. Anything that cannot be mapped raises
`MappingError` with a reason in plain words, so the connector can quarantine the
item and store the rest of the page.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from syncd.connectors.github.fields import current_milestone, issue_field_changes
from syncd.connectors.github.settings import GitHubSettings
from syncd.connectors.payload import (
    MappingError,
    optional_str,
    require_int,
    require_str,
    timestamp,
    unique,
)
from syncd.model import Priority, Status, Task
from syncd.people import PeopleDirectory

__all__ = [
    "SYNCD_MARKER",
    "MappingError",
    "acceptance_section",
    "is_pull_request",
    "issue_key",
    "map_issue",
    "pr_closes",
    "wants_blocked_by_listing",
    "wants_sub_issues_listing",
]

# Comments syncd writes carry this HTML comment; they are not human activity.
SYNCD_MARKER = "<!-- syncd:"

_PRIORITY_RANK = {Priority.HIGH: 0, Priority.MEDIUM: 1, Priority.LOW: 2}

# `/repos/<owner>/<name>` at the end of an API URL (github.com or Enterprise's /api/v3).
_API_REPO = re.compile(r"/repos/(?P<owner>[^/\s]+)/(?P<name>[^/\s]+?)/?$")
_API_ISSUE = re.compile(
    r"/repos/(?P<owner>[^/\s]+)/(?P<name>[^/\s]+)/(?:issues|pulls)/(?P<number>\d+)/?$"
)

# One issue reference in Markdown: a web URL, `owner/repo#N` or `#N`.
_REF = (
    r"(?:https?://[^/\s]+/(?P<url_repo>[\w.-]+/[\w.-]+)/(?:issues|pull)/(?P<url_number>\d+)"
    r"|(?P<repo>[\w.-]+/[\w.-]+)?#(?P<number>\d+))"
)
_REF_RE = re.compile(_REF)
_UNNAMED_REF = re.sub(r"\?P<\w+>", "?:", _REF)
_BLOCKER_PHRASE = re.compile(
    rf"\b(?:blocked\s+by|depends\s+on)\s*:?\s*"
    rf"(?P<refs>{_UNNAMED_REF}(?:\s*(?:,|and|&)\s*{_UNNAMED_REF})*)",
    re.IGNORECASE,
)
_TASK_LIST_ITEM = re.compile(rf"^\s*[-*+]\s+\[[ xX]\]\s+{_REF}", re.MULTILINE)
_CLOSING_KEYWORD = re.compile(
    rf"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\s*:?\s+{_REF}", re.IGNORECASE
)
_DUE_LINE = re.compile(
    r"^\s*(?:[*_]{2})?due(?:\s+date)?(?:[*_]{2})?\s*:\s*(?:[*_]{2})?\s*(\d{4}-\d{2}-\d{2})",
    re.IGNORECASE | re.MULTILINE,
)
# A Jira key: an upper-case project key, a dash, a number, not part of a word or path.
_JIRA_KEY = re.compile(r"(?<![\w/.-])([A-Z][A-Z0-9_]{1,9}-\d+)\b")
# Upper-case-dash-number words that are standards, not Jira keys.
_NOT_JIRA_PROJECTS = frozenset(
    {
        "UTF",
        "ISO",
        "SHA",
        "MD",
        "RFC",
        "CVE",
        "CWE",
        "GPL",
        "LGPL",
        "AGPL",
        "AES",
        "TLS",
        "SSL",
        "HTTP",
        "PEP",
        "IEEE",
        "ECMA",
        "X",
        "WCAG",
        "GHSA",
        "COVID",
        "UCS",
        "ASCII",
    }
)
# A Markdown heading (`## Title`) or a line that is only bold text (`**Title:**`).
_HEADING = re.compile(
    r"^\s{0,3}(?:#{1,6}\s+(?P<atx>.+?)\s*#*\s*|(?:\*\*|__)(?P<btext>[^*_]+?)(?:\*\*|__)\s*:?\s*)$"
)
_ACCEPTANCE_TITLE = re.compile(r"^acceptance\s+criteri(?:a|on)\s*:?$", re.IGNORECASE)
# Events that record someone being mentioned or subscribed: not that person's activity.
_PASSIVE_EVENTS = frozenset({"mentioned", "subscribed", "unsubscribed"})


def is_pull_request(raw: Mapping[str, Any]) -> bool:
    """The issue listing returns pull requests too, marked by a `pull_request` key."""
    return raw.get("pull_request") is not None


def wants_sub_issues_listing(raw: Mapping[str, Any]) -> bool:
    """True when the issue says it has sub-issues, so one extra call is worth it."""
    summary = raw.get("sub_issues_summary")
    return isinstance(summary, Mapping) and _positive(summary.get("total"))


def wants_blocked_by_listing(raw: Mapping[str, Any]) -> bool:
    """True when GitHub's dependency summary counts blockers we have not listed."""
    summary = raw.get("issue_dependencies_summary")
    return isinstance(summary, Mapping) and _positive(summary.get("total_blocked_by"))


def issue_key(raw: Mapping[str, Any], repo: str | None = None) -> str:
    """`owner/repo#N`, the repository taken from the payload before `repo`."""
    number = require_int(raw, "number")
    return f"{_repo_of(raw, repo)}#{number}"


def pr_closes(raw_pr: Mapping[str, Any], repo: str | None = None) -> list[str]:
    """Issue keys a pull request says it closes (`Fixes #12`, `closes o/r#3`)."""
    body = optional_str(raw_pr, "body") or ""
    title = optional_str(raw_pr, "title") or ""
    base = _repo_of(raw_pr, repo)
    return unique(
        _ref_from_match(m, base) for text in (title, body) for m in _CLOSING_KEYWORD.finditer(text)
    )


def map_issue(
    raw: Mapping[str, Any],
    *,
    source: str,
    settings: GitHubSettings,
    people: PeopleDirectory,
    repo: str | None = None,
    comments: Sequence[Mapping[str, Any]] = (),
    events: Sequence[Mapping[str, Any]] = (),
    sub_issues: Sequence[Mapping[str, Any]] = (),
    blocked_by: Sequence[Mapping[str, Any]] = (),
    now: datetime | None = None,
) -> Task:
    """Map one GitHub issue (REST or webhook `issue`) to a Task.

    `comments` and `events` may be issue events or timeline items; `sub_issues` and
    `blocked_by` are the listings of those endpoints. `now` caps activity stamped
    in the future (clock skew) so a stale check cannot be fooled by it.
    """
    if not isinstance(raw, Mapping):
        raise MappingError(f"an issue must be a JSON object, got {type(raw).__name__}")
    if is_pull_request(raw):
        raise MappingError("this is a pull request, not an issue")
    external_id = require_int(raw, "id")
    title = require_str(raw, "title")
    base_repo = _repo_of(raw, repo)
    key = f"{base_repo}#{require_int(raw, 'number')}"
    body = optional_str(raw, "body") or ""
    labels = _label_names(raw)
    folded = {label.lower(): label for label in labels}
    priority, priority_raw = _priority(folded, settings)
    status, status_raw = _status(raw, folded, settings)
    created_at = timestamp(raw, "created_at")
    activity, participants = _human_activity(comments, events, settings, people)
    verified_label = folded.get("verified") or _label_for(folded, settings, Status.VERIFIED)
    return Task(
        source=source,
        external_id=str(external_id),
        key=key,
        title=title,
        url=optional_str(raw, "html_url"),
        description=body,
        status=status,
        status_raw=status_raw,
        owners=_owners(raw, people),
        reporter=_person(raw.get("user"), "user", people),
        due=_due(raw, body),
        priority=priority,
        priority_raw=priority_raw,
        labels=labels,
        parent=_parent(raw, base_repo),
        children=unique([*_keys_of(sub_issues, "sub-issue"), *_task_list_refs(body, base_repo)]),
        blocked_by=unique(
            [*_keys_of(blocked_by, "blocking issue"), *_blocker_refs(body, base_repo)]
        ),
        links=_jira_keys(title, body),
        acceptance_criteria=acceptance_section(body),
        created_at=created_at,
        updated_at=timestamp(raw, "updated_at"),
        closed_at=timestamp(raw, "closed_at"),
        last_activity_at=_latest([created_at, *activity], now),
        verified_by=f"label:{verified_label}" if verified_label else None,
        participants=participants,
        fix_versions=current_milestone(raw),
        field_changes=issue_field_changes(
            raw,
            person=lambda login: people.resolve("github", login),
            events=[e for e in events if isinstance(e, Mapping)],
            priority_labels=settings.priority_labels,
        ),
        raw=dict(raw),
    )


# --- fields -------------------------------------------------------------------------


def _repo_of(raw: Mapping[str, Any], repo: str | None) -> str:
    url = raw.get("repository_url")
    if isinstance(url, str) and (match := _API_REPO.search(url)):
        return f"{match['owner']}/{match['name']}"
    # Recordings from before `repository_url` existed still carry the issue's own URL.
    api_url = raw.get("url")
    if isinstance(api_url, str) and (match := _API_ISSUE.search(api_url)):
        return f"{match['owner']}/{match['name']}"
    repository = raw.get("repository")
    if isinstance(repository, Mapping) and isinstance(repository.get("full_name"), str):
        return str(repository["full_name"])
    if repo:
        return repo
    raise MappingError("cannot tell which repository the issue belongs to (no repository_url)")


def _label_names(raw: Mapping[str, Any]) -> list[str]:
    labels = raw.get("labels", [])
    if labels is None:
        return []
    if not isinstance(labels, list):
        raise MappingError(f"'labels' must be a list, got {type(labels).__name__}")
    names: list[str] = []
    for label in labels:
        name = label.get("name") if isinstance(label, Mapping) else label
        if not isinstance(name, str):
            raise MappingError(f"a label has no name: {label!r:.80}")
        names.append(name)
    return names


def _label_for(folded: Mapping[str, str], settings: GitHubSettings, status: Status) -> str | None:
    for lowered, label in folded.items():
        if settings.status_labels.get(lowered) == status:
            return label
    return None


def _priority(
    folded: Mapping[str, str], settings: GitHubSettings
) -> tuple[Priority | None, str | None]:
    """The highest priority any label maps to; two priority labels should not weaken it."""
    matches = [
        (settings.priority_labels[lowered], label)
        for lowered, label in folded.items()
        if lowered in settings.priority_labels
    ]
    if not matches:
        return None, None
    priority, label = min(matches, key=lambda match: _PRIORITY_RANK[match[0]])
    return priority, label


def _status(
    raw: Mapping[str, Any], folded: Mapping[str, str], settings: GitHubSettings
) -> tuple[Status, str]:
    state = require_str(raw, "state")
    reason = optional_str(raw, "state_reason")
    if state == "closed":
        if reason in ("not_planned", "duplicate"):
            return Status.CANCELLED, f"closed:{reason}"
        # Verification only means something once the work is closed as done.
        if verified := _label_for(folded, settings, Status.VERIFIED):
            return Status.VERIFIED, verified
        return Status.DONE, f"closed:{reason}" if reason else "closed"
    if state != "open":
        raise MappingError(f"unknown issue state {state!r}")
    for status in (Status.BLOCKED, Status.IN_PROGRESS):
        if label := _label_for(folded, settings, status):
            return status, label
    return Status.OPEN, "open"


def _owners(raw: Mapping[str, Any], people: PeopleDirectory) -> list[str]:
    assignees = raw.get("assignees")
    if assignees is None:
        single = raw.get("assignee")
        assignees = [single] if single else []
    if not isinstance(assignees, list):
        raise MappingError(f"'assignees' must be a list, got {type(assignees).__name__}")
    return unique(
        owner for user in assignees if (owner := _person(user, "assignee", people)) is not None
    )


def _person(user: object, role: str, people: PeopleDirectory) -> str | None:
    if user is None:
        return None  # a deleted account ("ghost") or no such person
    if not isinstance(user, Mapping) or not isinstance(user.get("login"), str):
        raise MappingError(f"the {role} has no login")
    return people.resolve("github", user["login"])


def _due(raw: Mapping[str, Any], body: str) -> date | None:
    """A `Due: YYYY-MM-DD` line in the body wins over the milestone's due date."""
    for match in _DUE_LINE.finditer(body):
        try:
            return date.fromisoformat(match[1])
        except ValueError:
            continue  # "Due: 2024-13-40" is a typo in prose, not a broken payload
    milestone = raw.get("milestone")
    if milestone is None:
        return None
    if not isinstance(milestone, Mapping):
        raise MappingError("'milestone' must be an object")
    due_on = timestamp(milestone, "due_on")
    return due_on.date() if due_on else None


def _parent(raw: Mapping[str, Any], base_repo: str) -> str | None:
    url = raw.get("parent_issue_url")
    if isinstance(url, str) and (match := _API_ISSUE.search(url)):
        return f"{match['owner']}/{match['name']}#{match['number']}"
    parent = raw.get("parent")
    if isinstance(parent, Mapping) and "number" in parent:
        return issue_key(parent, base_repo)
    return None


def _keys_of(items: Iterable[Mapping[str, Any]], what: str) -> list[str]:
    keys = []
    for item in items:
        if not isinstance(item, Mapping):
            raise MappingError(f"a {what} entry is not an object")
        keys.append(issue_key(item))
    return keys


def _ref_from_match(match: re.Match[str], base_repo: str) -> str:
    groups = match.groupdict()
    if groups.get("url_number"):
        return f"{groups['url_repo']}#{groups['url_number']}"
    return f"{groups.get('repo') or base_repo}#{groups['number']}"


def _task_list_refs(body: str, base_repo: str) -> list[str]:
    return [_ref_from_match(m, base_repo) for m in _TASK_LIST_ITEM.finditer(body)]


def _blocker_refs(body: str, base_repo: str) -> list[str]:
    refs: list[str] = []
    for phrase in _BLOCKER_PHRASE.finditer(body):
        refs.extend(_ref_from_match(m, base_repo) for m in _REF_RE.finditer(phrase["refs"]))
    return refs


def _jira_keys(*texts: str) -> list[str]:
    return unique(
        key
        for text in texts
        for key in _JIRA_KEY.findall(text)
        if key.split("-", 1)[0] not in _NOT_JIRA_PROJECTS
    )


def acceptance_section(body: str) -> str | None:
    """The text under an "Acceptance criteria" heading or bold line, up to the next heading."""
    lines = body.splitlines()
    for start, line in enumerate(lines):
        heading = _heading_text(line)
        if heading is not None and _ACCEPTANCE_TITLE.match(heading):
            section: list[str] = []
            for following in lines[start + 1 :]:
                if _heading_text(following) is not None:
                    break
                section.append(following)
            text = "\n".join(section).strip()
            return text or None
    return None


def _heading_text(line: str) -> str | None:
    match = _HEADING.match(line)
    if match is None:
        return None
    return (match["atx"] or match["btext"] or "").strip().rstrip(":").strip()


# --- activity -----------------------------------------------------------------------


def _human_activity(
    comments: Sequence[Mapping[str, Any]],
    events: Sequence[Mapping[str, Any]],
    settings: GitHubSettings,
    people: PeopleDirectory,
) -> tuple[list[datetime], list[str]]:
    """When humans last did something, and who they are (bots and syncd left out)."""
    bots = {login.lower() for login in settings.bot_logins}
    stamps: list[datetime] = []
    participants: list[str] = []
    for actor, stamp in _acts(comments, events):
        if actor is None or _is_bot(actor, bots):
            continue
        stamps.append(stamp)
        participants.append(people.resolve("github", actor["login"]))
    return stamps, unique(participants)


def _acts(
    comments: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]]
) -> Iterator[tuple[Mapping[str, Any] | None, datetime]]:
    for comment in comments:
        if not isinstance(comment, Mapping):
            raise MappingError("a comment is not an object")
        if SYNCD_MARKER in (optional_str(comment, "body") or ""):
            continue
        stamp = timestamp(comment, "updated_at") or timestamp(comment, "created_at")
        if stamp is not None:
            yield _actor(comment, "user"), stamp
    for event in events:
        if not isinstance(event, Mapping):
            raise MappingError("an event is not an object")
        if event.get("event") in _PASSIVE_EVENTS:
            continue
        if event.get("event") == "commented" and SYNCD_MARKER in (
            optional_str(event, "body") or ""
        ):
            continue  # timeline items repeat comments, marker included
        stamp = timestamp(event, "created_at") or timestamp(event, "submitted_at")
        if stamp is not None:
            yield _actor(event, "actor") or _actor(event, "user"), stamp


def _actor(item: Mapping[str, Any], field: str) -> Mapping[str, Any] | None:
    user = item.get(field)
    if isinstance(user, Mapping) and isinstance(user.get("login"), str):
        return user
    return None


def _is_bot(user: Mapping[str, Any], bots: set[str]) -> bool:
    login = str(user["login"]).lower()
    return user.get("type") == "Bot" or login.endswith("[bot]") or login in bots


def _latest(stamps: Iterable[datetime | None], now: datetime | None) -> datetime | None:
    present = [stamp for stamp in stamps if stamp is not None]
    if not present:
        return None
    latest = max(present)
    return min(latest, now) if now is not None else latest


# --- primitive readers ----------------------------------------------------------------


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
