"""Email replies over SMTP (smtplib), with a copy kept in the mailbox's Sent folder.

The marker is the reply's `Message-ID`, derived from the idempotency key
(`<syncd.SERIES-HASH.KEY-HASH@domain-of-from>`), so the same follow-up always has
the same id, and every follow-up of one series (one rule on one task, see
`syncd.writer.base`) shares a prefix that an IMAP `SEARCH HEADER` finds.
SMTP offers no way to ask "did this arrive?", so the proof lives in the Sent
folder of an IMAP source (`sent_folder`), in two steps that close the crash
window between sending and recording:

1. before sending, the reply is APPENDed to the Sent folder flagged
   `$SyncdUnconfirmed`;
2. after the server accepted it, the flag is removed (or, when the server
   refused it, the copy is deleted again).

`find` searches the Sent folder for the Message-ID: an unflagged copy is a sent
reply; a copy still flagged means a crash or a lost connection left the send in
doubt, and `find` raises `UnconfirmableDelivery` so the drain reports it instead
of sending twice. Without a Sent folder, `find` always raises it, and `markers`
finds nothing: a ledger that starts empty cannot learn what was mailed before,
and sends again (the one known gap, stated in the README).
"""

from __future__ import annotations

import contextlib
import hashlib
import smtplib
import ssl
from collections.abc import Iterator
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, parseaddr

import structlog
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from syncd.config import SmtpSettings, SourceSettings
from syncd.connectors.imap.settings import ImapSettings
from syncd.connectors.mail.headers import body_text, header_value
from syncd.writer.base import Delivery, Marker, UnconfirmableDelivery, WriteError, series_of

log = structlog.get_logger(__name__)

UNCONFIRMED = b"$SyncdUnconfirmed"
HEADER = b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"


def message_id(idempotency_key: str, sender: str) -> str:
    """The reply's Message-ID without angle brackets; the same key gives the same id."""
    return f"{series_prefix(idempotency_key)}{_digest(idempotency_key, 12)}@{_domain(sender)}"


def series_prefix(idempotency_key: str) -> str:
    """The start of the Message-ID of every reply in this key's series."""
    return f"syncd.{_digest(series_of(idempotency_key), 6)}."


def _legacy_message_id(idempotency_key: str, sender: str) -> str:
    """The id replies had before series prefixes; `find` still recognises them."""
    return f"syncd.{_digest(idempotency_key, 16)}@{_domain(sender)}"


def _digest(text: str, size: int) -> str:
    return hashlib.blake2b(text.encode(), digest_size=size).hexdigest()


def _domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "syncd.invalid"


def build_reply(delivery: Delivery, sender: str) -> EmailMessage:
    """The reply in the thread: `In-Reply-To` and `References` point at the thread.

    Every header value is folded to one line (`header_value`): a title or an id
    from a source can never add a header. The body is plain text.
    """
    target = delivery.target
    if not target.get("to"):
        raise WriteError("an email delivery needs target to", permanent=True)
    message = EmailMessage()
    message["From"] = header_value(sender, limit=None)
    to = target["to"] if isinstance(target["to"], str) else ", ".join(target["to"])
    message["To"] = header_value(to, limit=None)
    message["Subject"] = header_value(_reply_subject(str(target.get("subject") or "")))
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = f"<{message_id(delivery.idempotency_key, sender)}>"
    parent = _angled(target.get("in_reply_to"))
    references = [_angled(r) for r in _as_list(target.get("references"))]
    if parent:
        message["In-Reply-To"] = header_value(parent, limit=None)
        if parent not in references:
            references.append(parent)
    if references:
        message["References"] = header_value(" ".join(r for r in references if r), limit=None)
    message.set_content(body_text(delivery.body, multiline=True, limit=None))
    return message


class EmailWriter:
    channel = "email"

    def __init__(self, smtp: SmtpSettings, sent: SourceSettings | None = None) -> None:
        if sent is not None and not isinstance(sent, ImapSettings):
            raise WriteError(f"a Sent folder needs an IMAP source, not {sent.kind}", permanent=True)
        self.smtp = smtp
        self.imap = sent if sent is not None and sent.sent_folder else None

    def close(self) -> None:
        """Connections are opened per delivery; nothing stays open."""

    def find(self, delivery: Delivery) -> str | None:
        mid = message_id(delivery.idempotency_key, self.smtp.from_)
        if self.imap is None:
            raise UnconfirmableDelivery(
                "no Sent folder is configured, so an earlier send cannot be confirmed"
            )
        with self._mailbox() as client:
            flags = _flags_of(client, mid)
            if flags is None:
                mid = _legacy_message_id(delivery.idempotency_key, self.smtp.from_)
                flags = _flags_of(client, mid)
        if flags is None:
            return None
        if UNCONFIRMED in flags:
            raise UnconfirmableDelivery(
                f"reply {mid} may or may not have been sent (a send was interrupted)"
            )
        return mid

    def markers(self, delivery: Delivery) -> list[Marker]:
        """The Sent folder's replies of this series; none without a Sent folder (cannot look)."""
        if self.imap is None:
            return []
        own = message_id(delivery.idempotency_key, self.smtp.from_)
        with self._mailbox() as client:
            client.normalise_times = False  # INTERNALDATE with its zone, not naive local time
            uids = client.search(["HEADER", "Message-ID", series_prefix(delivery.idempotency_key)])
            fetched = client.fetch(uids, ["FLAGS", "INTERNALDATE", HEADER]) if uids else {}
        copies: dict[str, list[tuple[bool, datetime | None]]] = {}
        for data in fetched.values():
            mid = _message_id_of(data.get(HEADER.replace(b".PEEK", b""), b""))
            when = data.get(b"INTERNALDATE")
            settled = UNCONFIRMED not in set(data.get(b"FLAGS", ()))
            copies.setdefault(mid, []).append((settled, when if isinstance(when, datetime) else None))
        # Two copies (a retried append) count as confirmed if any copy is, as in `find`.
        if own in copies and not any(settled for settled, _ in copies[own]):
            raise UnconfirmableDelivery(
                f"reply {own} may or may not have been sent (a send was interrupted)"
            )
        return [Marker(mid, mid == own, min((w for _, w in c if w), default=None))
                for mid, c in copies.items() if mid]  # fmt: skip

    def post(self, delivery: Delivery) -> str:
        message = build_reply(delivery, self.smtp.from_)
        mid = message_id(delivery.idempotency_key, self.smtp.from_)
        if self.imap is not None:
            self._keep_unconfirmed_copy(message)
        try:
            self._send(message)
        except _NotSent as refused:
            self._settle_copy(mid, sent=False)
            raise WriteError(str(refused), permanent=refused.permanent) from None
        self._settle_copy(mid, sent=True)
        return mid

    # --- SMTP ------------------------------------------------------------------------

    def _send(self, message: EmailMessage) -> None:
        """Send once. `_NotSent` when the server certainly did not take it; a
        `WriteError` when the outcome is unknown (the connection dropped mid-way)."""
        try:
            server = self._connect()
        except (smtplib.SMTPException, OSError) as error:
            raise _NotSent(f"could not reach the SMTP server: {_smtp_words(error)}") from None
        try:
            server.send_message(message)
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as error:
            raise _NotSent(
                f"the SMTP server refused the reply: {_smtp_words(error)}", True
            ) from None
        except smtplib.SMTPDataError as error:
            raise _NotSent(
                f"the SMTP server refused the reply: {_smtp_words(error)}", error.smtp_code >= 500
            ) from None
        except (smtplib.SMTPException, OSError) as error:
            raise WriteError(
                f"the SMTP connection failed during the send; it may have been sent "
                f"({_smtp_words(error)})"
            ) from None
        finally:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                server.quit()

    def _connect(self) -> smtplib.SMTP:
        settings = self.smtp
        context = ssl.create_default_context()
        server: smtplib.SMTP
        if settings.ssl:
            server = smtplib.SMTP_SSL(
                settings.host, settings.port, timeout=settings.timeout, context=context
            )
        else:
            server = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        try:
            if settings.starttls and not settings.ssl:
                server.starttls(context=context)
            if settings.username:
                password = settings.password.get_secret_value() if settings.password else ""
                server.login(settings.username, password)
        except (smtplib.SMTPException, OSError):
            with contextlib.suppress(smtplib.SMTPException, OSError):
                server.close()
            raise
        return server

    # --- the Sent folder ---------------------------------------------------------------

    @contextlib.contextmanager
    def _mailbox(self) -> Iterator[IMAPClient]:
        """A logged-in IMAP connection with the Sent folder selected (created if missing)."""
        imap = self.imap
        assert imap is not None and imap.sent_folder is not None
        try:
            client = IMAPClient(imap.host, port=imap.port, ssl=imap.ssl, timeout=imap.timeout)
            try:
                client.login(imap.username, imap.password.get_secret_value())
                if not client.folder_exists(imap.sent_folder):
                    client.create_folder(imap.sent_folder)
                client.select_folder(imap.sent_folder)
                yield client
            finally:
                with contextlib.suppress(IMAPClientError, OSError):
                    client.logout()
        except (IMAPClientError, OSError) as error:
            # imapclient's errors quote the server, never the password we sent.
            raise WriteError(
                f"the Sent folder {imap.sent_folder!r} on {imap.host} is unavailable "
                f"({type(error).__name__}: {str(error)[:200]})"
            ) from None

    def _keep_unconfirmed_copy(self, message: EmailMessage) -> None:
        assert self.imap is not None and self.imap.sent_folder is not None
        with self._mailbox() as client:
            client.append(
                self.imap.sent_folder,
                message.as_bytes(policy=SMTP_POLICY),
                (b"\\Seen", UNCONFIRMED),
            )

    def _settle_copy(self, mid: str, *, sent: bool) -> None:
        """Unflag the copy of a sent reply, or delete the copy of a refused one."""
        if self.imap is None:
            return
        try:
            with self._mailbox() as client:
                uids = client.search(["HEADER", "Message-ID", mid])
                if not uids:
                    return
                if sent:
                    client.remove_flags(uids, [UNCONFIRMED])
                else:
                    client.delete_messages(uids)
                    client.expunge(uids)
        except WriteError as error:
            # The send's outcome stands; the copy stays flagged and `find` reports it unconfirmed.
            log.warning("sent_copy_not_settled", message_id=mid, sent=sent, error=str(error))


class _NotSent(Exception):
    """The SMTP server certainly did not accept the reply."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def _flags_of(client: IMAPClient, mid: str) -> set[bytes] | None:
    uids = client.search(["HEADER", "Message-ID", mid])
    if not uids:
        return None
    fetched = client.fetch(uids, ["FLAGS"])
    flags: set[bytes] = set()
    # Two copies (a retried append) count as confirmed if any copy is.
    settled = False
    for data in fetched.values():
        these = set(data.get(b"FLAGS", ()))
        settled = settled or UNCONFIRMED not in these
        flags |= these
    return flags - {UNCONFIRMED} if settled else flags


def _message_id_of(header: object) -> str:
    text = header.decode(errors="replace") if isinstance(header, bytes) else str(header)
    _, _, value = text.partition(":")
    return value.strip().strip("<>").strip()


def _reply_subject(subject: str) -> str:
    return subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()


def _angled(value: object) -> str:
    text = header_value(str(value or ""), limit=None)
    if not text:
        return ""
    return text if text.startswith("<") else f"<{text}>"


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def _smtp_words(error: BaseException) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        detail = error.smtp_error
        text = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
        return f"{error.smtp_code} {text}"[:200]
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return "every recipient was refused"
    return type(error).__name__
