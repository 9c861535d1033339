"""The Jira connector: incremental JQL search into pages, a periodic ids-only listing.

Per run: the site's facts (deployment, the account's time zone, custom field ids),
then the issues updated since the committed cursor minus a look-back window
(JQL has minute precision and search is eventually consistent), page by page,
each page carrying the cursor after it. Every `full_listing_every` a listing of
ids only lets the driver mark deleted issues, and issues moved out of the JQL,
as gone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from syncd.connector import ConnectorContext, Listing, Page
from syncd.connectors.jira.gateway import LISTING_PAGE_SIZE, JiraGateway, SearchPage
from syncd.connectors.jira.mapping import MappingError, map_issue
from syncd.connectors.jira.settings import JiraSettings
from syncd.errors import FailureKind, SourceError
from syncd.model import QuarantinedItem, Task
from syncd.retry import RetryPolicy

ISSUES = "issues"  # cursor: {"updated": <latest `updated` stored, ISO>}
LISTING = "listing"  # cursor: {"completed_at": <when the last complete listing started, ISO>}
SITE = "site"  # cursor: facts about the site (deployment, time zone, field ids) and when asked

# What the mapping reads; custom fields are added once their ids are known.
SEARCH_FIELDS = (
    "summary", "description", "status", "priority", "assignee", "reporter", "duedate",
    "labels", "issuetype", "parent", "subtasks", "issuelinks", "timeoriginalestimate",
    "timeestimate", "aggregatetimeoriginalestimate", "timespent", "aggregatetimespent",
    "timetracking", "created", "updated", "resolutiondate", "resolution", "comment",
)  # fmt: skip
_FIELD_ID = re.compile(r"^(customfield_\d+|[a-z]+)$")


# --- pure decisions, tested alone ---------------------------------------------------------


def changed_since_jql(
    jql: str, cursor: Mapping[str, Any] | None, lookback: timedelta, zone: tzinfo
) -> str:
    """The configured JQL narrowed to issues updated since the cursor, oldest first.

    JQL dates are minutes in the account's time zone; flooring to the minute and
    going back `lookback` re-reads a window, which the ledger's content hash dedupes.
    """
    order = " ORDER BY updated ASC, key ASC"
    since = _cursor_time(cursor)
    if since is None:
        return f"({jql}){order}"
    local = (since - lookback).astimezone(zone)
    return f'({jql}) AND updated >= "{local:%Y-%m-%d %H:%M}"{order}'


def advance_cursor(cursor: Mapping[str, Any] | None, tasks: Sequence[Task]) -> dict[str, Any]:
    """The cursor after a page: the latest `updated` seen, never earlier than before."""
    stamps = [t.updated_at for t in tasks if t.updated_at is not None]
    previous = _cursor_time(cursor)
    if previous is not None:
        stamps.append(previous)
    if not stamps:
        return dict(cursor or {})
    return {**(cursor or {}), "updated": max(stamps).astimezone(UTC).isoformat()}


def listing_due(cursor: Mapping[str, Any] | None, now: datetime, every: timedelta) -> bool:
    last = _parse_time(cursor.get("completed_at") if cursor else None)
    return last is None or now - last >= every


def _zone_named(name: object) -> tzinfo:
    try:
        return ZoneInfo(name) if isinstance(name, str) and name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _cursor_time(cursor: Mapping[str, Any] | None) -> datetime | None:
    return _parse_time(cursor.get("updated") if cursor else None)


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None  # an unreadable cursor means "from the start", never a crash
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


# --- the connector -------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """Facts about the Jira site, asked once per run."""

    cloud: bool
    zone: tzinfo
    field_ids: dict[str, str] = field(default_factory=dict)  # configured name -> field id

    def search_fields(self) -> list[str]:
        return [*SEARCH_FIELDS, *sorted(set(self.field_ids.values()))]


class JiraConnector:
    kind: ClassVar[str] = "jira"
    settings_model: ClassVar[type[JiraSettings]] = JiraSettings

    def __init__(
        self,
        settings: JiraSettings,
        context: ConnectorContext,
        *,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.context = context
        self.gateway = JiraGateway(settings, context.source, retry or RetryPolicy())

    def close(self) -> None:
        self.gateway.close()

    def pull(self) -> Iterator[Page | Listing]:
        started = self.context.clock.now()
        site, refreshed = self._cached_site(started)
        if refreshed is not None:
            yield refreshed
        previous = self.context.read_cursor(ISSUES)
        pages = 0
        for page in self._changed(site, previous):
            pages += 1
            yield page
        if previous is None:
            # A first sync read everything: it was a complete listing as of its start.
            yield Page(stream=LISTING, cursor={"completed_at": started.isoformat()})
        elif listing_due(
            self.context.read_cursor(LISTING), started, self.settings.full_listing_every
        ):
            yield Listing(self._listed_ids(site))
            yield Page(stream=LISTING, cursor={"completed_at": started.isoformat()})
        self.context.log.info("jira pull finished", pages=pages, item_calls=self.gateway.item_calls)

    # --- site facts -------------------------------------------------------------------

    def _cached_site(self, now: datetime) -> tuple[Site, Page | None]:
        """Site facts from the last run while fresh, so a quiet poll costs one search.

        They are asked again with every complete listing (`full_listing_every`) or
        when the configured fields change.
        """
        cached = self.context.read_cursor(SITE)
        wanted = sorted(n for n in self._configured_fields() if n)
        if (
            cached
            and cached.get("fields") == wanted
            and not listing_due(
                {"completed_at": cached.get("asked_at")}, now, self.settings.full_listing_every
            )
        ):
            zone = _zone_named(cached.get("zone"))
            return Site(
                cloud=bool(cached["cloud"]), zone=zone, field_ids=dict(cached["field_ids"])
            ), None
        site = self._site()
        facts = {
            "cloud": site.cloud,
            "zone": getattr(site.zone, "key", "UTC"),
            "field_ids": site.field_ids,
            "fields": wanted,
            "asked_at": now.isoformat(),
        }
        return site, Page(stream=SITE, cursor=facts)

    def _configured_fields(self) -> list[str | None]:
        s = self.settings
        return [s.acceptance_field, s.team_field, s.verified_field]

    def _site(self) -> Site:
        return Site(cloud=self._is_cloud(), zone=self._zone(), field_ids=self._field_ids())

    def _is_cloud(self) -> bool:
        if self.settings.deployment != "auto":
            return self.settings.deployment == "cloud"
        return self.gateway.server_info().get("deploymentType") == "Cloud"

    def _zone(self) -> tzinfo:
        """JQL dates are read in the account's time zone, so the cursor is written in it."""
        name = self.gateway.myself().get("timeZone")
        try:
            return ZoneInfo(name) if isinstance(name, str) and name else UTC
        except (ZoneInfoNotFoundError, ValueError):
            self.context.log.warning("unknown Jira time zone; using UTC", time_zone=name)
            return UTC

    def _field_ids(self) -> dict[str, str]:
        configured = [
            ("acceptance_field", self.settings.acceptance_field),
            ("team_field", self.settings.team_field),
            ("verified_field", self.settings.verified_field),
        ]
        wanted = [(key, name) for key, name in configured if name]
        if all(_FIELD_ID.match(name) for _, name in wanted):
            return {name: name for _, name in wanted}  # ids already: no /field call
        by_name: dict[str, str] = {}
        for item in self.gateway.fields():
            if isinstance(item.get("id"), str):
                by_name[item["id"].casefold()] = item["id"]
                if isinstance(item.get("name"), str):
                    by_name.setdefault(item["name"].casefold(), item["id"])
        resolved = {}
        for key, name in wanted:
            if name.casefold() not in by_name:
                raise SourceError(
                    FailureKind.CONFIGURATION,
                    f"Jira has no field named {name!r} (sources.{self.context.source}.{key})",
                )
            resolved[name] = by_name[name.casefold()]
        return resolved

    # --- changed issues -----------------------------------------------------------------

    def _changed(self, site: Site, previous: dict[str, Any] | None) -> Iterator[Page]:
        jql = changed_since_jql(self.settings.jql, previous, self.settings.lookback, site.zone)
        cursor = previous
        pages = self._search(site, jql, site.search_fields(), "changelog", self.settings.page_size)
        for raws in pages:
            page = self._page(site, raws, cursor)
            cursor = page.cursor
            yield page

    def _page(self, site: Site, raws: list[Any], cursor: dict[str, Any] | None) -> Page:
        tasks: list[Task] = []
        quarantined: list[QuarantinedItem] = []
        for raw in raws:
            try:
                tasks.append(self._map(site, raw))
            except MappingError as error:
                quarantined.append(
                    QuarantinedItem(reason=str(error), payload=_dump(raw), external_ref=_ref(raw))
                )
        return Page(
            stream=ISSUES,
            tasks=tasks,
            quarantined=quarantined,
            cursor=advance_cursor(cursor, tasks),
            fetched=len(raws),
        )

    def _map(self, site: Site, raw: Any) -> Task:
        return map_issue(
            raw,
            source=self.context.source,
            settings=self.settings,
            people=self.context.people,
            field_ids=site.field_ids,
            comments=self._missing_comments(raw),
            now=self.context.clock.now(),
        )

    def _missing_comments(self, raw: Any) -> list[dict[str, Any]]:
        """The comments a search page left out: one call, only for an issue that has more."""
        fields = raw.get("fields") if isinstance(raw, dict) else None
        embedded = fields.get("comment") if isinstance(fields, dict) else None
        if not isinstance(embedded, dict) or not isinstance(raw.get("id"), str):
            return []
        comments, total = embedded.get("comments"), embedded.get("total")
        have = len(comments) if isinstance(comments, list) else 0
        if not isinstance(total, int) or total <= have:
            return []
        return self.gateway.remaining_comments(raw["id"], have)

    # --- complete listing ---------------------------------------------------------------

    def _listed_ids(self, site: Site) -> set[str]:
        ids: set[str] = set()
        for raws in self._search(
            site, f"({self.settings.jql}) ORDER BY key ASC", ["id"], None, LISTING_PAGE_SIZE
        ):
            for raw in raws:
                issue_id = raw.get("id") if isinstance(raw, dict) else None
                if not isinstance(issue_id, str | int) or isinstance(issue_id, bool):
                    # One unreadable entry makes the listing incomplete: close nothing.
                    raise SourceError(
                        FailureKind.TRANSIENT,
                        f"Jira listed an issue without an id (source {self.context.source})",
                    )
                ids.add(str(issue_id))
        return ids

    # --- pagination -----------------------------------------------------------------------

    def _search(
        self, site: Site, jql: str, fields: Sequence[str], expand: str | None, size: int
    ) -> Iterator[list[Any]]:
        """Every page of a search, following tokens (Cloud) or offsets (Server) to the end."""
        position: str | int | None = None
        seen: set[str | int] = set()
        while True:
            page = self._search_page(site, jql, fields, expand, size, position)
            yield page.issues
            if page.following is None:
                return
            if page.following in seen:
                raise SourceError(
                    FailureKind.TRANSIENT,
                    f"Jira's search pages loop (source {self.context.source}); stopped",
                )
            seen.add(page.following)
            position = page.following

    def _search_page(
        self,
        site: Site,
        jql: str,
        fields: Sequence[str],
        expand: str | None,
        size: int,
        position: str | int | None,
    ) -> SearchPage:
        if site.cloud:
            token = position if isinstance(position, str) else None
            return self.gateway.search_cloud(jql, fields, expand, size, token)
        start = position if isinstance(position, int) else 0
        return self.gateway.search_server(jql, fields, expand, size, start)


def _dump(raw: Any) -> str:
    return json.dumps(raw, default=str, ensure_ascii=False)


def _ref(raw: Any) -> str | None:
    if isinstance(raw, dict):
        for name in ("key", "id"):
            if isinstance(raw.get(name), str | int):
                return str(raw[name])
    return None
