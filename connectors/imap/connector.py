"""The IMAP connector: configured folders (and the done folder) as one stream.

Per run:

1. `STATUS` of every folder. A folder whose UIDVALIDITY, UIDNEXT, message count
   and HIGHESTMODSEQ match the cursor is untouched: nothing more is sent for it.
2. A folder seen for the first time, or whose UIDVALIDITY changed, is read
   whole (headers of every UID). Identity is the thread's root Message-ID, not a
   UID, so a resync rewrites the same tasks and never duplicates them.
3. A changed folder: `UID SEARCH MODSEQ` (CONDSTORE) gives the new and the
   re-flagged UIDs in one round trip; their headers are fetched. The count of
   old UIDs still present, compared with the cursor, reveals expunges; only then
   is every folder's UID listing read, which also lets gone threads be marked.
4. Threads of the changed messages are completed from what the ledger recorded:
   a thread's task payload lists every message it had, with its folder and UID,
   so its older messages are fetched by UID (one FETCH per folder for all the
   threads) and checked by Message-ID. Searches (`SEARCH HEADER` / `SUBJECT` in
   the folders not read whole, which a server without a full-text index answers
   by scanning every message) remain for the threads the ledger cannot account
   for: a task found whose recorded message is no longer where it was (or whose
   payload predates recorded locations), and a thread with no task under any
   Message-ID it names that may have older messages (it names a parent it does
   not hold, or has a reply subject without one).
5. Threads with a changed message are written in pages of about `page_size`
   messages, whole messages fetched per page. Each page's cursor moves each
   folder's `highest_uid` only past UIDs whose threads are written, so a crash
   resumes where it stopped; the new MODSEQ and UIDNEXT commit with the last page.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from syncd.config import SourceSettings
from syncd.connector import ConnectorContext, Listing, Page
from syncd.connectors.imap.gateway import FolderStatus, ImapGateway
from syncd.connectors.imap.settings import ImapSettings
from syncd.connectors.mail.mapping import MailContext
from syncd.connectors.mail.pages import Thread, map_batch, parse_or_quarantine, thread_batches
from syncd.connectors.mail.parse import normalized_subject
from syncd.connectors.mail.threads import StoredMessage, group_threads, thread_ids
from syncd.errors import FailureKind, SourceError
from syncd.model import QuarantinedItem

STREAM = "imap"
HEAD = "BODY.PEEK[HEADER]"
HEAD_KEY = b"BODY[HEADER]"
BODY = "BODY.PEEK[]"
BODY_KEY = b"BODY[]"
HEADS_PER_FETCH = 2000
IDS_PER_SEARCH = 50
COMPLETION_ROUNDS = 3
Json = dict[str, Any]


@dataclass
class FolderRun:
    """One folder's state during a run."""

    name: str
    status: FolderStatus
    previous: Json | None
    whole: bool = False  # every UID's headers were read this run
    present: list[int] | None = None  # every UID in the folder, when listed
    new: list[int] = field(default_factory=list)  # UIDs above the cursor
    old_present: int = 0  # messages at or below the cursor's highest UID
    heads: dict[int, StoredMessage] = field(default_factory=dict)
    touched: set[int] = field(default_factory=set)

    @property
    def highest_uid(self) -> int:
        return int(self.previous["highest_uid"]) if self.previous and not self.reset else 0

    @property
    def reset(self) -> bool:
        return self.previous is None or self.previous.get("uidvalidity") != self.status.uidvalidity

    def unchanged(self) -> bool:
        previous = self.previous
        return (
            not self.reset
            and previous is not None
            and previous.get("uidnext") == self.status.uidnext
            and previous.get("messages") == self.status.messages
            and previous.get("highestmodseq") == self.status.highestmodseq
        )


class ImapConnector:
    kind: ClassVar[str] = "imap"
    settings_model: ClassVar[type[SourceSettings]] = ImapSettings

    def __init__(self, settings: ImapSettings, context: ConnectorContext) -> None:
        self.settings = settings
        self.context = context
        self.gateway = ImapGateway(context.source, settings)
        self.mail_context = MailContext(
            source=context.source,
            settings=settings,
            people=context.people,
            own_addresses=frozenset({settings.username.lower()}),
            team_aliases=frozenset(a.lower() for a in context.policy.team_aliases),
            timezone=context.policy.timezone,
            date_order=context.policy.date_order,
        )

    def close(self) -> None:
        self.gateway.close()

    def pull(self) -> Iterator[Page | Listing]:
        cursor: Json = (self.context.read_cursor(STREAM) or {}).get("folders", {})
        folders = self._folder_states(cursor)
        if all(folder.unchanged() for folder in folders):
            self.context.log.info("mailbox unchanged", stream=STREAM)
            return
        quarantined: list[QuarantinedItem] = []
        for folder in folders:
            if folder.reset:
                self._read_whole(folder, quarantined, touched=True)
            elif not folder.unchanged():
                self._read_changes(folder, quarantined)
        if any(self._expunged(folder) for folder in folders):
            for folder in folders:
                if not folder.whole:
                    self._read_whole(folder, quarantined, touched=False)
        self._complete_threads(folders)
        yield from self._write(folders, quarantined)

    # --- planning: what changed -------------------------------------------------------

    def _folder_states(self, cursor: Json) -> list[FolderRun]:
        names = list(self.settings.folders)
        done = self.settings.done_folder
        if done is not None and done not in names:
            names.append(done)
        states: list[FolderRun] = []
        for name in names:
            status = self.gateway.status(name)
            if status is None:
                if name == done:
                    continue  # nobody moved a thread there yet
                raise SourceError(
                    FailureKind.CONFIGURATION,
                    f"the IMAP folder {name!r} does not exist (source {self.context.source})",
                )
            states.append(FolderRun(name=name, status=status, previous=cursor.get(name)))
        return states

    def _read_whole(
        self, folder: FolderRun, quarantined: list[QuarantinedItem], *, touched: bool
    ) -> None:
        folder.present = self.gateway.search(folder.name, ["ALL"])
        folder.new = [uid for uid in folder.present if uid > folder.highest_uid]
        folder.old_present = len(folder.present) - len(folder.new)
        wanted = [uid for uid in folder.present if uid not in folder.heads]
        sink = quarantined if touched else []
        self._read_heads(folder, wanted, sink, touched=touched)
        folder.whole = True

    def _read_changes(self, folder: FolderRun, quarantined: list[QuarantinedItem]) -> None:
        previous = folder.previous or {}
        modseq = previous.get("highestmodseq")
        if modseq is not None and folder.status.highestmodseq is not None:
            changed = self.gateway.search(folder.name, ["MODSEQ", str(int(modseq) + 1)])
        else:  # no CONDSTORE: new UIDs only; flag changes wait for a whole read
            changed = self.gateway.search(folder.name, ["UID", f"{folder.highest_uid + 1}:*"])
        folder.new = [uid for uid in changed if uid > folder.highest_uid]
        folder.old_present = self.gateway.exists - len(folder.new)
        # A changed message's thread is written this run: read it whole at once.
        self._read_heads(folder, changed, quarantined, touched=True, whole_messages=True)

    def _expunged(self, folder: FolderRun) -> bool:
        if folder.reset or folder.unchanged() or folder.previous is None:
            return False
        return folder.old_present < int(folder.previous.get("messages", 0))

    def _read_heads(
        self,
        folder: FolderRun,
        uids: Sequence[int],
        quarantined: list[QuarantinedItem],
        *,
        touched: bool,
        whole_messages: bool = False,
    ) -> None:
        """Parse the headers of `uids`, or with `whole_messages` the whole messages.

        A first sync reads headers only (memory stays flat) and the pages read the
        bodies; the few messages of an incremental run are read and parsed once.
        """
        item, key = (BODY, BODY_KEY) if whole_messages else (HEAD, HEAD_KEY)
        for start in range(0, len(uids), HEADS_PER_FETCH):
            chunk = uids[start : start + HEADS_PER_FETCH]
            fetched = self.gateway.fetch(folder.name, chunk, ["FLAGS", "INTERNALDATE", item])
            for uid, data in fetched.items():
                raw = data.get(key)
                if not isinstance(raw, bytes):
                    continue
                ref = f"{folder.name}/{folder.status.uidvalidity}/{uid}"
                mail = parse_or_quarantine(raw, ref, quarantined, headers_only=not whole_messages)
                if mail is None:
                    continue
                folder.heads[uid] = StoredMessage(
                    mail=mail,
                    folder=folder.name,
                    location=str(uid),
                    flags=frozenset(_text(flag) for flag in data.get(b"FLAGS", ())),
                    received=_aware(data.get(b"INTERNALDATE")),
                    whole=whole_messages,
                )
                if touched:
                    folder.touched.add(uid)

    def _complete_threads(self, folders: list[FolderRun]) -> None:
        """Find older messages of the changed threads in the folders not read whole."""
        partial = [folder for folder in folders if not folder.whole]
        if not partial:
            return
        settled, doubtful = self._complete_from_ledger(folders)
        # The selected folder last: the page fetches that follow then need no new SELECT.
        partial.sort(key=lambda folder: folder.name == self.gateway.selected)
        searched: set[str] = set()
        subjects: set[str] = set()
        for _ in range(COMPLETION_ROUNDS):
            ids, new_subjects = self._thread_terms(folders, settled, doubtful, searched, subjects)
            if not ids and not new_subjects:
                return
            searched |= ids
            subjects |= new_subjects
            found = False
            for folder in partial:
                uids = self._search_members(folder, sorted(ids), sorted(new_subjects))
                wanted = [uid for uid in uids if uid not in folder.heads]
                self._read_heads(folder, wanted, [], touched=False, whole_messages=True)
                found = found or bool(wanted)
            if not found:
                return

    def _complete_from_ledger(self, folders: list[FolderRun]) -> tuple[set[str], set[str]]:
        """Read the changed threads' older messages where their tasks recorded them.

        Returns the keys of the tasks whose every recorded message was found again,
        at its folder and UID, with its Message-ID: those threads are complete
        (their newer messages are this run's changes) and need no search; and the
        keys of the other tasks found (a message elsewhere now, or a payload that
        does not say where its messages are): those threads must be searched.
        """
        named: set[str] = set()
        for thread in self._changed_threads(folders):
            named |= thread_ids(thread)
        payloads = self.context.read_payloads(named)
        recorded = {
            key: places
            for key, payload in payloads.items()
            if (places := recorded_members(payload)) is not None
        }
        by_name = {folder.name: folder for folder in folders}
        wanted: dict[str, set[int]] = {}
        for places in recorded.values():
            for name, uid, _ in places:
                where = by_name.get(name)
                # A folder read whole holds every message it has: nothing more to fetch.
                if where is not None and not where.whole and uid not in where.heads:
                    wanted.setdefault(name, set()).add(uid)
        # The selected folder first: its FETCH needs no SELECT.
        for name in sorted(wanted, key=lambda name: name != self.gateway.selected):
            self._read_heads(
                by_name[name], sorted(wanted[name]), [], touched=False, whole_messages=True
            )
        settled = {
            key
            for key, places in recorded.items()
            if all(_holds(by_name.get(name), uid, message_id) for name, uid, message_id in places)
        }
        return settled, set(payloads) - settled

    def _changed_threads(self, folders: list[FolderRun]) -> list[list[StoredMessage]]:
        """The threads, among the messages read so far, that hold a changed message."""
        messages = [m for folder in folders for m in folder.heads.values()]
        threads = group_threads(messages, window=self.settings.subject_window)
        touched = {
            id(m) for folder in folders for uid, m in folder.heads.items() if uid in folder.touched
        }
        return [members for members in threads.values() if any(id(m) in touched for m in members)]

    def _thread_terms(
        self,
        folders: list[FolderRun],
        settled: set[str],
        doubtful: set[str],
        searched: set[str],
        subjects: set[str],
    ) -> tuple[set[str], set[str]]:
        """Message-IDs (and reply subjects) of the changed threads still to search for."""
        ids: set[str] = set()
        new_subjects: set[str] = set()
        for members in self._changed_threads(folders):
            named = thread_ids(members)
            if not named & doubtful and (named & settled or not may_have_older(members)):
                continue
            ids |= named
            subject = normalized_subject(members[0].mail.subject)
            if len(subject) >= 8:
                new_subjects.add(subject)
        return ids - searched, new_subjects - subjects

    def _search_members(self, folder: FolderRun, ids: list[str], subjects: list[str]) -> list[int]:
        found: set[int] = set()
        terms: list[list[str]] = []
        for message_id in ids:
            bracketed = f"<{message_id}>"
            terms += [
                ["HEADER", "Message-ID", bracketed],
                ["HEADER", "References", bracketed],
                ["HEADER", "In-Reply-To", bracketed],
            ]
        terms += [["SUBJECT", subject] for subject in subjects]
        for start in range(0, len(terms), IDS_PER_SEARCH * 3):
            chunk = terms[start : start + IDS_PER_SEARCH * 3]
            criteria: list[str] = ["OR"] * (len(chunk) - 1)
            for term in chunk:
                criteria += term
            found.update(self.gateway.search(folder.name, criteria))
        return sorted(found)

    # --- acting: pages ---------------------------------------------------------------

    def _write(
        self, folders: list[FolderRun], quarantined: list[QuarantinedItem]
    ) -> Iterator[Page | Listing]:
        by_name = {folder.name: folder for folder in folders}
        messages = [m for folder in folders for m in folder.heads.values()]
        threads = group_threads(messages, window=self.settings.subject_window)
        touched = [
            (key, members)
            for key, members in threads.items()
            if any(int(m.location) in by_name[m.folder].touched for m in members)
        ]
        # Oldest first: the UID watermark then moves steadily through a first sync.
        touched.sort(key=lambda thread: min(_position(m, folders) for m in thread[1]))
        written: set[tuple[str, int]] = set()
        batches = list(thread_batches(touched, self.settings.page_size)) or [[]]
        for number, batch in enumerate(batches, start=1):
            mapped = map_batch(batch, lambda wanted: self._bodies(wanted), self.mail_context)
            written.update((m.folder, int(m.location)) for _, members in batch for m in members)
            last = number == len(batches)
            bad = quarantined + mapped.quarantined if number == 1 else mapped.quarantined
            yield Page(
                stream=STREAM,
                tasks=mapped.tasks,
                activity=mapped.activity,
                quarantined=bad,
                cursor={"folders": self._cursor(folders, touched, written, final=last)},
                fetched=sum(len(members) for _, members in batch) + len(bad),
            )
        if all(folder.whole for folder in folders):
            yield Listing(set(threads))

    def _bodies(self, wanted: Sequence[StoredMessage]) -> dict[tuple[str, str], bytes]:
        by_folder: dict[str, set[int]] = {}
        for stored in wanted:
            by_folder.setdefault(stored.folder, set()).add(int(stored.location))
        bodies: dict[tuple[str, str], bytes] = {}
        for name, uids in by_folder.items():
            for uid, data in self.gateway.fetch(name, sorted(uids), [BODY]).items():
                raw = data.get(BODY_KEY)
                if isinstance(raw, bytes):
                    bodies[(name, str(uid))] = raw
        return bodies

    def _cursor(
        self,
        folders: list[FolderRun],
        touched: list[Thread],
        written: set[tuple[str, int]],
        *,
        final: bool,
    ) -> Json:
        cursor: Json = {}
        pending: dict[str, int] = {}
        for _, members in touched:
            for m in members:
                ref = (m.folder, int(m.location))
                if ref not in written:
                    pending[m.folder] = min(pending.get(m.folder, ref[1]), ref[1])
        for folder in folders:
            if folder.unchanged():
                cursor[folder.name] = folder.previous
                continue
            top = max(folder.new, default=folder.highest_uid)
            if folder.name in pending:
                top = max(
                    folder.highest_uid,
                    max((u for u in folder.new if u < pending[folder.name]), default=0),
                )
            kept_new = sum(1 for uid in folder.new if uid <= top)
            status = folder.status
            cursor[folder.name] = {
                "uidvalidity": status.uidvalidity,
                "highest_uid": top,
                "messages": folder.old_present + kept_new,
                # Counters that let the next run skip the folder only once everything is written.
                "uidnext": status.uidnext if final else None,
                "highestmodseq": status.highestmodseq
                if final
                else (None if folder.reset else (folder.previous or {}).get("highestmodseq")),
            }
        return cursor


def recorded_members(payload: Json) -> list[tuple[str, int, str]] | None:
    """(folder, UID, Message-ID) of every message a task's payload lists, or None when
    the payload does not say where each one is (written before it recorded UIDs)."""
    members: list[tuple[str, int, str]] = []
    for message in payload.get("messages") or ():
        if not isinstance(message, dict):
            return None
        folder, location, message_id = (
            message.get("folder"),
            message.get("location"),
            message.get("message_id"),
        )
        if not (isinstance(folder, str) and isinstance(message_id, str)):
            return None
        if not (isinstance(location, str) and location.isdigit()):
            return None
        members.append((folder, int(location), message_id))
    return members or None


def may_have_older(members: Sequence[StoredMessage]) -> bool:
    """Whether older messages of this thread can sit in the mailbox unread: one of its
    messages names a parent the thread does not hold, or says it is a reply without
    naming any (the subject fallback may join it to an older thread)."""
    present = {stored.mail.message_id for stored in members}
    return any(
        any(parent not in present for parent in stored.mail.parents)
        or (not stored.mail.parents and stored.mail.has_reply_prefix)
        for stored in members
    )


def _holds(folder: FolderRun | None, uid: int, message_id: str) -> bool:
    stored = folder.heads.get(uid) if folder is not None else None
    return stored is not None and stored.mail.message_id == message_id


def _position(stored: StoredMessage, folders: list[FolderRun]) -> tuple[int, int]:
    index = next(i for i, folder in enumerate(folders) if folder.name == stored.folder)
    return index, int(stored.location)


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _aware(value: object) -> datetime | None:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value
    return None
