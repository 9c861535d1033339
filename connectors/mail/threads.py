"""Messages → threads: References / In-Reply-To first, the subject as a fallback.

Every Message-ID a message names (its own, In-Reply-To, References) joins one
union-find set, so a thread holds together even when its root is missing from
the mailbox. A message that names no parent but whose subject says it is a
reply ("Re: …", "AW: …") joins the thread with the same normalized subject whose
last message is at most `window` older. The thread's key is its root's
Message-ID: the earliest message that starts the thread, or, when the root is
not in the mailbox, the id the replies name as their first reference.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from syncd.connectors.mail.parse import MailMessage, normalized_subject

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class StoredMessage:
    """A message where it lives: folder, its id there (IMAP UID, Maildir key) and flags."""

    mail: MailMessage
    folder: str
    location: str
    flags: frozenset[str] = frozenset()
    received: datetime | None = None  # INTERNALDATE or file time: for a missing Date
    # `mail` was parsed from the whole message (body too), not its headers alone:
    # the page that writes its thread maps it as it is, without reading it again.
    whole: bool = False

    @property
    def when(self) -> datetime:
        return self.mail.date or self.received or _EPOCH


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, item: str) -> str:
        self.parent.setdefault(item, item)
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:  # path compression
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, first: str, second: str) -> None:
        a, b = self.find(first), self.find(second)
        if a != b:
            self.parent[max(a, b)] = min(a, b)  # deterministic, whatever the input order


def group_threads(
    messages: Iterable[StoredMessage], *, window: timedelta
) -> dict[str, list[StoredMessage]]:
    """Thread key → the thread's messages, oldest first."""
    ordered = sorted(messages, key=lambda stored: (stored.when, stored.mail.message_id))
    sets = _UnionFind()
    for stored in ordered:
        for parent in stored.mail.parents:
            sets.union(stored.mail.message_id, parent)
        sets.find(stored.mail.message_id)
    joined_by_subject = _join_by_subject(ordered, sets, window)
    components: dict[str, list[StoredMessage]] = {}
    for stored in ordered:
        components.setdefault(sets.find(stored.mail.message_id), []).append(stored)
    return {thread_key(members, joined_by_subject): members for members in components.values()}


def _join_by_subject(ordered: list[StoredMessage], sets: _UnionFind, window: timedelta) -> set[str]:
    """Join parentless "Re:" messages to the latest thread with their subject, in time order."""
    latest: dict[str, tuple[str, datetime]] = {}
    joined: set[str] = set()
    for stored in ordered:
        mail = stored.mail
        subject = normalized_subject(mail.subject)
        if not subject:
            continue
        previous = latest.get(subject)
        if (
            previous is not None
            and not mail.parents
            and mail.has_reply_prefix
            and sets.find(previous[0]) != sets.find(mail.message_id)
            and stored.when - previous[1] <= window
        ):
            sets.union(previous[0], mail.message_id)
            joined.add(mail.message_id)
        latest[subject] = (mail.message_id, stored.when)
    return joined


def thread_key(members: list[StoredMessage], joined_by_subject: Collection[str] = ()) -> str:
    """The root's Message-ID (members are oldest first)."""
    present = {stored.mail.message_id for stored in members}
    for stored in members:
        mail = stored.mail
        if not mail.parents and mail.message_id not in joined_by_subject:
            return mail.message_id
    # The root is not here: the id most replies name first (their References start at the root).
    named = Counter(
        stored.mail.parents[0]
        for stored in members
        if stored.mail.parents and stored.mail.parents[0] not in present
    )
    if named:
        top = max(named.values())
        for stored in members:
            first = stored.mail.parents[0] if stored.mail.parents else None
            if first is not None and named.get(first) == top:
                return first
    return members[0].mail.message_id


def thread_ids(members: Iterable[StoredMessage]) -> set[str]:
    """Every Message-ID the thread's messages have or name."""
    ids: set[str] = set()
    for stored in members:
        ids.add(stored.mail.message_id)
        ids.update(stored.mail.parents)
    return ids
