"""GitHub webhook deliveries that carry a whole issue, mapped like a listed one.

`issues` and `issue_comment` events carry the issue in its REST shape, so
`map_issue` maps it as it would a page of the listing; the event's sender (and
the comment, for `issue_comment`) is the activity it records. What a payload
cannot tell is left to a poll: a deletion or a transfer (only a listing is
believed about those), a pull request (merged ones link the issues they close),
an issue whose sub-issues or blockers need their own listing, and every other
event. A closed issue is ingested at once and polled too, since the pull
request that closed it is only known from the listing.

Pure functions, tested against the recorded payloads in `../shared/corpus`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from syncd.connector import WebhookItems
from syncd.connectors.github.mapping import (
    MappingError,
    is_pull_request,
    map_issue,
    wants_blocked_by_listing,
    wants_sub_issues_listing,
)
from syncd.connectors.github.settings import GitHubSettings
from syncd.people import PeopleDirectory

ISSUE_EVENTS = frozenset({"issues", "issue_comment"})
# Actions whose truth only a listing tells.
POLL_ACTIONS = frozenset({"deleted", "transferred"})


def webhook_items(
    event: str,
    payload: Any,
    *,
    source: str,
    settings: GitHubSettings,
    people: PeopleDirectory,
    now: datetime,
) -> WebhookItems:
    """The task an `issues` / `issue_comment` delivery carries; a poll for anything else."""
    if event not in ISSUE_EVENTS:
        return WebhookItems(poll=True)
    if not isinstance(payload, Mapping):
        raise MappingError(f"a webhook payload must be a JSON object, got {type(payload).__name__}")
    issue = payload.get("issue")
    if not isinstance(issue, Mapping):
        raise MappingError(f"the {event} payload has no issue object")
    repo = _repository(payload)
    changes = payload.get("changes")
    involved = {repo, _repository(changes) if isinstance(changes, Mapping) else None} - {None}
    synced = {r.lower() for r in settings.repos}
    if involved and not any(name.lower() in synced for name in involved if name):
        return WebhookItems()  # an organization hook: a repository this source does not sync
    action = payload.get("action")
    if action in POLL_ACTIONS or is_pull_request(issue):
        return WebhookItems(poll=True)
    if wants_sub_issues_listing(issue) or wants_blocked_by_listing(issue):
        return WebhookItems(poll=True)
    comment = payload.get("comment")
    comments = [comment] if event == "issue_comment" and action != "deleted" and comment else []
    task = map_issue(
        issue,
        source=source,
        settings=settings,
        people=people,
        repo=repo,
        comments=comments,
        events=_sender_event(event, action, payload, issue),
        now=now,
    )
    return WebhookItems(tasks=[task], poll=issue.get("state") == "closed")


def _repository(payload: Mapping[str, Any]) -> str | None:
    """`repository.full_name`, or `new_repository`'s in a transfer's `changes`."""
    repository = payload.get("repository") or payload.get("new_repository")
    if isinstance(repository, Mapping) and isinstance(repository.get("full_name"), str):
        return str(repository["full_name"])
    return None


def _sender_event(
    event: str, action: object, payload: Mapping[str, Any], issue: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The delivery as the issue event the repository's events listing would show.

    Opening an issue is its creation (already counted); a comment is counted as
    a comment.
    """
    sender = payload.get("sender")
    if event != "issues" or action == "opened" or not isinstance(sender, Mapping):
        return []
    return [{"event": action, "actor": sender, "created_at": issue.get("updated_at")}]
