"""A thin gateway over imapclient: one connection, classified errors, counted round trips.

Every read goes through `call_idempotent`: a dropped connection or a timeout
is transient, so the gateway reconnects, re-selects the folder and tries again.
A rejected login is an authentication failure and is never retried. The
password is only handed to `login` and never logged. `commands` counts every
tagged IMAP command sent (each is one round trip), for tests and the benchmark.
"""

from __future__ import annotations

import contextlib
import ssl as ssl_module
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from syncd.connectors.imap.settings import ImapSettings
from syncd.errors import FailureKind, SourceError
from syncd.retry import call_idempotent

T = TypeVar("T")
Fetched = dict[int, dict[bytes, Any]]


@dataclass(frozen=True, slots=True)
class FolderStatus:
    uidvalidity: int
    uidnext: int
    messages: int
    highestmodseq: int | None  # None: the server has no CONDSTORE


class ImapGateway:
    def __init__(self, source: str, settings: ImapSettings) -> None:
        self.source = source
        self.settings = settings
        self.client: IMAPClient | None = None
        self.selected: str | None = None
        self.exists = 0  # EXISTS of the selected folder, as SELECT reported it
        self.commands = 0
        self.trace: list[str] = []  # the reads asked for, in order (tests, benchmark)

    # --- connection ---------------------------------------------------------------

    def _connect(self) -> IMAPClient:
        settings = self.settings
        client = IMAPClient(
            settings.host, port=settings.port, ssl=settings.ssl, timeout=settings.timeout
        )
        client.normalise_times = False  # keep INTERNALDATE's zone: aware datetimes
        self._count_commands(client)
        try:
            client.login(settings.username, settings.password.get_secret_value())
        except LoginError as error:
            _quietly_close(client)
            raise SourceError(
                FailureKind.AUTHENTICATION,
                f"the IMAP server rejected the login for source {self.source}",
            ) from error
        return client

    def _count_commands(self, client: IMAPClient) -> None:
        """Every IMAP command takes a new tag, whichever imapclient path sends it."""
        connection = client._imap  # imapclient exposes no hook for this
        new_tag = connection._new_tag

        def counted() -> Any:
            self.commands += 1
            return new_tag()

        connection._new_tag = counted

    def close(self) -> None:
        if self.client is not None:
            with contextlib.suppress(IMAPClientError, OSError):
                self.client.logout()
            self.client = None

    @property
    def has_condstore(self) -> bool:
        client = self.client or self._run(lambda c: c, what="connect")
        return bool(client.has_capability("CONDSTORE"))

    # --- reads ----------------------------------------------------------------------

    def status(self, folder: str) -> FolderStatus | None:
        """The folder's counters without selecting it, or None when it does not exist."""
        what = [b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY"]
        if self.has_condstore:
            what.append(b"HIGHESTMODSEQ")
        try:
            raw = self._run(lambda c: c.folder_status(folder, what), what=f"STATUS {folder}")
        except SourceError as error:
            if error.kind is FailureKind.CONFIGURATION:
                return None
            raise
        modseq = raw.get(b"HIGHESTMODSEQ")
        return FolderStatus(
            uidvalidity=int(raw[b"UIDVALIDITY"]),
            uidnext=int(raw[b"UIDNEXT"]),
            messages=int(raw[b"MESSAGES"]),
            highestmodseq=int(modseq) if modseq is not None else None,
        )

    def search(self, folder: str, criteria: Sequence[Any]) -> list[int]:
        # The trace names the first criterion: MODSEQ and ALL are cheap, HEADER scans.
        what = f"SEARCH {folder} {criteria[0] if criteria else ''}".rstrip()
        return sorted(self._run(lambda c: c.search(list(criteria)), what=what, folder=folder))

    def fetch(
        self, folder: str, uids: Sequence[int], items: Sequence[str], modifiers: Sequence[str] = ()
    ) -> Fetched:
        if not uids:
            return {}
        response: Fetched = self._run(
            lambda c: c.fetch(list(uids), list(items), modifiers=list(modifiers) or None),
            what=f"FETCH {folder}",
            folder=folder,
        )
        # `UID FETCH n:*` answers with the last message even when n is past it; and
        # servers add unsolicited FETCHes: only what was asked for counts.
        wanted = set(uids)
        return {uid: data for uid, data in response.items() if uid in wanted}

    def _run(self, call: Callable[[IMAPClient], T], *, what: str, folder: str | None = None) -> T:
        def attempt() -> T:
            client = self._ensure_connected()
            self.trace.append(what)
            if folder is not None and self.selected != folder:
                selected = client.select_folder(folder, readonly=True)
                self.selected = folder
                self.exists = int(selected.get(b"EXISTS", 0))
            return call(client)

        return call_idempotent(lambda: self._classified(attempt), what=what)

    def _ensure_connected(self) -> IMAPClient:
        if self.client is None:
            self.client = self._connect()
            self.selected = None
        return self.client

    def _classified(self, attempt: Callable[[], T]) -> T:
        try:
            return attempt()
        except SourceError:
            raise
        except (TimeoutError, IMAPClientAbortError, ssl_module.SSLError, OSError) as error:
            self._drop()
            raise SourceError(
                FailureKind.TRANSIENT,
                f"the connection to the IMAP server {self.settings.host}:{self.settings.port} "
                f"failed: {error}",
            ) from error
        except IMAPClientError as error:
            message = str(error)
            kind = (
                FailureKind.CONFIGURATION
                if "nonexistent" in message.lower() or "doesn't exist" in message.lower()
                else FailureKind.PERMANENT
            )
            raise SourceError(kind, f"the IMAP server refused a request: {message}") from error

    def _drop(self) -> None:
        if self.client is not None:
            _quietly_close(self.client)
        self.client, self.selected = None, None


def _quietly_close(client: IMAPClient) -> None:
    with contextlib.suppress(IMAPClientError, OSError):
        client.shutdown()
