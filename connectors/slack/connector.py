"""The Slack connector: each configured channel is one stream.

Per run: one auth.test (the bot's user id, the workspace's address), then per
channel one `conversations.history` listing since the cursor's `oldest`, newest
first. Every `lookback_every` that listing starts `lookback` earlier instead,
because reactions, edits and late replies on older messages do not move
`oldest`; unchanged messages then map to unchanged tasks and cost the ledger no
write. `conversations.replies` is called only for threads whose `latest_reply`
moved since the cursor saw them; what their human replies said is kept in the
cursor (`ReplyFact`s, threads inside the look-back window only), so a re-read
maps an unchanged thread to the same task without asking again. `users.list` is
read at most once per run, and only when a message names someone the config
does not map by Slack id: it maps Slack users to `[people]` by email.

History comes newest first, so `oldest` may only move once a listing has been
read to its end: pages before that commit their tasks with the old `oldest`
(and the threads they learnt), and a crash re-reads them, unchanged. Deleted
messages are not marked gone: Slack offers no complete listing cheap enough.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar

from syncd.config import SourceSettings
from syncd.connector import ConnectorContext, Listing, Page
from syncd.connectors.slack.gateway import SlackGateway
from syncd.connectors.slack.mapping import Mapper, MappingError, ReplyFact, Workspace
from syncd.connectors.slack.settings import SlackSettings
from syncd.model import Activity, QuarantinedItem, Task

Json = dict[str, Any]


class SlackConnector:
    kind: ClassVar[str] = "slack"
    settings_model: ClassVar[type[SourceSettings]] = SlackSettings

    def __init__(self, settings: SlackSettings, context: ConnectorContext) -> None:
        self.settings = settings
        self.context = context
        self.gateway = SlackGateway(
            context.source,
            settings.base_url,
            settings.token.get_secret_value(),
            timeout=settings.timeout,
        )
        self.people = SlackPeople(self)

    def close(self) -> None:
        self.gateway.close()

    def pull(self) -> Iterator[Page | Listing]:
        identity = self.gateway.auth_test()
        mapper = Mapper(
            source=self.context.source,
            settings=self.settings,
            policy=self.context.policy,
            workspace=Workspace(url=identity.url, bot_user_id=identity.user_id),
            person=self.people.person,
            display=self.people.display,
        )
        for channel in self.settings.channels:
            yield from ChannelPull(self, mapper, channel).run()


class SlackPeople:
    """Slack user ids to person ids: `slack = ...` in `[people]`, else the profile email."""

    def __init__(self, connector: SlackConnector) -> None:
        self.connector = connector
        self.directory = connector.context.people
        self.by_slack = {
            handle: person.id
            for person in self.directory
            if (handle := person.handles.get("slack")) is not None
        }
        self.members: dict[str, Json] | None = None

    def person(self, user_id: str) -> str:
        if user_id in self.by_slack:
            return self.by_slack[user_id]
        self._load_members()
        return self.by_slack.get(user_id) or self.directory.resolve("slack", user_id)

    def display(self, user_id: str) -> str:
        person_id = self.person(user_id)
        person = self.directory.get(person_id)
        if person is not None and person.name:
            return person.name
        self._load_members()
        member: Json = (self.members or {}).get(user_id, {})
        profile = member.get("profile")
        display_name = profile.get("display_name") if isinstance(profile, dict) else None
        for name in (display_name, member.get("real_name"), member.get("name")):
            if isinstance(name, str) and name:
                return name
        return user_id

    def _load_members(self) -> None:
        """One users.list per run, the first time someone is not mapped by Slack id."""
        if self.members is not None:
            return
        by_email = {
            email.lower(): person.id
            for person in self.directory
            if (email := person.handles.get("email")) is not None
        }
        self.members = {}
        for member in self.connector.gateway.users():
            user_id = member.get("id")
            if not isinstance(user_id, str):
                continue
            self.members[user_id] = member
            profile = member.get("profile")
            email = profile.get("email") if isinstance(profile, dict) else None
            if isinstance(email, str) and email.lower() in by_email:
                self.by_slack.setdefault(user_id, by_email[email.lower()])


class ChannelPull:
    """One channel's share of a run."""

    def __init__(self, connector: SlackConnector, mapper: Mapper, channel: str) -> None:
        self.settings = connector.settings
        self.context = connector.context
        self.gateway = connector.gateway
        self.mapper = mapper
        self.channel = channel
        self.started = self.context.clock.now()
        self.cursor: Json = self.context.read_cursor(channel) or {}
        self.threads: dict[str, Json] = dict(self.cursor.get("threads") or {})

    def run(self) -> Iterator[Page]:
        oldest: str | None = self.cursor.get("oldest")
        lookback = self._lookback_due()
        newest = oldest
        for messages in self.gateway.history(
            self.channel, self._read_from(lookback), self._page_size()
        ):
            if not messages:
                continue
            tasks, quarantined, activity = self._map_page(messages)
            newest = _newest(messages, newest)
            yield Page(
                stream=self.channel,
                tasks=tasks,
                quarantined=quarantined,
                activity=activity,
                cursor=self._next_cursor(oldest, self.cursor.get("lookback_at")),
                fetched=len(messages),
            )
        # Only a listing read to its end may move `oldest` (history is newest first).
        final = self._next_cursor(
            newest, _iso(self.started) if lookback else self.cursor.get("lookback_at")
        )
        if final != self.cursor:
            yield Page(stream=self.channel, cursor=final)

    def _page_size(self) -> int:
        return self.settings.page_size

    def _lookback_due(self) -> bool:
        lookback_at = self.cursor.get("lookback_at")
        if self.cursor.get("oldest") is None or lookback_at is None:
            return True
        return bool(
            self.started - datetime.fromisoformat(lookback_at) >= self.settings.lookback_every
        )

    def _read_from(self, lookback: bool) -> str | None:
        oldest: str | None = self.cursor.get("oldest")
        if oldest is None or not lookback:
            return oldest
        window = _ts(self.started - self.settings.lookback)
        return min(oldest, window, key=float)

    def _next_cursor(self, oldest: str | None, lookback_at: str | None) -> Json:
        floor = (self.started - self.settings.lookback).timestamp()
        # Threads before the look-back window are never re-read: forget them.
        threads = {ts: t for ts, t in self.threads.items() if float(ts) >= floor}
        return {"oldest": oldest, "lookback_at": lookback_at, "threads": threads}

    def _map_page(
        self, messages: list[Json]
    ) -> tuple[list[Task], list[QuarantinedItem], list[Activity]]:
        tasks: list[Task] = []
        quarantined: list[QuarantinedItem] = []
        activity: list[Activity] = []
        for message in messages:
            if not self.mapper.is_candidate(message):
                continue  # bots, syncd's own posts, joins
            references = self.mapper.references(message)
            # A message naming another task is activity there, whatever capture says.
            if not references and not self.mapper.is_captured(message):
                continue
            try:
                replies = self._replies(message)
                if references:
                    activity.extend(self.mapper.activity_of(message, replies, references))
                else:
                    tasks.append(self.mapper.map_message(self.channel, message, replies))
            except MappingError as error:
                quarantined.append(
                    QuarantinedItem(
                        reason=str(error),
                        payload=json.dumps(message, default=str)[:100_000],
                        external_ref=f"{self.channel}/{message.get('ts')}",
                    )
                )
        return tasks, quarantined, activity

    def _replies(self, message: Json) -> list[ReplyFact]:
        """The thread's human replies: from the cursor while `latest_reply` stands still."""
        ts, latest = message.get("ts"), message.get("latest_reply")
        if not isinstance(ts, str) or not isinstance(latest, str) or not message.get("reply_count"):
            return []
        known = self.threads.get(ts)
        if known is not None and known.get("latest") == latest:
            return [ReplyFact.from_json(fact) for fact in known.get("replies", [])]
        facts = [
            fact
            for reply in self.gateway.replies(self.channel, ts)
            if (fact := self.mapper.reply_fact(reply)) is not None
        ]
        self.threads[ts] = {"latest": latest, "replies": [fact.to_json() for fact in facts]}
        return facts


def _newest(messages: list[Json], current: str | None) -> str | None:
    stamps = [ts for m in messages if isinstance(ts := m.get("ts"), str) and _is_ts(ts)]
    if current is not None:
        stamps.append(current)
    return max(stamps, key=float) if stamps else current


def _is_ts(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _ts(moment: datetime) -> str:
    return f"{moment.timestamp():.6f}"


def _iso(moment: datetime) -> str:
    return moment.isoformat()
