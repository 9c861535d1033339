"""Plan follow-ups from open violations: who to tell, where, what, and when.

A follow-up's idempotency key is (rule, task, violation episode, cooldown
window): the same window never yields a second nudge, a new episode (the task
broke the rule again after it was resolved) starts over, and after `max` nudges
the lead named in `escalate_to` is told once instead.

The key reads `<rule>:<source>/<external id>:<violation id>.<first seen>:<window>`.
Its first part, the series, names the rule and the task by the source's
immutable id, never by a ledger row id, so a ledger that starts empty (a bad
restore, a new volume) plans follow-ups of the same series as the one that
posted the markers already at the target. The episode (violation row id and
the epoch second it was first seen) cannot be rebuilt by a new ledger, and is
not meant to be: before the first post of a key, the drain looks for a marker
of the same series that the ledger does not know of, posted less than the
rule's `every` ago, and records such a follow-up as already sent instead of
posting it (`syncd.writer.outbox`). The episode's timestamp keeps a new
ledger's keys from ever equalling an old ledger's (violation ids restart at 1).
"""

from __future__ import annotations

import calendar
import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import select

from syncd.config import FollowupSettings, Settings
from syncd.connectors.mail.headers import header_value
from syncd.ledger.models import TaskRow, Violation
from syncd.ledger.repository import Ledger
from syncd.people import PeopleDirectory
from syncd.rules.engine import CompiledRule
from syncd.rules.kinds import is_team
from syncd.writer.base import Delivery
from syncd.writer.direct import direct_target
from syncd.writer.schedule import next_working_moment
from syncd.writer.sinks import encoder_for

CHANNEL_OF_KIND = {
    "github": "github",
    "jira": "jira",
    "slack": "slack",
    "imap": "email",
    "maildir": "email",
}
HANDLE_OF_CHANNEL = {"github": "github", "jira": "jira", "slack": "slack", "email": "email"}

DEFAULT_TEMPLATES = {
    "single_owner": "{{ name }} needs exactly one owner: {{ violation.message }}. "
    "Could you name the one person who owns it?",
    "due_date": "{{ name }} has no due date. When will it be done?",
    "priority": "{{ name }} has no priority. Is it high, medium or low?",
    "context": "{{ name }} is missing context: {{ violation.message }}. "
    "Please add what done looks like.",
    "dependency_risk": "{{ name }} is at risk: {{ violation.message }}.",
    "stale": "{{ name }} has had no activity lately ({{ violation.message }}). What is the status?",
    "verify_before_close": "{{ name }} was closed as done but not verified. "
    "Could you confirm it meets its acceptance criteria?",
    "due_soon": "{{ name }} is {{ violation.message }}. Can it start today?",
    "deadline_risk": "{{ name }} is heading for a missed deadline: {{ violation.message }}. "
    "What would bring it in on time, or should the date move?",
    "custom": "{{ name }}: {{ violation.message }}.",
}
ESCALATION = (
    "{{ name }} still breaks rule {{ rule.id }} after {{ nudges }} nudges "
    "to {{ recipient_name }}: {{ violation.message }}."
)

DIGEST_SUBJECT = "syncd: your daily follow-ups"


@cache
def _templates(channel: str) -> SandboxedEnvironment:
    """Templates whose every `{{ … }}` output is encoded for `channel`.

    `finalize` sees each expression's value last, after any filter, so `|safe`,
    `|replace` or a macro cannot hand source text to the message raw; text the
    template author wrote outside `{{ … }}` stays exactly as written.
    """
    encode = encoder_for(channel)

    def finalize(value: Any) -> str:
        return encode("" if value is None else str(value))

    return SandboxedEnvironment(autoescape=False, finalize=finalize)


@dataclass
class PlannedFollowup:
    delivery: Delivery
    rule_id: str
    task_id: int
    violation_id: int
    not_before: datetime | None = None
    task_key: str = ""
    escalation: bool = False
    # The recipient reads one daily digest instead of single nudges.
    digest: bool = False
    # The key this follow-up had before keys named tasks by source id (ledger row ids):
    # an outbox written by an older syncd holds it, and the follow-up is not planned again.
    legacy_key: str | None = None

    def as_json(self) -> dict[str, Any]:
        d = self.delivery
        return {
            "rule": self.rule_id,
            "task": self.task_key,
            "channel": d.channel,
            "where": d.target,
            "to": d.recipient,
            "what": d.body,
            "escalation": self.escalation,
            "digest": self.digest,
            "idempotency_key": d.idempotency_key,
        }


@dataclass
class PlanResult:
    planned: list[PlannedFollowup] = field(default_factory=list)
    skipped: int = 0


def plan_followups(
    ledger: Ledger,
    rules: list[CompiledRule],
    settings: Settings,
    people: PeopleDirectory,
    now: datetime,
) -> PlanResult:
    """Every follow-up due now for the open violations of rules that ask for one."""
    result = PlanResult()
    if settings.policy.pause_followups:
        return result
    for rule in rules:
        if rule.followup is None:
            continue
        for violation, task in _open_violations(ledger, rule.id):
            planned = _plan_one(rule, rule.followup, violation, task, settings, people, now)
            if planned is None:
                result.skipped += 1
            else:
                result.planned.append(planned)
    return result


def _open_violations(ledger: Ledger, rule_id: str) -> list[tuple[Violation, TaskRow]]:
    query = (
        select(Violation, TaskRow)
        .join(TaskRow, TaskRow.id == Violation.task_id)
        .where(
            Violation.rule_id == rule_id, Violation.resolved_at.is_(None), TaskRow.gone_at.is_(None)
        )
        .order_by(Violation.id)
    )
    with ledger.sessions() as session:
        return [(v, t) for v, t in session.execute(query)]


def _plan_one(
    rule: CompiledRule,
    followup: FollowupSettings,
    violation: Violation,
    task: TaskRow,
    settings: Settings,
    people: PeopleDirectory,
    now: datetime,
) -> PlannedFollowup | None:
    if _snoozed(task, settings):
        return None
    window = int((now - violation.first_seen) / followup.every)
    escalation = followup.max is not None and window >= followup.max
    if escalation and not followup.escalate_to:
        return None  # the cap is reached and nobody to escalate to
    recipient = followup.escalate_to if escalation else _recipient(rule, followup, task, settings)
    channel = _channel(followup, task, settings)
    if channel is None or recipient is None:
        return None
    window_name = "escalation" if escalation else str(window)
    key = followup_key(rule.id, task, violation, window_name)
    digest = _wants_digest(recipient, settings)
    # A digest item is read in the digest, so it is written for the digest's channel.
    markup = (_digest_channel(recipient, settings) or channel) if digest else channel
    body = _render(rule, followup, violation, task, recipient, people, escalation, window, markup)
    if window > 0 and not escalation:
        # Comments cannot always be edited in place; say this one replaces the last.
        body += f" (Reminder {window + 1}; this replaces syncd's earlier note.)"
    target = _target(channel, task, recipient, people, settings)
    if getattr(rule.params, "reopen", False) and channel in ("github", "jira") and not escalation:
        target["reopen"] = True
    if digest:
        target["encoded_for"] = markup
    delivery = Delivery(
        idempotency_key=key,
        channel=channel,
        target=target,
        recipient=recipient,
        mention=people.handle_of(recipient, HANDLE_OF_CHANNEL[channel]),
        body=body,
        repeat_after=followup.every,
    )
    not_before = next_working_moment(now, settings.people.get(recipient), settings.policy)
    return PlannedFollowup(
        delivery,
        rule.id,
        task.id,
        violation.id,
        not_before=not_before,
        task_key=task.key,
        escalation=escalation,
        digest=digest,
        legacy_key=f"{rule.id}:{task.id}:{violation.id}:{window_name}",
    )


def followup_series(rule_id: str, task: TaskRow) -> str:
    """`<rule>:<source>/<external id>`: one rule on one task, whatever ledger planned it."""
    return f"{_key_part(rule_id, 80)}:{_key_part(task.source, 60)}/{_key_part(task.external_id, 80)}"


def followup_key(rule_id: str, task: TaskRow, violation: Violation, window: str) -> str:
    first_seen = calendar.timegm(violation.first_seen.utctimetuple())
    return f"{followup_series(rule_id, task)}:{violation.id}.{first_seen}:{window}"


def _key_part(text: str, limit: int) -> str:
    """`:` and `/` separate the parts of a key, so they are %-escaped inside one; a part
    longer than `limit` becomes a digest (the outbox column holds 300 characters)."""
    escaped = text.replace("%", "%25").replace(":", "%3A").replace("/", "%2F")
    if len(escaped) <= limit:
        return escaped
    return "h." + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def _snoozed(task: TaskRow, settings: Settings) -> bool:
    """Snoozed from the source itself (a label, a Slack reaction) or exempt in the config."""
    policy = settings.policy
    labels = {label.lower() for label in task.labels}
    source = settings.sources.get(task.source)
    reacted = source is not None and source.kind == "slack" and policy.snooze_reaction in labels
    return policy.snooze_label.lower() in labels or reacted or task.key in policy.exempt


def _wants_digest(recipient: str, settings: Settings) -> bool:
    person = settings.people.get(recipient)
    return bool(person and person.digest)


def _digest_channel(recipient: str, settings: Settings) -> str | None:
    where = direct_target(recipient, settings, DIGEST_SUBJECT)
    return where[0] if where else None


def _recipient(
    rule: CompiledRule, followup: FollowupSettings, task: TaskRow, settings: Settings
) -> str | None:
    """The owner; else someone on the team who can act: the reporter if they are one
    of ours, the lead named in `escalate_to` otherwise (never an outside requester)."""
    aliases = frozenset(a.lower() for a in settings.policy.team_aliases)
    persons = [o for o in task.owners if not is_team(o, aliases)]
    reporter = task.reporter if task.reporter in settings.people else None
    if rule.kind.name == "verify_before_close":
        verifier: str | None = getattr(rule.params, "verifier", None)
        return verifier or reporter or followup.escalate_to or (persons[0] if persons else None)
    if len(persons) == 1 and len(task.owners) == 1:
        return persons[0]
    return reporter or followup.escalate_to


def _channel(followup: FollowupSettings, task: TaskRow, settings: Settings) -> str | None:
    if followup.via == "email":
        return "email" if settings.smtp else None
    if followup.via == "slack":
        return "slack" if any(s.kind == "slack" for s in settings.sources.values()) else None
    source = settings.sources.get(task.source)
    channel = CHANNEL_OF_KIND.get(source.kind) if source else None
    if channel == "email" and settings.smtp is None:
        return None
    return channel


def _target(
    channel: str, task: TaskRow, recipient: str, people: PeopleDirectory, settings: Settings
) -> dict[str, Any]:
    if channel == "github":
        repo, _, number = task.key.rpartition("#")
        return {"source": task.source, "repo": repo, "number": int(number)}
    if channel == "jira":
        return {"source": task.source, "key": task.key}
    if channel == "slack":
        source_kind = settings.sources[task.source].kind if task.source in settings.sources else ""
        if source_kind == "slack":
            channel_id, _, ts = task.key.partition("/")
            return {"source": task.source, "channel": channel_id, "thread_ts": ts}
        slack_source = next(n for n, s in settings.sources.items() if s.kind == "slack")
        return {"source": slack_source, "user": people.handle_of(recipient, "slack")}
    address = people.handle_of(recipient, "email")
    thread = task.key if (settings.sources.get(task.source) and CHANNEL_OF_KIND.get(
        settings.sources[task.source].kind) == "email") else None  # fmt: skip
    return {
        "to": address,
        "subject": header_value(
            f"Re: {task.title}" if thread else f"[syncd] {task.key}: {task.title}"
        ),
        "in_reply_to": f"<{thread}>" if thread else None,
        "references": f"<{thread}>" if thread else None,
    }


def _name(task: TaskRow) -> str:
    """How a message refers to the task: its key where people read keys, else its title."""
    if "#" in task.key or task.key.split("-")[-1].isdigit():
        return task.key
    return f"“{task.title}”"


def _render(
    rule: CompiledRule,
    followup: FollowupSettings,
    violation: Violation,
    task: TaskRow,
    recipient: str,
    people: PeopleDirectory,
    escalation: bool,
    window: int,
    channel: str,
) -> str:
    """The message, every interpolated value encoded for `channel` (see `_templates`)."""
    source = ESCALATION if escalation else (followup.template or DEFAULT_TEMPLATES[rule.kind.name])
    person = people.get(recipient)
    return (
        _templates(channel)
        .from_string(source)
        .render(
            task=task,
            name=_name(task),
            violation=violation,
            rule={"id": rule.id, "kind": rule.kind.name, "severity": rule.severity},
            recipient=recipient,
            recipient_name=(person.name if person and person.name else recipient),
            nudges=window,
            people={p.id: {"name": p.name, **p.handles} for p in people},
        )
        .strip()
    )
