"""The in-memory world the simulators serve, its loader and its mutations.

One ``World`` holds people, GitHub repositories, Jira projects and Slack channels.
Every mutation takes the world lock, bumps ``updated_at`` (and the world ``version``
that query caches key on) and tells the listeners, which is how webhooks go out.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from syncd.sandbox.clock import from_slack_ts, parse_day, parse_when, slack_ts, utcnow

if TYPE_CHECKING:
    from syncd.sandbox.scenario import Scenario

Json = dict[str, Any]

DEFAULT_TOKENS: dict[str, list[str]] = {
    "github": ["sandbox-github-token"],
    "jira": ["sandbox-jira-token"],
    "slack": ["xoxb-sandbox"],
}


class WorldError(ValueError):
    """A world file or a mutation refers to something that does not exist."""


@dataclass(slots=True)
class Person:
    id: str
    name: str
    email: str | None = None
    github: str | None = None
    jira: str | None = None
    slack: str | None = None


# ---------------------------------------------------------------- GitHub


@dataclass(slots=True)
class GhUser:
    login: str
    id: int
    type: str = "User"
    name: str | None = None
    email: str | None = None


@dataclass(slots=True)
class GhMilestone:
    number: int
    id: int
    title: str
    state: str = "open"
    description: str | None = None
    due_on: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    closed_at: datetime | None = None
    creator: str | None = None


@dataclass(slots=True)
class GhComment:
    id: int
    issue_id: int
    user: str
    body: str
    created_at: datetime
    updated_at: datetime


@dataclass(slots=True)
class GhEvent:
    id: int
    issue_id: int
    actor: str
    event: str
    created_at: datetime
    detail: Json = field(default_factory=dict)


@dataclass(slots=True)
class GhIssue:
    id: int
    number: int
    repo: str
    title: str
    body: str | None
    user: str
    created_at: datetime
    updated_at: datetime
    state: str = "open"
    state_reason: str | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None
    assignees: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    milestone: int | None = None
    locked: bool = False
    pull_request: Json | None = None
    comments: list[GhComment] = field(default_factory=list)
    events: list[GhEvent] = field(default_factory=list)
    sub_issue_ids: list[int] = field(default_factory=list)
    parent_id: int | None = None
    blocked_by_ids: list[int] = field(default_factory=list)


@dataclass(slots=True)
class GhRepo:
    id: int
    owner: str
    name: str
    description: str = ""
    private: bool = False
    created_at: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)  # name -> colour
    label_ids: dict[str, int] = field(default_factory=dict)
    milestones: dict[int, GhMilestone] = field(default_factory=dict)
    issues: dict[int, GhIssue] = field(default_factory=dict)  # number -> issue
    moved: dict[int, int] = field(default_factory=dict)  # old number -> issue id
    next_number: int = 1

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


# ---------------------------------------------------------------- Jira


@dataclass(slots=True)
class JiraComment:
    id: str
    author: str
    body: str
    created: datetime
    updated: datetime
    properties: list[Json] = field(default_factory=list)


@dataclass(slots=True)
class JiraWorklog:
    id: str
    author: str
    time_spent_seconds: int
    started: datetime
    created: datetime
    comment: str = ""


@dataclass(slots=True)
class JiraHistory:
    id: str
    author: str
    created: datetime
    items: list[Json]


@dataclass(slots=True)
class JiraProject:
    id: str
    key: str
    name: str
    next_number: int = 1


@dataclass(slots=True)
class JiraIssue:
    id: str
    key: str
    project: str
    summary: str
    created: datetime
    updated: datetime
    description: str | None = None
    status: str = "To Do"
    priority: str | None = "Medium"
    issuetype: str = "Task"
    assignee: str | None = None
    reporter: str | None = None
    duedate: date | None = None
    labels: list[str] = field(default_factory=list)
    parent_id: str | None = None
    blocked_by_ids: list[str] = field(default_factory=list)
    original_estimate: int | None = None
    remaining_estimate: int | None = None
    resolutiondate: datetime | None = None
    acceptance_criteria: str | None = None
    team: str | None = None
    comments: list[JiraComment] = field(default_factory=list)
    worklogs: list[JiraWorklog] = field(default_factory=list)
    changelog: list[JiraHistory] = field(default_factory=list)

    @property
    def time_spent(self) -> int | None:
        total = sum(w.time_spent_seconds for w in self.worklogs)
        return total or None


# ---------------------------------------------------------------- Slack


@dataclass(slots=True)
class SlackUser:
    id: str
    name: str
    real_name: str
    email: str | None = None
    is_bot: bool = False
    deleted: bool = False
    tz: str = "UTC"


@dataclass(slots=True)
class SlackMessage:
    ts: str
    channel: str
    text: str
    user: str | None = None
    bot_id: str | None = None
    thread_ts: str | None = None
    reply_ts: list[str] = field(default_factory=list)
    reactions: dict[str, list[str]] = field(default_factory=dict)
    metadata: Json | None = None
    edited: Json | None = None
    subtype: str | None = None

    @property
    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts


@dataclass(slots=True)
class SlackChannel:
    id: str
    name: str
    messages: dict[str, SlackMessage] = field(default_factory=dict)
    top_ts: list[str] = field(default_factory=list)  # sorted, top-level messages only


@dataclass(frozen=True, slots=True)
class Change:
    """What a mutation did; webhooks turn these into deliveries."""

    service: str
    action: str
    ref: Any
    detail: Json = field(default_factory=dict)


JIRA_STATUSES: dict[str, tuple[str, str]] = {
    # status name -> (status id, status category key)
    "To Do": ("10000", "new"),
    "In Progress": ("3", "indeterminate"),
    "In Review": ("10001", "indeterminate"),
    "Blocked": ("10002", "indeterminate"),
    "Done": ("10003", "done"),
    "Won't Do": ("10004", "done"),
}
JIRA_PRIORITIES = ["Highest", "High", "Medium", "Low", "Lowest"]
JIRA_ISSUETYPES: dict[str, tuple[str, bool]] = {
    "Task": ("10001", False),
    "Story": ("10002", False),
    "Bug": ("10004", False),
    "Epic": ("10000", False),
    "Sub-task": ("10003", True),
}


class World:
    """Everything the simulators serve, safe to mutate from tests while served."""

    def __init__(self, now: datetime | None = None) -> None:
        self.lock = threading.RLock()
        self.now = now or utcnow()
        self.version = 0
        self.tokens: dict[str, list[str]] = {k: list(v) for k, v in DEFAULT_TOKENS.items()}
        self.people: dict[str, Person] = {}
        self.settings: Json = {}
        # Faults, webhook targets and timed changes the world file asks of the sandbox.
        self.scenario: Scenario | None = None
        self._listeners: list[Callable[[Change], None]] = []
        # GitHub
        self.gh_users: dict[str, GhUser] = {}
        self.gh_viewer = "syncd-bot"
        self.gh_rate_limit = 5000
        self.repos: dict[str, GhRepo] = {}
        self.repo_moves: dict[str, str] = {}
        self.gh_issues: dict[int, GhIssue] = {}
        self.gh_comments: dict[int, GhComment] = {}
        self._gh_ids = 1_000_000
        # Jira
        self.jira_deployment = "Cloud"
        self.jira_viewer = "557058:sandbox-bot"
        self.jira_users: dict[str, Json] = {}
        self.projects: dict[str, JiraProject] = {}
        self.jira_issues: dict[str, JiraIssue] = {}  # id -> issue
        self.jira_keys: dict[str, str] = {}  # key (current and old) -> id
        self._jira_ids = 10_000
        # Slack
        self.slack_team = {"id": "T0SANDBOX", "name": "sandbox", "domain": "sandbox"}
        self.slack_bot = {"user_id": "U0SYNCDBOT", "bot_id": "B0SYNCDBOT", "name": "syncd"}
        self.slack_users: dict[str, SlackUser] = {}
        self.channels: dict[str, SlackChannel] = {}
        self._gh_sorted_cache: dict[tuple[Any, ...], list[Any]] = {}

    # ------------------------------------------------------------ plumbing

    def subscribe(self, listener: Callable[[Change], None]) -> None:
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[Change], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @contextmanager
    def _mutating(self) -> Iterator[list[Change]]:
        """Hold the lock, collect changes, bump the version, then notify outside the lock."""
        changes: list[Change] = []
        with self.lock:
            yield changes
            self.version += 1
            self._gh_sorted_cache.clear()
        for change in changes:
            for listener in list(self._listeners):
                listener(change)

    def tick(self) -> datetime:
        """A fresh, strictly increasing 'now' so every mutation sorts after the previous."""
        stamp = utcnow()
        if stamp <= self.now:
            stamp = self.now + timedelta(milliseconds=1)
        self.now = stamp
        return stamp

    def next_gh_id(self) -> int:
        self._gh_ids += 1
        return self._gh_ids

    def next_jira_id(self) -> str:
        self._jira_ids += 1
        return str(self._jira_ids)

    def when(self, value: Any, default: datetime | None = None) -> datetime:
        parsed = parse_when(value, self.now)
        if parsed is None:
            return default or self.now
        return parsed

    # ------------------------------------------------------------ loading

    @classmethod
    def load(cls, path: str | Path) -> World:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise WorldError(
                f"line {error.lineno}, column {error.colno}: not valid JSON: {error.msg}"
            ) from None
        return cls.from_dict(data)

    @classmethod
    def default(cls) -> World:
        text = resources.files("syncd.sandbox").joinpath("worlds/default.json").read_text("utf-8")
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, data: Json) -> World:
        from syncd.sandbox.loader import populate

        world = cls(now=parse_when(data.get("now"), utcnow()) if data.get("now") else None)
        populate(world, data)
        return world

    # ------------------------------------------------------------ identities

    def person(self, ref: str | None) -> Person | None:
        return self.people.get(ref) if ref else None

    def gh_login(self, ref: str) -> str:
        person = self.people.get(ref)
        login = person.github if person and person.github else ref
        self.ensure_gh_user(login)
        return login

    def ensure_gh_user(self, login: str, kind: str = "User") -> GhUser:
        user = self.gh_users.get(login)
        if user is None:
            user = GhUser(login=login, id=100 + len(self.gh_users), type=kind)
            for person in self.people.values():
                if person.github == login:
                    user.name, user.email = person.name, person.email
            self.gh_users[login] = user
        return user

    def jira_account(self, ref: str | None) -> str | None:
        if ref is None:
            return None
        person = self.people.get(ref)
        account = person.jira if person and person.jira else ref
        if account not in self.jira_users:
            name = person.name if person else account
            email = person.email if person else None
            self.jira_users[account] = {"accountId": account, "displayName": name, "email": email}
        return account

    def slack_user_id(self, ref: str) -> str:
        person = self.people.get(ref)
        return person.slack if person and person.slack else ref

    # ------------------------------------------------------------ GitHub reads

    def repo(self, full_name: str) -> GhRepo | None:
        return self.repos.get(full_name.lower())

    def gh_issue(self, full_name: str, number: int) -> GhIssue | None:
        repo = self.repo(full_name)
        return repo.issues.get(number) if repo else None

    def gh_moved_issue(self, full_name: str, number: int) -> GhIssue | None:
        """The issue that used to live at ``full_name#number`` before a transfer."""
        repo = self.repo(full_name)
        if repo is None or number not in repo.moved:
            return None
        return self.gh_issues.get(repo.moved[number])

    def gh_sorted(self, full_name: str, state: str, sort: str, direction: str) -> list[GhIssue]:
        """A repository's issues filtered by state and sorted, cached until the next change."""
        key = (full_name.lower(), state, sort, direction)
        cached = self._gh_sorted_cache.get(key)
        if cached is not None:
            return cached
        repo = self.repo(full_name)
        items = [] if repo is None else list(repo.issues.values())
        if state != "all":
            items = [i for i in items if i.state == state]
        sort_keys: dict[str, Callable[[GhIssue], Any]] = {
            "created": lambda i: (i.created_at, i.id),
            "updated": lambda i: (i.updated_at, i.id),
            "comments": lambda i: (len(i.comments), i.id),
        }
        items.sort(key=sort_keys.get(sort, sort_keys["created"]), reverse=direction == "desc")
        self._gh_sorted_cache[key] = items
        return items

    def gh_repo_comments(self, full_name: str) -> list[GhComment]:
        key = ("comments", full_name.lower())
        cached = self._gh_sorted_cache.get(key)
        if cached is not None:
            return cached
        repo = self.repo(full_name)
        comments = [c for i in (repo.issues.values() if repo else []) for c in i.comments]
        comments.sort(key=lambda c: c.id)
        self._gh_sorted_cache[key] = comments
        return comments

    def gh_blocking(self, issue: GhIssue) -> list[GhIssue]:
        """The issues this one blocks."""
        ids = self._reverse_index("gh_blocks", lambda: (
            (b, i.id) for i in self.gh_issues.values() for b in i.blocked_by_ids))
        return [self.gh_issues[i] for i in ids.get(issue.id, []) if i in self.gh_issues]

    def _reverse_index(self, name: str,
                       pairs: Callable[[], Iterator[tuple[Any, Any]]]) -> dict[Any, list[Any]]:
        """A target -> sources map, rebuilt only after the world changed."""
        cached = self._gh_sorted_cache.get(("index", name))
        if cached is not None:
            return cached[0]  # type: ignore[no-any-return]
        index: dict[Any, list[Any]] = {}
        for target, source in pairs():
            index.setdefault(target, []).append(source)
        self._gh_sorted_cache[("index", name)] = [index]
        return index

    # ------------------------------------------------------------ GitHub mutations

    def _gh_touch(self, issue: GhIssue, actor: str, event: str | None, **detail: Any) -> None:
        issue.updated_at = self.tick()
        if event:
            issue.events.append(
                GhEvent(self.next_gh_id(), issue.id, actor, event, issue.updated_at, dict(detail))
            )

    def _need_gh(self, full_name: str, number: int) -> GhIssue:
        issue = self.gh_issue(full_name, number)
        if issue is None:
            raise WorldError(f"no GitHub issue {full_name}#{number}")
        return issue

    def add_gh_issue(self, full_name: str, title: str, body: str | None = None,
                     user: str | None = None, **fields: Any) -> GhIssue:
        from syncd.sandbox.loader import build_gh_issue

        with self._mutating() as changes:
            repo = self.repo(full_name)
            if repo is None:
                raise WorldError(f"no GitHub repo {full_name}")
            spec = {"title": title, "body": body, "user": user or self.gh_viewer, **fields}
            spec.setdefault("created_at", self.tick().isoformat())
            issue = build_gh_issue(self, repo, spec)
            changes.append(Change("github", "opened", issue.id))
            return issue

    def edit_gh_issue(self, full_name: str, number: int, actor: str | None = None,
                      **fields: Any) -> GhIssue:
        """Change title, body, labels, assignees, milestone, state or state_reason."""
        with self._mutating() as changes:
            issue = self._need_gh(full_name, number)
            who = self.gh_login(actor) if actor else self.gh_viewer
            for action, detail in self._apply_gh_fields(issue, who, fields):
                changes.append(Change("github", action, issue.id, detail))
            return issue

    def _apply_gh_fields(self, issue: GhIssue, who: str, fields: Json) -> list[tuple[str, Json]]:
        done: list[tuple[str, Json]] = []
        if "title" in fields or "body" in fields:
            old = {k: getattr(issue, k) for k in ("title", "body") if k in fields}
            issue.title = fields.get("title", issue.title)
            issue.body = fields.get("body", issue.body)
            self._gh_touch(issue, who, "renamed" if "title" in fields else None)
            done.append(("edited", {"changes": {k: {"from": v} for k, v in old.items()}}))
        if "labels" in fields:
            issue.labels = [str(x) for x in fields["labels"]]
            self._gh_touch(issue, who, "labeled")
            done.append(("labeled", {}))
        if "assignees" in fields or "assignee" in fields:
            refs = fields.get("assignees")
            if refs is None:
                refs = [fields["assignee"]] if fields.get("assignee") else []
            issue.assignees = [self.gh_login(r) for r in refs]
            self._gh_touch(issue, who, "assigned" if issue.assignees else "unassigned")
            done.append(("assigned" if issue.assignees else "unassigned", {}))
        if "milestone" in fields:
            issue.milestone = fields["milestone"]
            self._gh_touch(issue, who, "milestoned" if issue.milestone else "demilestoned")
            done.append(("milestoned" if issue.milestone else "demilestoned", {}))
        if "state" in fields and fields["state"] != issue.state:
            done.append(self._gh_set_state(issue, who, fields["state"], fields.get("state_reason")))
        elif fields.get("state_reason"):
            issue.state_reason = fields["state_reason"]
            self._gh_touch(issue, who, None)
        return done

    def _gh_set_state(self, issue: GhIssue, who: str, state: str,
                      reason: str | None) -> tuple[str, Json]:
        if state == "closed":
            issue.state, issue.state_reason = "closed", reason or "completed"
            self._gh_touch(issue, who, "closed")
            issue.closed_at, issue.closed_by = issue.updated_at, who
            return "closed", {}
        issue.state, issue.state_reason = "open", "reopened"
        issue.closed_at = issue.closed_by = None
        self._gh_touch(issue, who, "reopened")
        return "reopened", {}

    def close_gh_issue(self, full_name: str, number: int, state_reason: str = "completed",
                       actor: str | None = None) -> GhIssue:
        return self.edit_gh_issue(full_name, number, actor, state="closed",
                                  state_reason=state_reason)

    def reopen_gh_issue(self, full_name: str, number: int, actor: str | None = None) -> GhIssue:
        return self.edit_gh_issue(full_name, number, actor, state="open")

    def reassign_gh_issue(self, full_name: str, number: int, assignees: list[str],
                          actor: str | None = None) -> GhIssue:
        return self.edit_gh_issue(full_name, number, actor, assignees=assignees)

    def add_gh_comment(self, full_name: str, number: int, body: str,
                       user: str | None = None) -> GhComment:
        with self._mutating() as changes:
            issue = self._need_gh(full_name, number)
            stamp = self.tick()
            login = self.gh_login(user) if user else self.gh_viewer
            comment = GhComment(self.next_gh_id(), issue.id, login, body, stamp, stamp)
            issue.comments.append(comment)
            self.gh_comments[comment.id] = comment
            issue.updated_at = stamp
            changes.append(Change("github", "comment_created", comment.id))
            return comment

    def edit_gh_comment(self, comment_id: int, body: str) -> GhComment:
        with self._mutating() as changes:
            comment = self.gh_comments.get(comment_id)
            if comment is None:
                raise WorldError(f"no GitHub comment {comment_id}")
            old = comment.body
            comment.body, comment.updated_at = body, self.tick()
            self.gh_issues[comment.issue_id].updated_at = comment.updated_at
            changes.append(Change("github", "comment_edited", comment.id, {"from": old}))
            return comment

    def delete_gh_comment(self, comment_id: int) -> None:
        with self._mutating() as changes:
            comment = self.gh_comments.pop(comment_id, None)
            if comment is None:
                raise WorldError(f"no GitHub comment {comment_id}")
            issue = self.gh_issues[comment.issue_id]
            issue.comments.remove(comment)
            issue.updated_at = self.tick()
            changes.append(Change("github", "comment_deleted", comment.id, {"comment": comment}))

    def transfer_gh_issue(self, full_name: str, number: int, to_repo: str) -> GhIssue:
        """Move an issue to another repo: a new number, the same id; the old URL redirects."""
        with self._mutating() as changes:
            issue = self._need_gh(full_name, number)
            source, target = self.repo(full_name), self.repo(to_repo)
            if source is None or target is None:
                raise WorldError(f"no GitHub repo {to_repo}")
            del source.issues[number]
            source.moved[number] = issue.id
            issue.repo, issue.number = target.full_name, target.next_number
            target.next_number += 1
            target.issues[issue.number] = issue
            issue.milestone = None
            issue.labels = [x for x in issue.labels if x in target.labels]
            self._gh_touch(issue, self.gh_viewer, "transferred")
            detail = {"from_repo": source.full_name, "from_number": number}
            changes.append(Change("github", "transferred", issue.id, detail))
            return issue

    def delete_gh_issue(self, full_name: str, number: int) -> None:
        with self._mutating() as changes:
            issue = self._need_gh(full_name, number)
            repo = self.repo(full_name)
            assert repo is not None
            del repo.issues[number]
            del self.gh_issues[issue.id]
            for comment in issue.comments:
                self.gh_comments.pop(comment.id, None)
            changes.append(Change("github", "deleted", issue.id, {"issue": issue}))

    def add_gh_sub_issue(self, full_name: str, number: int, sub_issue_id: int) -> GhIssue:
        with self._mutating() as changes:
            parent = self._need_gh(full_name, number)
            child = self.gh_issues.get(sub_issue_id)
            if child is None:
                raise WorldError(f"no GitHub issue id {sub_issue_id}")
            if sub_issue_id not in parent.sub_issue_ids:
                parent.sub_issue_ids.append(sub_issue_id)
            child.parent_id = parent.id
            self._gh_touch(parent, self.gh_viewer, "sub_issue_added")
            changes.append(Change("github", "edited", parent.id, {}))
            return parent

    def remove_gh_sub_issue(self, full_name: str, number: int, sub_issue_id: int) -> GhIssue:
        with self._mutating() as changes:
            parent = self._need_gh(full_name, number)
            if sub_issue_id not in parent.sub_issue_ids:
                raise WorldError(f"issue id {sub_issue_id} is not a sub-issue")
            parent.sub_issue_ids.remove(sub_issue_id)
            self.gh_issues[sub_issue_id].parent_id = None
            self._gh_touch(parent, self.gh_viewer, "sub_issue_removed")
            changes.append(Change("github", "edited", parent.id, {}))
            return parent

    def add_gh_blocked_by(self, full_name: str, number: int, blocker_id: int) -> GhIssue:
        with self._mutating() as changes:
            issue = self._need_gh(full_name, number)
            if blocker_id not in self.gh_issues:
                raise WorldError(f"no GitHub issue id {blocker_id}")
            if blocker_id not in issue.blocked_by_ids:
                issue.blocked_by_ids.append(blocker_id)
            self._gh_touch(issue, self.gh_viewer, "blocked_by_added")
            changes.append(Change("github", "edited", issue.id, {}))
            return issue

    def remove_gh_blocked_by(self, full_name: str, number: int, blocker_id: int) -> GhIssue:
        with self._mutating() as changes:
            issue = self._need_gh(full_name, number)
            if blocker_id not in issue.blocked_by_ids:
                raise WorldError(f"issue id {blocker_id} does not block {full_name}#{number}")
            issue.blocked_by_ids.remove(blocker_id)
            self._gh_touch(issue, self.gh_viewer, "blocked_by_removed")
            changes.append(Change("github", "edited", issue.id, {}))
            return issue

    # ------------------------------------------------------------ Jira reads

    def jira_issue(self, id_or_key: str) -> JiraIssue | None:
        """By id or key; an old key of a moved issue still resolves, as in Jira."""
        issue_id = id_or_key if id_or_key in self.jira_issues else self.jira_keys.get(
            id_or_key.upper())
        return self.jira_issues.get(issue_id) if issue_id else None

    def jira_children(self, issue: JiraIssue) -> list[JiraIssue]:
        ids = self._reverse_index("jira_children", lambda: (
            (i.parent_id, i.id) for i in self.jira_issues.values() if i.parent_id))
        return [self.jira_issues[i] for i in ids.get(issue.id, []) if i in self.jira_issues]

    def jira_blocking(self, issue: JiraIssue) -> list[JiraIssue]:
        """The issues this one blocks (the outward side of its "Blocks" links)."""
        ids = self._reverse_index("jira_blocks", lambda: (
            (b, i.id) for i in self.jira_issues.values() for b in i.blocked_by_ids))
        return [self.jira_issues[i] for i in ids.get(issue.id, []) if i in self.jira_issues]

    # ------------------------------------------------------------ Jira mutations

    def _need_jira(self, id_or_key: str) -> JiraIssue:
        issue = self.jira_issue(id_or_key)
        if issue is None:
            raise WorldError(f"no Jira issue {id_or_key}")
        return issue

    def _jira_history(self, issue: JiraIssue, author: str | None, items: list[Json]) -> None:
        issue.updated = self.tick()
        who = self.jira_account(author) if author else self.jira_viewer
        assert who is not None
        history_id = str(100_000 + sum(len(i.changelog) for i in self.jira_issues.values()))
        issue.changelog.append(JiraHistory(history_id, who, issue.updated, items))

    def edit_jira_issue(self, id_or_key: str, author: str | None = None,
                        **fields: Any) -> JiraIssue:
        """Change summary, description, status, priority, assignee, duedate, labels..."""
        with self._mutating() as changes:
            issue = self._need_jira(id_or_key)
            items = self._apply_jira_fields(issue, fields)
            self._jira_history(issue, author, items)
            changes.append(Change("jira", "issue_updated", issue.id, {"items": items}))
            return issue

    def _apply_jira_fields(self, issue: JiraIssue, fields: Json) -> list[Json]:
        items: list[Json] = []
        for name, value in fields.items():
            if name == "assignee":
                value = self.jira_account(value)
            elif name == "duedate":
                value = parse_day(value, self.now) if isinstance(value, str) else value
            elif name == "status":
                if value not in JIRA_STATUSES:
                    raise WorldError(f"unknown Jira status {value!r}")
                done = JIRA_STATUSES[value][1] == "done"
                issue.resolutiondate = self.now if done else None
            elif not hasattr(issue, name) or name in ("id", "key", "comments", "changelog"):
                raise WorldError(f"unknown Jira field {name!r}")
            old = getattr(issue, name)
            setattr(issue, name, value)
            items.append(_history_item(name, old, value))
        return items

    def transition_jira_issue(self, id_or_key: str, status: str,
                              author: str | None = None) -> JiraIssue:
        return self.edit_jira_issue(id_or_key, author, status=status)

    def close_jira_issue(self, id_or_key: str, author: str | None = None) -> JiraIssue:
        return self.edit_jira_issue(id_or_key, author, status="Done")

    def reopen_jira_issue(self, id_or_key: str, author: str | None = None) -> JiraIssue:
        return self.edit_jira_issue(id_or_key, author, status="To Do")

    def reassign_jira_issue(self, id_or_key: str, assignee: str | None,
                            author: str | None = None) -> JiraIssue:
        return self.edit_jira_issue(id_or_key, author, assignee=assignee)

    def add_jira_comment(self, id_or_key: str, body: str, author: str | None = None,
                         properties: list[Json] | None = None) -> JiraComment:
        with self._mutating() as changes:
            issue = self._need_jira(id_or_key)
            stamp = self.tick()
            who = self.jira_account(author) if author else self.jira_viewer
            assert who is not None
            comment_id = str(20_000 + sum(len(i.comments) for i in self.jira_issues.values()))
            comment = JiraComment(comment_id, who, body, stamp, stamp, list(properties or []))
            issue.comments.append(comment)
            issue.updated = stamp
            changes.append(Change("jira", "comment_created", issue.id, {"comment": comment}))
            return comment

    def edit_jira_comment(self, id_or_key: str, comment_id: str, body: str) -> JiraComment:
        with self._mutating() as changes:
            issue = self._need_jira(id_or_key)
            comment = next((c for c in issue.comments if c.id == comment_id), None)
            if comment is None:
                raise WorldError(f"no comment {comment_id} on {issue.key}")
            comment.body, comment.updated = body, self.tick()
            issue.updated = comment.updated
            changes.append(Change("jira", "comment_updated", issue.id, {"comment": comment}))
            return comment

    def add_jira_worklog(self, id_or_key: str, seconds: int, author: str | None = None,
                         started: datetime | None = None, comment: str = "") -> JiraWorklog:
        with self._mutating() as changes:
            issue = self._need_jira(id_or_key)
            stamp = self.tick()
            who = self.jira_account(author) if author else self.jira_viewer
            assert who is not None
            worklog_id = str(30_000 + sum(len(i.worklogs) for i in self.jira_issues.values()))
            worklog = JiraWorklog(worklog_id, who, seconds, started or stamp, stamp, comment)
            issue.worklogs.append(worklog)
            if issue.remaining_estimate is not None:
                issue.remaining_estimate = max(0, issue.remaining_estimate - seconds)
            issue.updated = stamp
            changes.append(Change("jira", "issue_updated", issue.id, {"items": []}))
            return worklog

    def move_jira_issue(self, id_or_key: str, to_project: str) -> JiraIssue:
        """Move an issue to another project: a new key, the same id; the old key resolves."""
        with self._mutating() as changes:
            issue = self._need_jira(id_or_key)
            project = self.projects.get(to_project.upper())
            if project is None:
                raise WorldError(f"no Jira project {to_project}")
            old_key = issue.key
            issue.key = f"{project.key}-{project.next_number}"
            project.next_number += 1
            issue.project = project.key
            self.jira_keys[issue.key] = issue.id
            self._jira_history(issue, None, [
                {"field": "Key", "fieldtype": "jira", "from": None, "fromString": old_key,
                 "to": None, "toString": issue.key},
                {"field": "project", "fieldtype": "jira", "from": None, "fromString": None,
                 "to": project.id, "toString": project.name},
            ])
            changes.append(Change("jira", "issue_updated", issue.id, {"moved_from": old_key}))
            return issue

    def delete_jira_issue(self, id_or_key: str) -> None:
        with self._mutating() as changes:
            issue = self._need_jira(id_or_key)
            del self.jira_issues[issue.id]
            for key in [k for k, v in self.jira_keys.items() if v == issue.id]:
                del self.jira_keys[key]
            changes.append(Change("jira", "issue_deleted", issue.id, {"issue": issue}))

    # ------------------------------------------------------------ Slack reads

    def channel(self, channel_id: str) -> SlackChannel | None:
        return self.channels.get(channel_id)

    # ------------------------------------------------------------ Slack mutations

    def _unique_ts(self, channel: SlackChannel, when: datetime) -> str:
        ts = slack_ts(when)
        while ts in channel.messages:
            when = when + timedelta(microseconds=1)
            ts = slack_ts(when)
        return ts

    def _need_channel(self, channel_id: str) -> SlackChannel:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise WorldError(f"no Slack channel {channel_id}")
        return channel

    def insert_slack_message(self, channel: SlackChannel, message: SlackMessage) -> None:
        """Index a message (no notification); used by the loader and by ``add``."""
        channel.messages[message.ts] = message
        if message.is_reply:
            parent = channel.messages.get(message.thread_ts or "")
            if parent is None:
                raise WorldError(f"no thread parent {message.thread_ts} in {channel.id}")
            parent.thread_ts = parent.ts
            bisect.insort(parent.reply_ts, message.ts, key=float)
        else:
            bisect.insort(channel.top_ts, message.ts, key=float)

    def add_slack_message(self, channel_id: str, text: str, user: str | None = None,
                          thread_ts: str | None = None, metadata: Json | None = None,
                          bot: bool = False) -> SlackMessage:
        """Post a message (or a reply when ``thread_ts`` is given)."""
        with self._mutating() as changes:
            channel = self._need_channel(channel_id)
            ts = self._unique_ts(channel, self.tick())
            author = self.slack_user_id(user) if user else self.slack_bot["user_id"]
            message = SlackMessage(ts=ts, channel=channel_id, text=text, user=author,
                                   thread_ts=thread_ts, metadata=metadata)
            if bot or author == self.slack_bot["user_id"]:
                message.bot_id = self.slack_bot["bot_id"]
            self.insert_slack_message(channel, message)
            changes.append(Change("slack", "message", (channel_id, ts)))
            return message

    def add_slack_reply(self, channel_id: str, thread_ts: str, text: str,
                        user: str | None = None) -> SlackMessage:
        return self.add_slack_message(channel_id, text, user, thread_ts=thread_ts)

    def _need_message(self, channel_id: str, ts: str) -> SlackMessage:
        message = self._need_channel(channel_id).messages.get(ts)
        if message is None:
            raise WorldError(f"no Slack message {channel_id}/{ts}")
        return message

    def edit_slack_message(self, channel_id: str, ts: str, text: str | None = None,
                           metadata: Json | None = None) -> SlackMessage:
        with self._mutating() as changes:
            message = self._need_message(channel_id, ts)
            previous = {"text": message.text, "ts": message.ts, "user": message.user}
            if text is not None:
                message.text = text
            if metadata is not None:
                message.metadata = metadata
            edit_ts = slack_ts(self.tick())
            message.edited = {"user": message.user, "ts": edit_ts}
            changes.append(Change("slack", "message_changed", (channel_id, ts),
                                  {"previous": previous, "event_ts": edit_ts}))
            return message

    def add_slack_reaction(self, channel_id: str, ts: str, name: str,
                           user: str | None = None) -> SlackMessage:
        with self._mutating() as changes:
            message = self._need_message(channel_id, ts)
            who = self.slack_user_id(user) if user else self.slack_bot["user_id"]
            users = message.reactions.setdefault(name, [])
            if who not in users:
                users.append(who)
            stamp = slack_ts(self.tick())
            changes.append(Change("slack", "reaction_added", (channel_id, ts),
                                  {"reaction": name, "user": who, "event_ts": stamp}))
            return message

    def delete_slack_message(self, channel_id: str, ts: str) -> None:
        with self._mutating() as changes:
            channel = self._need_channel(channel_id)
            message = self._need_message(channel_id, ts)
            del channel.messages[ts]
            if message.is_reply:
                parent = channel.messages.get(message.thread_ts or "")
                if parent and ts in parent.reply_ts:
                    parent.reply_ts.remove(ts)
            else:
                channel.top_ts.remove(ts)
            stamp = slack_ts(self.tick())
            changes.append(Change("slack", "message_deleted", (channel_id, ts),
                                  {"previous": message, "event_ts": stamp}))

    def slack_latest_reply(self, message: SlackMessage) -> datetime | None:
        return from_slack_ts(message.reply_ts[-1]) if message.reply_ts else None


def _history_item(name: str, old: Any, new: Any) -> Json:
    """One Jira changelog item; ``fromString``/``toString`` are what people read."""
    field_names = {"summary": "summary", "description": "description", "status": "status",
                   "priority": "priority", "assignee": "assignee", "duedate": "duedate",
                   "labels": "labels"}

    def text(value: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, list):
            return " ".join(str(v) for v in value)
        return str(value)

    item: Json = {"field": field_names.get(name, name), "fieldtype": "jira",
                  "from": None, "fromString": text(old), "to": None, "toString": text(new)}
    if name == "assignee":
        item["fieldId"] = "assignee"
        item["tmpFromAccountId"], item["tmpToAccountId"] = old, new
        item["from"], item["to"] = old, new
    elif name == "status":
        item["from"] = JIRA_STATUSES.get(str(old), ("", ""))[0] or None
        item["to"] = JIRA_STATUSES.get(str(new), ("", ""))[0] or None
    return item
