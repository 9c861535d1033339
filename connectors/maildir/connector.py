"""The Maildir connector: a local Maildir (and its Maildir++ folders) as one stream.

A Maildir changes by files appearing (delivery, a move in), being renamed (a
flag change) and vanishing (a move out, a delete); each of these moves a file's
ctime or the folder's count. The cursor keeps, per folder, the newest ctime seen
and the file count, so an untouched Maildir costs one directory scan. When
anything changed, every message's headers are read (local and cheap), which
gives the thread structure and a complete listing at once; only the threads
with a changed message are re-read whole and written. The cursor commits with
the last page: a crash re-reads the same changes, and unchanged tasks cost
nothing in the ledger.
"""

from __future__ import annotations

import mailbox
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from syncd.config import SourceSettings
from syncd.connector import ConnectorContext, Listing, Page
from syncd.connectors.mail.mapping import MailContext
from syncd.connectors.mail.pages import map_batch, parse_or_quarantine, thread_batches
from syncd.connectors.mail.threads import StoredMessage, group_threads
from syncd.connectors.maildir.settings import MaildirSettings
from syncd.errors import FailureKind, SourceError
from syncd.model import QuarantinedItem

STREAM = "maildir"
# Maildir info flags → the IMAP names `done_flag` is written in.
_FLAGS = {"F": "\\Flagged", "S": "\\Seen", "R": "\\Answered", "D": "\\Draft", "T": "\\Deleted"}
_HEADER_READ = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Entry:
    folder: str
    key: str
    path: str
    changed_ns: int
    flags: frozenset[str]


class MaildirConnector:
    kind: ClassVar[str] = "maildir"
    settings_model: ClassVar[type[SourceSettings]] = MaildirSettings

    def __init__(self, settings: MaildirSettings, context: ConnectorContext) -> None:
        self.settings = settings
        self.context = context
        try:
            self.root = mailbox.Maildir(str(settings.path), factory=None, create=False)
        except mailbox.NoSuchMailboxError as error:
            raise SourceError(
                FailureKind.CONFIGURATION,
                f"no Maildir at {settings.path} (source {context.source})",
            ) from error
        own = {settings.address.lower()} if settings.address else set()
        self.mail_context = MailContext(
            source=context.source,
            settings=settings,
            people=context.people,
            own_addresses=frozenset(own),
            team_aliases=frozenset(a.lower() for a in context.policy.team_aliases),
            timezone=context.policy.timezone,
            date_order=context.policy.date_order,
        )

    def close(self) -> None:
        self.root.close()

    def folder_names(self) -> list[str]:
        names = [_canonical(name) for name in self.settings.folders]
        if self.settings.done_folder is not None:
            names.append(_canonical(self.settings.done_folder))
        return list(dict.fromkeys(names))

    def pull(self) -> Iterator[Page | Listing]:
        cursor: dict[str, Any] = (self.context.read_cursor(STREAM) or {}).get("folders", {})
        entries = {name: self._scan(name) for name in self.folder_names()}
        changed = {
            (entry.folder, entry.key)
            for name, listed in entries.items()
            for entry in listed
            if entry.changed_ns > int(cursor.get(name, {}).get("changed_ns", -1))
        }
        counts_moved = any(
            len(listed) != cursor.get(name, {}).get("count") for name, listed in entries.items()
        )
        if not changed and not counts_moved:
            self.context.log.info("maildir unchanged", stream=STREAM)
            return
        yield from self._sync(entries, changed, _next_cursor(entries, cursor))

    def _sync(
        self,
        entries: dict[str, list[_Entry]],
        changed: set[tuple[str, str]],
        next_cursor: dict[str, Any],
    ) -> Iterator[Page | Listing]:
        quarantined: list[QuarantinedItem] = []
        stored = [
            message
            for listed in entries.values()
            for entry in listed
            if (message := self._head(entry, (entry.folder, entry.key) in changed, quarantined))
        ]
        threads = group_threads(stored, window=self.settings.subject_window)
        touched = [
            (key, members)
            for key, members in threads.items()
            if any((m.folder, m.location) in changed for m in members)
        ]
        paths = {(e.folder, e.key): e.path for listed in entries.values() for e in listed}
        batches = list(thread_batches(touched, self.settings.page_size)) or [[]]
        for number, batch in enumerate(batches, start=1):
            mapped = map_batch(batch, lambda wanted: _read(wanted, paths), self.mail_context)
            bad = quarantined + mapped.quarantined if number == 1 else mapped.quarantined
            last = number == len(batches)
            yield Page(
                stream=STREAM,
                tasks=mapped.tasks,
                activity=mapped.activity,
                quarantined=bad,
                cursor={"folders": next_cursor} if last else None,
                fetched=sum(len(members) for _, members in batch) + len(bad),
            )
        # Every message's headers were read: this is a complete listing.
        yield Listing(set(threads))

    def _scan(self, name: str) -> list[_Entry]:
        folder = self._folder(name)
        if folder is None:
            return []
        found: list[_Entry] = []
        for sub in ("new", "cur"):
            directory = os.path.join(folder._path, sub)  # mailbox keeps no public path
            for item in os.scandir(directory):
                if item.name.startswith(".") or not item.is_file():
                    continue
                info = item.stat()
                key, _, flags = item.name.partition(folder.colon)
                found.append(
                    _Entry(
                        folder=name,
                        key=key,
                        path=item.path,
                        # A flag change is a rename: it moves ctime, not mtime.
                        changed_ns=max(info.st_mtime_ns, info.st_ctime_ns),
                        flags=_flags(flags),
                    )
                )
        return found

    def _folder(self, name: str) -> mailbox.Maildir | None:
        if name == "":
            return self.root
        try:
            return self.root.get_folder(name)
        except mailbox.NoSuchMailboxError as error:
            if name == _canonical(self.settings.done_folder or ""):
                return None  # nobody has moved a thread there yet
            raise SourceError(
                FailureKind.CONFIGURATION,
                f"the Maildir folder {name!r} does not exist under {self.settings.path}",
            ) from error

    def _head(
        self, entry: _Entry, is_changed: bool, quarantined: list[QuarantinedItem]
    ) -> StoredMessage | None:
        try:
            with open(entry.path, "rb") as handle:
                head = _header_block(handle.read(_HEADER_READ))
            changed_at = datetime.fromtimestamp(entry.changed_ns / 1e9, tz=UTC)
        except FileNotFoundError:
            return None  # moved meanwhile; the next scan finds it where it went
        # A bad message is quarantined once, when it arrives, not on every run.
        sink: list[QuarantinedItem] = quarantined if is_changed else []
        mail = parse_or_quarantine(
            head, f"{entry.folder or 'INBOX'}/{entry.key}", sink, headers_only=True
        )
        if mail is None:
            return None
        return StoredMessage(
            mail=mail,
            folder=entry.folder,
            location=entry.key,
            flags=entry.flags,
            received=changed_at,
        )


def _read(
    wanted: Sequence[StoredMessage], paths: dict[tuple[str, str], str]
) -> dict[tuple[str, str], bytes]:
    bodies: dict[tuple[str, str], bytes] = {}
    for stored in wanted:
        ref = (stored.folder, stored.location)
        try:
            bodies[ref] = Path(paths[ref]).read_bytes()
        except (KeyError, FileNotFoundError):
            continue
    return bodies


def _header_block(data: bytes) -> bytes:
    for separator in (b"\r\n\r\n", b"\n\n"):
        end = data.find(separator)
        if end >= 0:
            return data[: end + len(separator)]
    return data


def _flags(info: str) -> frozenset[str]:
    letters = info[2:] if info.startswith("2,") else ""
    return frozenset(_FLAGS[letter] for letter in letters if letter in _FLAGS)


def _canonical(name: str) -> str:
    return "" if name.upper() == "INBOX" else name


def _next_cursor(entries: dict[str, list[_Entry]], previous: dict[str, Any]) -> dict[str, Any]:
    cursor = dict(previous)
    for name, listed in entries.items():
        newest = max((e.changed_ns for e in listed), default=0)
        cursor[name] = {
            "changed_ns": max(newest, int(previous.get(name, {}).get("changed_ns", 0))),
            "count": len(listed),
        }
    return cursor
