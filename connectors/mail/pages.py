"""Threads → pages of tasks, reading full messages only for the threads being written.

Both mailbox connectors first learn the thread structure from headers alone,
then read whole messages page by page (a message already parsed whole, as an
incremental run reads its few changes, is mapped as it is). A page never splits a thread (the task
needs all its messages), and a message that cannot be parsed is quarantined
with its reason while the rest of its thread still maps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from syncd.connectors.mail.mapping import MailContext, map_thread, thread_activity
from syncd.connectors.mail.parse import MailMessage, NotARequest, parse_message
from syncd.connectors.mail.threads import StoredMessage
from syncd.model import Activity, QuarantinedItem, Task

Thread = tuple[str, list[StoredMessage]]
# (folder, location) of each message → its bytes; a message gone meanwhile is absent.
BodyLoader = Callable[[Sequence[StoredMessage]], dict[tuple[str, str], bytes]]
MAX_QUARANTINED_PAYLOAD = 100_000


def thread_batches(threads: Sequence[Thread], page_size: int) -> Iterator[list[Thread]]:
    """Threads in groups of about `page_size` messages; a big thread is a page of its own."""
    batch: list[Thread] = []
    count = 0
    for thread in threads:
        if batch and count + len(thread[1]) > page_size:
            yield batch
            batch, count = [], 0
        batch.append(thread)
        count += len(thread[1])
    if batch:
        yield batch


@dataclass
class MappedBatch:
    tasks: list[Task] = field(default_factory=list)
    activity: list[Activity] = field(default_factory=list)
    quarantined: list[QuarantinedItem] = field(default_factory=list)


def map_batch(batch: Sequence[Thread], load: BodyLoader, context: MailContext) -> MappedBatch:
    wanted = [stored for _, members in batch for stored in members if not stored.whole]
    bodies = load(wanted) if wanted else {}
    mapped = MappedBatch()
    quarantined = mapped.quarantined
    for key, members in batch:
        full: list[StoredMessage] = []
        for stored in members:
            if stored.whole:
                full.append(stored)
                continue
            raw = bodies.get((stored.folder, stored.location))
            if raw is None:
                continue  # expunged between the header read and now: the next run sees it
            parsed = parse_or_quarantine(raw, f"{stored.folder}/{stored.location}", quarantined)
            if parsed is not None:
                # The header read fixed the message's id; a synthesized one must not drift.
                parsed.message_id = stored.mail.message_id
                full.append(replace(stored, mail=parsed))
        if not full:
            continue
        activity = thread_activity(key, full, context)
        if activity is not None:
            mapped.activity.extend(activity)
        else:
            mapped.tasks.append(map_thread(key, full, context))
    return mapped


def parse_or_quarantine(
    raw: bytes, ref: str, quarantined: list[QuarantinedItem], *, headers_only: bool = False
) -> MailMessage | None:
    """The parsed message, or None with a quarantine entry saying why it is not a task."""
    try:
        return parse_message(raw, headers_only=headers_only)
    except NotARequest as reason:
        quarantined.append(_quarantine(raw, ref, str(reason)))
    except Exception as error:  # the parser survived the corpus; this is the last net
        quarantined.append(_quarantine(raw, ref, f"unparseable message: {error!r}"))
    return None


def _quarantine(raw: bytes, ref: str, reason: str) -> QuarantinedItem:
    payload = raw[:MAX_QUARANTINED_PAYLOAD].decode("utf-8", errors="replace")
    return QuarantinedItem(reason=reason, payload=payload, external_ref=ref)
