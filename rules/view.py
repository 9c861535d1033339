"""What a rule sees of a task: its fields plus the tasks it is connected to.

Rules run over many tasks, so a view is a slotted dataclass loaded with the
columns rules need (never the raw payload). Blockers and linked items of the
same work are resolved across sources by key before rules run. Views loaded for
the rules engine leave url, updated_at, closed_at and participants at their
defaults (`syncd.rules.store.REPORT_ONLY`): a kind that needs one must take it
out of that set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

CLOSED = frozenset(("done", "verified", "cancelled"))


@dataclass(slots=True)
class TaskView:
    id: int
    source: str
    key: str
    title: str
    status: str
    url: str | None = None
    description: str = ""
    status_raw: str | None = None
    owners: list[str] = field(default_factory=list)
    team: str | None = None
    reporter: str | None = None
    due: date | None = None
    priority: str | None = None
    labels: list[str] = field(default_factory=list)
    parent: str | None = None
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
    # Resolved neighbours (filled by the engine).
    blockers: list[TaskView] = field(default_factory=list)
    same_work: list[TaskView] = field(default_factory=list)

    @property
    def project(self) -> str:
        """Jira project, GitHub repository, Slack channel; the source for email."""
        if "#" in self.key:
            return self.key.split("#", 1)[0]
        if "/" in self.key and not self.key.startswith("<"):
            return self.key.split("/", 1)[0]
        head, dash, tail = self.key.partition("-")
        if dash and tail.isdigit():
            return head
        return self.source

    @property
    def closed(self) -> bool:
        return self.status in CLOSED
