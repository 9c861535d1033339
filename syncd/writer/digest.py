"""Daily digests: one message a day for people who asked for one.

Follow-ups for such a person are stored in state `digest`. Once a day (in the
person's time zone, during their working hours) they are gathered into one
outbox row, keyed `digest:<person>:<date>`, and marked `digested` in the same
transaction; that row is then delivered like any other follow-up, exactly once.
Items that arrive after today's digest went out wait for tomorrow's.

Each item's body was written at plan time for the channel its digest goes out on
(`encoded_for` in its target); an item written for another channel (the person's
address changed since) is encoded again for this one, so it shows its markup as
text rather than ever passing source text through unescaped.
`next_digest_at` tells a long-running service when to wake for the next one.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from syncd.config import PersonSettings, Settings
from syncd.ledger.models import OutboxItem
from syncd.ledger.repository import Ledger
from syncd.writer.direct import direct_target, insert_message
from syncd.writer.plan import DIGEST_SUBJECT
from syncd.writer.schedule import next_working_moment
from syncd.writer.sinks import encoder_for


def compose_digests(ledger: Ledger, settings: Settings, now: datetime) -> int:
    """Gather each digest reader's waiting items into today's digest; returns digests made."""
    waiting = _waiting_by_person(ledger)
    made = 0
    for person_id, items in waiting.items():
        person = settings.people.get(person_id)
        if person is None or next_working_moment(now, person, settings.policy) is not None:
            continue  # not at work now: the digest waits for their working hours
        target = direct_target(person_id, settings, DIGEST_SUBJECT)
        if target is None:
            continue
        channel, where = target
        day = _local_day(now, person, settings).isoformat()
        if _make_digest(ledger, person_id, day, channel, where, items, now):
            made += 1
    return made


def next_digest_at(ledger: Ledger, settings: Settings, now: datetime) -> datetime | None:
    """When `compose_digests` next has a digest to gather: now, a later moment, or never.

    A reader with waiting items gets theirs at the start of their next working
    period, or now when they are at work and today's digest has not gone out.
    """
    query = select(OutboxItem.recipient).where(OutboxItem.state == "digest").distinct()
    with ledger.sessions() as session:
        readers = [r for r in session.scalars(query) if r]
    moments = []
    for person_id in readers:
        person = settings.people.get(person_id)
        if person is None or direct_target(person_id, settings, "") is None:
            continue  # compose_digests skips them too: waking for them would spin
        moments.append(_next_for(ledger, person_id, person, settings, now))
    return min(moments, default=None)


def _next_for(
    ledger: Ledger, person_id: str, person: PersonSettings, settings: Settings, now: datetime
) -> datetime:
    opens = next_working_moment(now, person, settings.policy)
    if opens is not None:
        return opens
    today = _local_day(now, person, settings)
    if not _exists(ledger, f"digest:{person_id}:{today.isoformat()}"):
        return now
    zone = ZoneInfo(person.timezone or settings.policy.timezone)
    tomorrow = datetime.combine(today + timedelta(days=1), time(0), zone)
    return next_working_moment(tomorrow, person, settings.policy) or tomorrow


def _local_day(now: datetime, person: PersonSettings, settings: Settings) -> date:
    return now.astimezone(ZoneInfo(person.timezone or settings.policy.timezone)).date()


def _exists(ledger: Ledger, key: str) -> bool:
    query = select(OutboxItem.id).where(OutboxItem.idempotency_key == key)
    with ledger.sessions() as session:
        return session.scalar(query) is not None


def _waiting_by_person(ledger: Ledger) -> dict[str, list[OutboxItem]]:
    query = select(OutboxItem).where(OutboxItem.state == "digest").order_by(OutboxItem.id)
    grouped: dict[str, list[OutboxItem]] = defaultdict(list)
    with ledger.sessions() as session:
        for row in session.scalars(query):
            if row.recipient:
                grouped[row.recipient].append(row)
    return grouped


def _make_digest(
    ledger: Ledger,
    person_id: str,
    day: str,
    channel: str,
    target: dict[str, object],
    items: list[OutboxItem],
    now: datetime,
) -> bool:
    key = f"digest:{person_id}:{day}"
    lines = [f"{len(items)} things need you today:"]
    lines += [f"- {_item_text(item, channel)}" for item in items]
    with ledger.sessions.begin() as session:
        created = insert_message(
            ledger, session.connection(), key=key, kind="digest", person_id=person_id,
            channel=channel, target=target, body="\n".join(lines), now=now,
        )  # fmt: skip
        if not created:
            return False  # today's digest already went out: these wait for tomorrow
        session.execute(
            update(OutboxItem)
            .where(OutboxItem.id.in_([item.id for item in items]), OutboxItem.state == "digest")
            .values(state="digested", remote_id=key, updated_at=now)
        )
    return True


def _item_text(item: OutboxItem, channel: str) -> str:
    """The item's body as written for `channel`; encoded again if it was written for another."""
    written_for = (item.target or {}).get("encoded_for", item.channel)
    if written_for == channel:
        return item.body
    return encoder_for(channel)(item.body, multiline=True, limit=None)
