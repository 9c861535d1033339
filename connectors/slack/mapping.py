"""Slack messages as tasks: pure functions from payloads to normalized tasks.

Decisions where the spec leaves room (tests in tests/connectors/test_slack_mapping.py):

* **What is a request.** Only top-level messages by people: bot posts, syncd's
  own posts (message `metadata` with event type `syncd_followup`), joins and
  other system subtypes never are. `capture` then narrows it: every such message,
  those carrying `capture_reaction`, or those mentioning the bot.
* **Linked, not duplicated.** A message naming a Jira key or a GitHub issue is
  activity on that task (`activity_of`), not a task of its own.
* **Owner.** The person the text asks to do the work (`extract_doer`); everyone
  asked just as directly is an owner too, so the single-owner rule flags it. A
  group mention (`<!subteam^…>`, `<!here>`, `<!channel>`) leaves it ownerless
  with `team` set. A replier does not become the owner.
* **Done** when anyone other than the requester adds `done_reaction` or replies
  with a done phrase: in chat the person who does the work is often not the one
  who was asked, and a team's request has no owner to wait for.
* **Verified** when, after that, the requester adds `verify_reaction` (default:
  the done reaction) or replies with a verify phrase. The requester's reaction
  alone, with nobody else's done, is *done*: verification confirms someone
  else's work.
* **In progress** when an owner replied (for an ownerless request: anyone but
  the requester), and it is not done.
* A phrase in a question or after a negation ("not done yet", "is it fixed?")
  does not count.
* Activity: the message, its edit and its human replies; `participants` are the
  requester and the people who replied.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from syncd.config import PolicySettings
from syncd.connectors.slack.settings import SlackSettings
from syncd.extract import extract_doer, extract_due, extract_priority, find_references
from syncd.model import Activity, FieldChange, Priority, Status, Task

Json = dict[str, Any]

SYNCD_EVENT_TYPE = "syncd_followup"
TITLE_LENGTH = 120
# Subtypes a person posts; every other subtype is Slack's or an integration's.
HUMAN_SUBTYPES = frozenset({"file_share", "thread_broadcast", "me_message"})

_USER_MENTION = re.compile(r"<@(?P<id>[UW][A-Z0-9]+)(?:\|(?P<label>[^>]*))?>")
_SPECIAL = re.compile(
    r"<(?P<kind>[#!])(?P<id>[^|>]+)(?:\|(?P<label>[^>]*))?>|<(?P<url>[^@#!][^|>]*)(?:\|(?P<text>[^>]*))?>"
)
# Mentions chained at the start of a sentence: "<@A>, <@B> and " before the asked one.
_ADDRESS_CHAIN = re.compile(
    r"\s*(?:(?:hey|hi|hello)\W*)?(?:<@[UW][A-Z0-9]+>\s*(?:,|and|&|\+)?\s*)+", re.IGNORECASE
)
_TS = re.compile(r"^\d{9,11}\.\d{1,6}$")
_CLAUSE_BREAK = re.compile(r"[.!?;\n]")
_NEGATION = re.compile(r"\b(?:not|never|almost|nearly|no)\b|n't\b", re.IGNORECASE)
_NOT_YET = re.compile(r"^\W*(?:yet|soon)\b", re.IGNORECASE)


class MappingError(ValueError):
    """The payload cannot be a task; the reason is kept with the quarantined item."""


@dataclass(frozen=True)
class Workspace:
    """From auth.test: where permalinks point and which user the bot is."""

    url: str
    bot_user_id: str


@dataclass(frozen=True)
class ReplyFact:
    """What a human reply says about its thread, small enough to keep in the cursor."""

    ts: str
    user: str
    done: bool
    verify: bool
    refs: tuple[str, ...] = ()

    def to_json(self) -> list[Any]:
        return [self.ts, self.user, int(self.done), int(self.verify), list(self.refs)]

    @classmethod
    def from_json(cls, value: Sequence[Any]) -> ReplyFact:
        ts, user, done, verify, refs = value
        return cls(str(ts), str(user), bool(done), bool(verify), tuple(refs))


@dataclass(frozen=True)
class Mapper:
    """Everything mapping needs besides the payload; resolving people is injected."""

    source: str
    settings: SlackSettings
    policy: PolicySettings
    workspace: Workspace
    person: Callable[[str], str]  # Slack user id -> person id (or `slack:<id>`)
    display: Callable[[str], str]  # Slack user id -> a readable name

    # --- what a message is --------------------------------------------------------

    def is_candidate(self, message: Json) -> bool:
        """A top-level message by a person, which capture may turn into a task."""
        return is_human(message, self.workspace.bot_user_id) and not is_reply(message)

    def is_captured(self, message: Json) -> bool:
        if self.settings.capture == "reaction":
            return any(
                r.get("name") == self.settings.capture_reaction and r.get("users")
                for r in _reactions(message)
            )
        if self.settings.capture == "mention":
            return self.workspace.bot_user_id in _mentioned(_text(message))
        return True

    def references(self, message: Json) -> list[str]:
        return find_references(_text(message))

    # --- replies ------------------------------------------------------------------

    def reply_fact(self, reply: Json) -> ReplyFact | None:
        """A human reply's facts; None for bots, syncd's own posts and malformed replies."""
        ts, user = reply.get("ts"), reply.get("user")
        if not is_human(reply, self.workspace.bot_user_id) or not isinstance(user, str):
            return None
        if not isinstance(ts, str) or not _TS.match(ts):
            return None
        text = readable(_text(reply), self.display)
        return ReplyFact(
            ts=ts,
            user=user,
            done=says_any(text, self.settings.done_phrases),
            verify=says_any(text, self.settings.verify_phrases),
            refs=tuple(find_references(_text(reply))),
        )

    # --- mapping --------------------------------------------------------------------

    def map_message(self, channel: str, message: Json, replies: Sequence[ReplyFact]) -> Task:
        ts, requester, raw_text = _required(message)
        sent_at = ts_to_datetime(ts)
        text = readable(raw_text, self.display)
        owners_uid, team = self._doers(raw_text)
        status, status_raw, closed_at, verified_by = self._status(
            message, requester, owners_uid, replies
        )
        priority, priority_raw = extract_priority(text)
        activity_at = max([sent_at, *(ts_to_datetime(r.ts) for r in replies)])
        edited = _edited_at(message)
        due = extract_due(
            text,
            sent_at=sent_at,
            timezone=self.policy.timezone,
            date_order=self.policy.date_order,
        )
        owners = list(dict.fromkeys(self.person(uid) for uid in owners_uid))
        return Task(
            source=self.source,
            external_id=f"{channel}/{ts}",
            key=f"{channel}/{ts}",
            url=f"{self.workspace.url.rstrip('/')}/archives/{channel}/p{ts.replace('.', '')}",
            title=title_of(text),
            description=text,
            status=status,
            status_raw=status_raw,
            owners=owners,
            team=team,
            reporter=self.person(requester),
            due=due,
            priority=priority,
            priority_raw=priority_raw,
            links=list(dict.fromkeys(ref for r in replies for ref in r.refs)),
            # Reactions act as labels: a `:zzz:` snoozes follow-ups, as a label does elsewhere.
            labels=sorted({str(r.get("name")) for r in _reactions(message) if r.get("name")}),
            created_at=sent_at,
            updated_at=max(activity_at, edited or activity_at),
            closed_at=(closed_at or activity_at)
            if status in (Status.DONE, Status.VERIFIED)
            else None,
            last_activity_at=activity_at,
            verified_by=verified_by,
            participants=list(
                dict.fromkeys(self.person(uid) for uid in [requester, *(r.user for r in replies)])
            ),
            field_changes=_as_read(
                message, ts, edited or sent_at, due=due, owners=owners, priority=priority
            ),
            raw=message,
        )

    def activity_of(
        self, message: Json, replies: Sequence[ReplyFact], targets: Sequence[str]
    ) -> list[Activity]:
        """A linking message's activity, credited to the tasks it names."""
        ts, requester, _ = _required(message)
        latest: dict[str, datetime] = {requester: ts_to_datetime(ts)}
        for reply in replies:
            at = ts_to_datetime(reply.ts)
            latest[reply.user] = max(latest.get(reply.user, at), at)
        return [
            Activity(target_key=target, at=at, person=self.person(uid))
            for target in targets
            for uid, at in latest.items()
        ]

    def _doers(self, raw_text: str) -> tuple[list[str], str | None]:
        """Slack user ids asked to do the work, or the group asked instead."""
        bot = self.workspace.bot_user_id
        # The bot is addressed to capture the message, never asked to do the work.
        text = _USER_MENTION.sub(lambda m: "" if m["id"] == bot else f"<@{m['id']}>", raw_text)
        mentions = [f"<@{uid}>" for uid in _mentioned(text)]
        doer = extract_doer(text, mentions, team_aliases=self.policy.team_aliases)
        tokens = [t for t in (doer.owner, *doer.also_asked) if t]
        if doer.owner is not None:
            tokens = [*_addressed_with(text, doer.owner), *tokens]
        return list(
            dict.fromkeys(m["id"] for t in tokens if (m := _USER_MENTION.fullmatch(t)))
        ), doer.team

    def _status(
        self, message: Json, requester: str, owners: Sequence[str], replies: Sequence[ReplyFact]
    ) -> tuple[Status, str, datetime | None, str | None]:
        settings = self.settings
        reactions = {r.get("name"): list(r.get("users") or []) for r in _reactions(message)}
        done_by_reaction = [u for u in reactions.get(settings.done_reaction, []) if u != requester]
        done_replies = [r for r in replies if r.done and r.user != requester]
        if done_by_reaction or done_replies:
            first_done = min((float(r.ts) for r in done_replies), default=0.0)
            confirms = [r for r in replies if r.user == requester and r.verify
                        and (done_by_reaction or float(r.ts) >= first_done)]  # fmt: skip
            closed_at = ts_to_datetime(done_replies[0].ts) if done_replies else None
            verify_reaction = settings.verify_reaction or settings.done_reaction
            verified_by = f"requester:{self.person(requester)}"
            if requester in reactions.get(verify_reaction, []):
                return Status.VERIFIED, f"verified (:{verify_reaction}:)", closed_at, verified_by
            if confirms:
                return Status.VERIFIED, "verified (reply)", closed_at, verified_by
            how = "reply" if done_replies else f":{settings.done_reaction}:"
            return Status.DONE, f"done ({how})", closed_at, None
        if requester in reactions.get(settings.done_reaction, []):
            return Status.DONE, "done by the requester", None, None
        workers = set(owners) or None
        if any(r.user != requester and (workers is None or r.user in workers) for r in replies):
            return Status.IN_PROGRESS, "in progress (replied)", None, None
        return Status.OPEN, "open", None, None


# --- helpers, public for the connector and the tests -----------------------------------


def is_reply(message: Json) -> bool:
    thread_ts = message.get("thread_ts")
    return thread_ts is not None and thread_ts != message.get("ts")


def is_syncd_post(message: Json) -> bool:
    metadata = message.get("metadata")
    return isinstance(metadata, dict) and metadata.get("event_type") == SYNCD_EVENT_TYPE


def is_human(message: Json, bot_user_id: str) -> bool:
    """Posted by a person: not a bot, not syncd, not a join or another system subtype."""
    subtype = message.get("subtype")
    return not (
        message.get("bot_id")
        or (subtype is not None and subtype not in HUMAN_SUBTYPES)
        or is_syncd_post(message)
        or message.get("user") == bot_user_id
        or not isinstance(message.get("user"), str)
    )


def says_any(text: str, phrases: Sequence[str]) -> bool:
    """Whether the text states one of the phrases, not in a question or after a negation."""
    for phrase in phrases:
        pattern = r"(?<!\w)" + re.escape(phrase) + r"(?!\w)"
        for match in re.finditer(pattern, text, re.IGNORECASE):
            start = max((m.end() for m in _CLAUSE_BREAK.finditer(text, 0, match.start())),
                        default=0)  # fmt: skip
            end_match = _CLAUSE_BREAK.search(text, match.end())
            end = end_match.start() if end_match else len(text)
            asked = end_match is not None and end_match.group() == "?"
            if asked or _NEGATION.search(text[start : match.start()]):
                continue
            if _NOT_YET.match(text[match.end() : end]):
                continue
            return True
    return False


def readable(text: str, display: Callable[[str], str]) -> str:
    """Slack's markup as people read it: `<@U1>` -> `@Alice`, `<#C1|ops>` -> `#ops`."""
    text = _USER_MENTION.sub(lambda m: "@" + (m["label"] or display(m["id"])), text)

    def special(match: re.Match[str]) -> str:
        if match["url"] is not None:
            return match["text"] or match["url"]
        label = (match["label"] or "").lstrip("@")
        if match["kind"] == "#":
            return f"#{label or match['id']}"
        name = match["id"].split("^", 1)[-1] if match["id"].startswith("subteam") else match["id"]
        return f"@{label or name}"

    return html.unescape(_SPECIAL.sub(special, text))


def title_of(text: str) -> str:
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first) <= TITLE_LENGTH:
        return first or "(no text)"
    return first[: TITLE_LENGTH - 1].rsplit(" ", 1)[0].rstrip(" ,;:") + "…"


def ts_to_datetime(ts: str) -> datetime:
    return datetime.fromtimestamp(float(ts), UTC)


def _required(message: Json) -> tuple[str, str, str]:
    ts, user, text = message.get("ts"), message.get("user"), message.get("text")
    if not isinstance(ts, str) or not _TS.match(ts):
        raise MappingError(f"the message has no valid ts ({ts!r})")
    if not isinstance(user, str) or not user:
        raise MappingError("the message has no user")
    if text is not None and not isinstance(text, str):
        raise MappingError("the message text is not a string")
    return ts, user, text or ""


def _addressed_with(text: str, owner: str) -> list[str]:
    """Mentions addressed together with the owner: "<@A> and <@B> can you both…".

    `extract_doer` picks the mention right before the ask; the ones chained to it
    at the start of the sentence are asked just as much.
    """
    position = text.find(owner)
    clause_start = max((m.end() for m in _CLAUSE_BREAK.finditer(text, 0, position)), default=0)
    chain = _ADDRESS_CHAIN.fullmatch(text[clause_start:position])
    return [m.group() for m in _USER_MENTION.finditer(chain.group())] if chain else []


def _text(message: Json) -> str:
    text = message.get("text")
    return text if isinstance(text, str) else ""


def _mentioned(text: str) -> list[str]:
    return list(dict.fromkeys(m["id"] for m in _USER_MENTION.finditer(text)))


def _reactions(message: Json) -> list[Json]:
    reactions = message.get("reactions")
    return [r for r in reactions if isinstance(r, dict)] if isinstance(reactions, list) else []


def _as_read(
    message: Json,
    ts: str,
    read_at: datetime,
    *,
    due: date | None,
    owners: list[str],
    priority: Priority | None,
) -> list[FieldChange]:
    """Due date, owners and priority as the message said them when it was sent, or when it
    was last edited (an edit is its own change: the text before it is gone)."""
    edited = message.get("edited")
    stamp = edited.get("ts") if isinstance(edited, Mapping) else None
    key = f"m{ts}" if not isinstance(stamp, str) else f"m{ts}/edit {stamp}"
    values = {
        "due": due.isoformat() if due else None,
        "owners": owners,
        "priority": priority.value if priority else None,
    }
    return [
        FieldChange(name, value, key, read_at)
        for name, value in values.items()
        if value or stamp is not None  # an edit that dropped a due date is a change too
    ]


def _edited_at(message: Json) -> datetime | None:
    edited = message.get("edited")
    ts = edited.get("ts") if isinstance(edited, dict) else None
    return ts_to_datetime(ts) if isinstance(ts, str) and _TS.match(ts) else None
