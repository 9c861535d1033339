"""One thread → one task (pure: no I/O).

Decisions (tests in tests/connectors/test_email_mapping.py pin them):

* Owner: the configured person the root message is addressed to (To:). A shared
  mailbox, a list, a `team_addresses` entry, the source's own address, or an
  address whose local part is a policy team alias is a team: the task is then
  ownerless (`team` says which) until the first team member replies, who becomes
  the owner. Two people in To: are two owners, which policy reports.
* Reporter: the root's From. Participants: everyone who wrote in the thread.
* Due date and priority: from the root's subject and new words (quoted replies
  and signature stripped), else the first later message that states one.
* Status: done when any message of the thread sits in `done_folder` or carries
  `done_flag`; verified when the requester replies, after a team member
  answered, with a confirming phrase; in progress once a team member replied.
* Links: a thread whose first message names a Jira key or GitHub issue is that
  task's activity (`Activity`, one per message), not a task of its own; a
  reference in a later message of a task's thread is one of its `links`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from urllib.parse import quote

from syncd.connectors.mail.parse import normalized_subject, strip_reply_prefixes
from syncd.connectors.mail.settings import MailSettings
from syncd.connectors.mail.threads import StoredMessage
from syncd.extract import DateOrder, extract_due, extract_priority, find_references
from syncd.model import Activity, FieldChange, Priority, Status, Task
from syncd.people import PeopleDirectory

MAX_DESCRIPTION = 4000
_UNMAPPED = "email:"


@dataclass(frozen=True)
class MailContext:
    """What mapping needs from the source and syncd; built once per run."""

    source: str
    settings: MailSettings
    people: PeopleDirectory
    own_addresses: frozenset[str]
    team_aliases: frozenset[str]
    timezone: str = "UTC"
    date_order: DateOrder = "MDY"

    def is_team_address(self, address: str) -> bool:
        local = address.split("@", 1)[0]
        return (
            address in self.own_addresses
            or address in {a.lower() for a in self.settings.team_addresses}
            or local in self.team_aliases
        )

    def person(self, address: str | None) -> str | None:
        return self.people.resolve("email", address) if address else None

    def team_member(self, address: str | None) -> str | None:
        """The configured person writing from `address`, or None for outsiders and teams."""
        if not address or self.is_team_address(address):
            return None
        person = self.people.resolve("email", address)
        return None if person.startswith(_UNMAPPED) else person


def map_thread(key: str, members: list[StoredMessage], context: MailContext) -> Task:
    """The task for one thread; `members` are the thread's messages, oldest first."""
    messages = _unique(members)
    root = next((m for m in messages if m.mail.message_id == key), messages[0])
    reporter_address = root.mail.sender
    reporter = context.person(reporter_address)
    owners, team = _owners(root, messages, context)
    status, status_raw, verified_by = _status(members, messages, root, context)
    due, priority, priority_raw = _due_and_priority(root, messages, context)
    latest = max(m.when for m in messages)
    return Task(
        source=context.source,
        external_id=key,
        key=key,
        url=f"mid:{quote(key, safe='@.-_')}",
        title=strip_reply_prefixes(root.mail.subject) or "(no subject)",
        description=root.mail.new_text[:MAX_DESCRIPTION],
        status=status,
        status_raw=status_raw,
        owners=owners,
        team=team,
        reporter=reporter,
        due=due,
        priority=priority,
        priority_raw=priority_raw,
        links=_links(messages),
        created_at=root.when,
        updated_at=latest,
        closed_at=latest if status in (Status.DONE, Status.VERIFIED) else None,
        last_activity_at=latest,
        verified_by=verified_by,
        participants=list(
            dict.fromkeys(p for m in messages if (p := context.person(m.mail.sender)))
        ),
        field_changes=_due_as_read(root, messages, context),
        raw={"messages": [_summary(m) for m in members]},
    )


def thread_activity(
    key: str, members: list[StoredMessage], context: MailContext
) -> list[Activity] | None:
    """Activity on the tasks the thread's first message names, or None: the thread is a task."""
    messages = _unique(members)
    root = next((m for m in messages if m.mail.message_id == key), messages[0])
    targets = find_references(f"{root.mail.subject}\n{root.mail.new_text}")
    if not targets:
        return None
    return [
        Activity(target_key=target, at=stored.when, person=context.person(stored.mail.sender))
        for target in targets
        for stored in messages
    ]


def _unique(members: list[StoredMessage]) -> list[StoredMessage]:
    """One copy per Message-ID (a message may sit in the inbox and the done folder)."""
    seen: dict[str, StoredMessage] = {}
    for stored in members:
        seen.setdefault(stored.mail.message_id, stored)
    return list(seen.values())


def _owners(
    root: StoredMessage, messages: list[StoredMessage], context: MailContext
) -> tuple[list[str], str | None]:
    team = next((a for a in root.mail.to if context.is_team_address(a)), None)
    addressed = [
        person
        for address in root.mail.to
        if address != root.mail.sender and (person := context.team_member(address))
    ]
    if addressed:
        return list(dict.fromkeys(addressed)), None
    reporter = context.person(root.mail.sender)
    for stored in messages:
        replier = context.team_member(stored.mail.sender)
        if stored is not root and replier is not None and replier != reporter:
            return [replier], team
    return [], team


def _status(
    copies: list[StoredMessage],
    messages: list[StoredMessage],
    root: StoredMessage,
    context: MailContext,
) -> tuple[Status, str, str | None]:
    settings = context.settings
    answered = False
    for stored in messages:
        if stored is root:
            continue
        if stored.mail.sender == root.mail.sender and answered:
            phrase = _confirming_phrase(stored.mail.new_text, settings.confirm_phrases)
            if phrase is not None:
                who = context.person(stored.mail.sender)
                return Status.VERIFIED, "confirmed by the requester", f"{who} replied {phrase!r}"
        elif context.team_member(stored.mail.sender) is not None:
            answered = True
    if settings.done_folder and any(s.folder == settings.done_folder for s in copies):
        return Status.DONE, f"in {settings.done_folder}", None
    if settings.done_flag and any(settings.done_flag in s.flags for s in copies):
        return Status.DONE, f"flagged {settings.done_flag}", None
    if answered:
        return Status.IN_PROGRESS, "answered", None
    return Status.OPEN, "new", None


def _confirming_phrase(text: str, phrases: Collection[str]) -> str | None:
    folded = " ".join(text.casefold().split())
    return next((p for p in phrases if p.casefold() in folded), None)


def _due_and_priority(
    root: StoredMessage, messages: list[StoredMessage], context: MailContext
) -> tuple[date | None, Priority | None, str | None]:
    due: date | None = None
    priority: Priority | None = None
    priority_raw: str | None = None
    # The root speaks first; later messages only fill in what it left open.
    for stored in [root, *(m for m in messages if m is not root)]:
        text = f"{strip_reply_prefixes(stored.mail.subject)}\n{stored.mail.new_text}"
        if due is None:
            due = extract_due(
                text,
                sent_at=stored.when,
                timezone=context.timezone,
                date_order=context.date_order,
            )
        if priority is None:
            priority, priority_raw = extract_priority(text)
        if due is not None and priority is not None:
            break
    return due, priority, priority_raw


def _due_as_read(
    root: StoredMessage, messages: list[StoredMessage], context: MailContext
) -> list[FieldChange]:
    """The thread's due date and priority as they read after each message, by its date:
    what a reader of the thread knew then (the root still speaks first)."""
    changes: list[FieldChange] = []
    previous: tuple[str | None, str | None] = (None, None)
    for stored in sorted(messages, key=lambda m: m.when):
        seen = [m for m in messages if m.when <= stored.when]
        first = root if root in seen else seen[0]
        due, priority, _ = _due_and_priority(first, seen, context)
        now = (due.isoformat() if due else None, priority.value if priority else None)
        key = f"m{stored.mail.message_id}"
        for name, old, new in (("due", previous[0], now[0]), ("priority", previous[1], now[1])):
            if new != old:
                changes.append(FieldChange(name, new, key, stored.when))
        previous = now
    return changes


def _links(messages: list[StoredMessage]) -> list[str]:
    found: list[str] = []
    for stored in messages:
        found.extend(find_references(f"{stored.mail.subject}\n{stored.mail.new_text}"))
    return list(dict.fromkeys(found))


def _summary(stored: StoredMessage) -> dict[str, object]:
    mail = stored.mail
    return {
        "message_id": mail.message_id,
        "folder": stored.folder,
        # Where the message lives in its folder (IMAP UID, Maildir key): a later run
        # reads a thread's older messages from here instead of searching for them.
        "location": stored.location,
        "flags": sorted(stored.flags),
        "from": mail.sender,
        "date": stored.when.isoformat(),
        "subject": mail.subject,
        "thread_subject": normalized_subject(mail.subject),
    }
