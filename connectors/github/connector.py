"""The GitHub connector: each configured repository is one stream.

Per run and repository: the issue listing since the cursor (minus a small
overlap, since `updated_at` lags writes), oldest update first; when it has
anything, one repo-wide comments listing and one repo-wide events listing give
every issue's recent activity, so unchanged issues cost nothing and changed ones
need a call of their own only when the listings cannot tell their whole story
(older comments, sub-issues, blocked-by). Each page commits with the cursor after
it. A complete listing (the first sync, then every `full_listing_every`) re-reads
everything and lets the ledger mark issues that vanished as gone.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from syncd.config import SourceSettings
from syncd.connector import ConnectorContext, Listing, Page
from syncd.connectors.github.gateway import GitHubGateway
from syncd.connectors.github.mapping import (
    MappingError,
    is_pull_request,
    map_issue,
    pr_closes,
    wants_blocked_by_listing,
    wants_sub_issues_listing,
)
from syncd.connectors.github.settings import GitHubSettings
from syncd.connectors.github.webhook import webhook_items
from syncd.model import CLOSED_STATUSES, QuarantinedItem, Task

Json = dict[str, Any]


class GitHubConnector:
    kind: ClassVar[str] = "github"
    settings_model: ClassVar[type[SourceSettings]] = GitHubSettings
    # `syncd run` ingests `issues` / `issue_comment` deliveries directly.
    webhook_items = staticmethod(webhook_items)

    def __init__(self, settings: GitHubSettings, context: ConnectorContext) -> None:
        self.settings = settings
        self.context = context
        self.gateway = GitHubGateway(
            context.source,
            settings.base_url,
            settings.token.get_secret_value(),
            timeout=settings.timeout,
            per_page=settings.per_page,
        )

    def close(self) -> None:
        self.gateway.close()

    def pull(self) -> Iterator[Page | Listing]:
        for repo in self.settings.repos:
            yield from RepoPull(self, repo).run()


class RepoPull:
    """One repository's share of a run."""

    def __init__(self, connector: GitHubConnector, repo: str) -> None:
        self.connector = connector
        self.settings = connector.settings
        self.context = connector.context
        self.gateway = connector.gateway
        self.repo = repo
        self.started = self.context.clock.now()
        self.cursor: Json = self.context.read_cursor(repo) or {}
        self.full = self._complete_listing_due()
        self.comments: dict[int, list[Json]] | None = None
        self.events: dict[int, list[Json]] = {}
        self.event_high_water = int(self.cursor.get("event_id", 0))
        # Merged pull requests are evidence, not tasks: issue key -> keys of PRs closing it.
        self.closing_prs: dict[str, list[str]] = defaultdict(list)
        self.emitted: dict[str, Task] = {}
        self.late_links: dict[str, Task] = {}

    def _complete_listing_due(self) -> bool:
        listed_at = self.cursor.get("listed_at")
        if self.cursor.get("since") is None or listed_at is None:
            return True
        return bool(self.started - _parse(listed_at) >= self.settings.full_listing_every)

    def run(self) -> Iterator[Page | Listing]:
        changed, probe_etag = self.gateway.probe(self.repo, self.cursor.get("probe_etag"))
        if not changed and not self.full:
            self.context.log.info("not modified", stream=self.repo)
            return
        since = (
            None if self.full else _iso(_parse(self.cursor["since"]) - self.settings.since_overlap)
        )
        seen: set[str] = set()
        latest = self.cursor.get("since")
        for listing in self.gateway.issues(self.repo, since):
            if self.comments is None and listing.items:
                self._load_activity(since)
            tasks, quarantined = self._map_page(listing.items, seen)
            latest = _latest_update(listing.items, latest, self.started)
            yield Page(
                stream=self.repo,
                tasks=tasks,
                quarantined=quarantined,
                cursor=self._next_cursor(latest, None),
                fetched=len(listing.items),
                newer_only=True,  # GitHub's updated_at never goes back for an issue
            )
        # Only a listing read to its end may record the probe's ETag.
        yield Page(
            stream=self.repo,
            tasks=list(self.late_links.values()),
            cursor=self._next_cursor(latest, probe_etag),
            newer_only=True,
        )
        if self.full:
            yield Listing(seen, scope=f"{self.repo}#")

    def _next_cursor(self, latest: str | None, probe_etag: str | None) -> Json:
        listed_at = _iso(self.started) if self.full else self.cursor.get("listed_at")
        cursor: Json = {"since": latest, "listed_at": listed_at, "event_id": self.event_high_water}
        if probe_etag:
            cursor["probe_etag"] = probe_etag
        return cursor

    def _load_activity(self, since: str | None) -> None:
        """Recent comments and events of the whole repository, by issue number."""
        self.comments = defaultdict(list)
        for comment in self.gateway.repo_comments(self.repo, since):
            number = _issue_number(comment.get("issue_url"))
            if number is not None:
                self.comments[number].append(comment)
        newer_than = 0 if self.full else self.event_high_water
        self.events = defaultdict(list)
        for event in self.gateway.repo_events(self.repo, newer_than):
            issue = event.get("issue")
            number = issue.get("number") if isinstance(issue, dict) else None
            if isinstance(number, int):
                self.events[number].append(event)
            event_id = event.get("id")
            if isinstance(event_id, int):
                self.event_high_water = max(self.event_high_water, event_id)

    def _map_page(
        self, items: list[Json], seen: set[str]
    ) -> tuple[list[Task], list[QuarantinedItem]]:
        tasks: list[Task] = []
        quarantined: list[QuarantinedItem] = []
        for raw in items:
            if is_pull_request(raw):
                self._note_merged_pr(raw)
                continue
            try:
                task = self._map(raw)
            except MappingError as error:
                quarantined.append(
                    QuarantinedItem(
                        reason=str(error),
                        payload=json.dumps(raw, default=str)[:100_000],
                        external_ref=str(raw.get("id") or raw.get("number") or ""),
                    )
                )
                continue
            seen.add(task.external_id)
            self._link_closing_prs(task)
            tasks.append(task)
        return tasks, quarantined

    def _note_merged_pr(self, raw: Json) -> None:
        pull = raw.get("pull_request")
        if not isinstance(pull, dict) or not pull.get("merged_at"):
            return
        pr_key = f"{self.repo}#{raw.get('number')}"
        for issue_key in pr_closes(raw, self.repo):
            self.closing_prs[issue_key].append(pr_key)
            task = self.emitted.get(issue_key)
            if task is not None and pr_key not in task.links:
                task.links.append(pr_key)
                self.late_links[issue_key] = task

    def _link_closing_prs(self, task: Task) -> None:
        for pr_key in self.closing_prs.get(task.key, []):
            if pr_key not in task.links:
                task.links.append(pr_key)
        if task.status in CLOSED_STATUSES:
            self.emitted[task.key] = task

    def _map(self, raw: Json) -> Task:
        number = raw.get("number")
        if not isinstance(number, int):
            raise MappingError("the issue has no number")
        return map_issue(
            raw,
            source=self.context.source,
            settings=self.settings,
            people=self.context.people,
            repo=self.repo,
            comments=self._comments_of(raw, number),
            events=self.events.get(number, []),
            sub_issues=self.gateway.sub_issues(self.repo, number)
            if wants_sub_issues_listing(raw)
            else (),
            blocked_by=self.gateway.blocked_by(self.repo, number)
            if wants_blocked_by_listing(raw)
            else (),
            now=self.context.clock.now(),
        )

    def _comments_of(self, raw: Json, number: int) -> list[Json]:
        known = (self.comments or {}).get(number, [])
        total = raw.get("comments")
        if self.full or not isinstance(total, int) or total <= len(known):
            return known
        # Older comments are not in the recent listing: this changed issue needs its own call.
        return self.gateway.issue_comments(self.repo, number)


def _issue_number(issue_url: object) -> int | None:
    if not isinstance(issue_url, str):
        return None
    tail = issue_url.rstrip("/").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


def _latest_update(items: list[Json], current: str | None, cap: datetime) -> str | None:
    """The newest `updated_at` seen, never past the run's start (changes during the run
    are read again next time) and never before the committed cursor."""
    stamps = [stamp for item in items if (stamp := _parse_or_none(item.get("updated_at")))]
    if current is not None:
        stamps.append(_parse(current))
    if not stamps:
        return current
    newest = min(max(stamps), cap)
    if current is not None:
        newest = max(newest, _parse(current))
    return _iso(newest)


def _parse_or_none(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _parse(value)
    except ValueError:
        return None


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
