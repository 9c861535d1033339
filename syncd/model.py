"""The normalized task: what every connector produces and the ledger stores.

Field names follow SPEC.md ("Normalized task"); they are a contract with users
(`syncd tasks --format json`) and with third-party connectors.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import orjson


class Status(StrEnum):
    OPEN = "open"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    DONE = "done"
    VERIFIED = "verified"
    CANCELLED = "cancelled"


class Priority(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


CLOSED_STATUSES = frozenset({Status.DONE, Status.VERIFIED, Status.CANCELLED})


@dataclass(slots=True, frozen=True)
class StatusChange:
    """One status transition reported by the source (e.g. a Jira changelog entry)."""

    at: datetime
    from_raw: str | None
    to_raw: str
    by: str | None = None
    to_status: Status | None = None


# Fields whose history the ledger keeps (besides status), and the JSON form of their values:
#   due             "YYYY-MM-DD" or null
#   fix_versions    [{"id": str, "name": str | null, "date": "YYYY-MM-DD" | null}, ...] by id
#                   (Jira fix versions with their release date; a GitHub milestone with due_on)
#   owners          [person id, ...] (as `Task.owners`)
#   estimate_hours  number or null
#   logged_hours    number or null
#   priority        "high" | "medium" | "low" | null (as `Task.priority`)
#   resolution      the source's resolution name or null (Jira; "Won't Fix" is not work done)
#   blocked_by      [task key, ...] the task waits for (Jira "is blocked by" / "depends on")
#   parent          task key or null
#   activity        a person id or null: someone acted on the task then (a changelog entry,
#                   comment, worklog, event); the value never "changes", each row is an act
HISTORY_FIELDS = (
    "due", "fix_versions", "owners", "estimate_hours", "logged_hours", "priority",
    "resolution", "blocked_by", "parent", "activity",
)  # fmt: skip


@dataclass(slots=True, frozen=True)
class FieldChange:
    """A tracked field took `value` from `at` on, as the source tells it.

    `key` identifies the change within its task and field for as long as the source
    keeps it (a Jira changelog item "h<history id>/<item index>", a GitHub event
    "e<event id>", a message "m<ts>", "initial" for the value the task was created
    with); the ledger stores each (task, field, key) once, so a re-read adds nothing.
    `at` None means the source does not say when: the ledger dates it at the sync.
    """

    field: str
    value: Any
    key: str
    at: datetime | None
    by: str | None = None


@dataclass(slots=True)
class Task:
    """A work item from one source, mapped to syncd's vocabulary.

    `external_id` is the source's immutable id (GitHub issue id, Jira issue id);
    `key` is the human alias (`owner/repo#12`, `OPS-42`) and may change when an
    item is transferred or moved. References to other tasks (`parent`,
    `children`, `blocked_by`, `links`) are keys, resolved across sources by the
    ledger; `links` names the same work elsewhere (a Jira key in a Slack message).
    `verified_by` records the evidence of verification (a label, a QA field, a
    requester's confirmation); `participants` are the people active on the item.
    Owners and people are person ids from `[people.<id>]`, or `<kind>:<handle>`
    for identities nobody has mapped yet.
    """

    source: str
    external_id: str
    key: str
    title: str
    url: str | None = None
    description: str = ""
    status: Status = Status.OPEN
    status_raw: str | None = None
    owners: list[str] = field(default_factory=list)
    team: str | None = None
    reporter: str | None = None
    due: date | None = None
    priority: Priority | None = None
    priority_raw: str | None = None
    labels: list[str] = field(default_factory=list)
    parent: str | None = None
    children: list[str] = field(default_factory=list)
    blocked_by: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    acceptance_criteria: str | None = None
    estimate_hours: float | None = None
    logged_hours: float | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    last_activity_at: datetime | None = None
    verified_by: str | None = None
    participants: list[str] = field(default_factory=list)
    status_changes: list[StatusChange] = field(default_factory=list)
    # Fix versions / milestone, in the `fix_versions` history form (see `HISTORY_FIELDS`);
    # None where the source has no such notion. Kept in the field history, not a column.
    fix_versions: list[dict[str, Any]] | None = None
    # History of `HISTORY_FIELDS` the source reports (changelog, events, messages).
    field_changes: list[FieldChange] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def content_hash(self) -> str:
        """A digest of everything the source said; equal digests mean nothing changed."""
        # orjson serializes the dataclass, its enums, dates and nested payload natively.
        encoded = orjson.dumps(self, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
        return hashlib.blake2b(encoded, digest_size=16).hexdigest()


@dataclass(slots=True, frozen=True)
class Activity:
    """Someone worked on a task through another source's item.

    A Slack message naming `OPS-42` is not a task of its own: it is activity on
    `OPS-42`, whichever source that task lives in. The ledger moves the target's
    `last_activity_at` forward and adds `person` to its participants.
    """

    target_key: str
    at: datetime
    person: str | None = None


@dataclass(slots=True, frozen=True)
class QuarantinedItem:
    """Something a connector fetched but could not map; kept for inspection."""

    reason: str
    payload: str
    external_ref: str | None = None
