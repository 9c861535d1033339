"""Raw RFC 5322 bytes → `MailMessage`, surviving what real mail does.

Parsing uses `email.policy.default`, but every header is read defensively: the
header registry raises on some malformed values, so a failed read falls back to
the raw value decoded by hand. Bodies are decoded from their transfer encoding
with the declared charset, then UTF-8, then Windows-1252, never raising. An
HTML-only body is reduced to text with `html.parser`; attachments and enclosed
messages (`message/rfc822`, digests) are not the sender's own words and are
skipped. What cannot be a request (no headers at all, a delivery or feedback
report) raises `NotARequest` with a reason the ledger's quarantine keeps.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser

from syncd.extract import strip_quoted_reply

_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
_REPLY_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|sv|wg|vs|antw|ref|tr|rif)(?:\[\d+\])?\s*[:\uff1a]\s*|\[[^\]]{1,40}\]\s*)",
    re.IGNORECASE,
)
_REPORT_TYPES = frozenset(
    {"multipart/report", "message/delivery-status", "message/feedback-report"}
)
# Header names that make a byte string look like a message at all.
_ESSENTIAL = ("from", "subject", "message-id", "date", "to")
MAX_TEXT = 20_000


class NotARequest(Exception):
    """The bytes are not a message a person wrote; `str()` says why."""


@dataclass(slots=True)
class MailMessage:
    message_id: str
    in_reply_to: list[str]
    references: list[str]
    subject: str
    date: datetime | None
    sender: str | None  # address, lower-cased
    sender_name: str | None
    to: list[str]
    cc: list[str]
    text: str = ""  # the body as text, quoted replies and signature still in
    new_text: str = ""  # the sender's own words only
    synthesized_id: bool = False
    defects: list[str] = field(default_factory=list)

    @property
    def has_reply_prefix(self) -> bool:
        return bool(_REPLY_PREFIX.match(self.subject))

    @property
    def parents(self) -> list[str]:
        return list(dict.fromkeys([*self.references, *self.in_reply_to]))


def parse_message(raw: bytes, *, headers_only: bool = False) -> MailMessage:
    """The message in `raw` (a whole message, or just its header block with `headers_only`)."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    names = {name.lower() for name in message}
    if not names.intersection(_ESSENTIAL):
        raise NotARequest("not an email message: no From, To, Subject, Date or Message-ID header")
    report = _automated(message)
    if report is not None:
        raise NotARequest(report)
    sender_name, sender = _first_address(message, "from")
    parsed = MailMessage(
        message_id=_first_id(header_text(message, "message-id")) or "",
        in_reply_to=message_ids(header_text(message, "in-reply-to")),
        references=message_ids(" ".join(all_header_texts(message, "references"))),
        subject=" ".join(header_text(message, "subject").split()),
        date=_date(header_text(message, "date")),
        sender=sender,
        sender_name=sender_name,
        to=_addresses(message, "to"),
        cc=_addresses(message, "cc"),
        defects=[type(defect).__name__ for defect in message.defects],
    )
    if not parsed.message_id:
        parsed.message_id = synthesized_message_id(raw)
        parsed.synthesized_id = True
    if not headers_only:
        parsed.text = body_text(message)[:MAX_TEXT]
        parsed.new_text = strip_quoted_reply(parsed.text)
    return parsed


def synthesized_message_id(raw: bytes) -> str:
    """A stable id for a message without Message-ID: a digest of its header block.

    The header block does not change when the message is flagged or moved, so
    the same message gets the same id on every read (`<digest>@syncd.invalid`).
    """
    header_block = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
    digest = hashlib.blake2b(header_block, digest_size=12).hexdigest()
    return f"{digest}@syncd.invalid"


def strip_reply_prefixes(subject: str) -> str:
    """The subject without Re:/Fwd:/AW:/SV: prefixes and list tags, as written."""
    previous = None
    while previous != subject:
        previous, subject = subject, _REPLY_PREFIX.sub("", subject, count=1)
    return subject.strip()


def normalized_subject(subject: str) -> str:
    """The subject without reply prefixes, folded for comparison."""
    return " ".join(strip_reply_prefixes(subject).casefold().split())


def message_ids(value: str) -> list[str]:
    found = _MESSAGE_ID.findall(value)
    if not found and value.strip():
        found = [token for token in value.split() if "@" in token]
    return list(dict.fromkeys(found))


def _first_id(value: str) -> str | None:
    ids = message_ids(value)
    return ids[0] if ids else None


# --------------------------------------------------------------------------- headers


def header_text(message: Message, name: str) -> str:
    texts = all_header_texts(message, name)
    return texts[0] if texts else ""


def all_header_texts(message: Message, name: str) -> list[str]:
    """Every value of a header, decoded; duplicates kept in order, none raising."""
    values: list[str] = []
    for raw_name, raw_value in message.raw_items():
        if raw_name.lower() != name:
            continue
        values.append(_decoded(message, raw_value))
    return values


def _decoded(message: Message, raw_value: str) -> str:
    try:
        # The registry decodes RFC 2047 words and folds; it may raise on garbage.
        return str(email.policy.default.header_factory("x-syncd", raw_value))
    except Exception:
        pass
    try:
        return str(make_header(decode_header(raw_value)))
    except Exception:
        return raw_value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _addresses(message: Message, name: str) -> list[str]:
    pairs = getaddresses(all_header_texts(message, name))
    return list(dict.fromkeys(address.lower() for _, address in pairs if "@" in address))


def _first_address(message: Message, name: str) -> tuple[str | None, str | None]:
    for display, address in getaddresses(all_header_texts(message, name)):
        if "@" in address:
            return (display or None), address.lower()
    return None, None


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:  # RFC 5322 says -0000 means "no zone known": read it as UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _automated(message: Message) -> str | None:
    content_type = message.get_content_type()
    if content_type in _REPORT_TYPES:
        return f"an automated report ({content_type}), not a request"
    auto = header_text(message, "auto-submitted").strip().lower()
    if auto and auto != "no":
        return f"an automated message (Auto-Submitted: {auto}), not a request"
    return None


# --------------------------------------------------------------------------- bodies


def body_text(message: Message) -> str:
    """The sender's text: the first plain part, else the first HTML part as text."""
    plain, html = _text_parts(message)
    if plain is not None:
        return _part_text(plain)
    if html is not None:
        return html_to_text(_part_text(html))
    return ""


def _text_parts(message: Message) -> tuple[Message | None, Message | None]:
    plain: Message | None = None
    html: Message | None = None
    for part in _own_parts(message):
        content_type = part.get_content_type()
        if content_type == "text/plain" and plain is None:
            plain = part
        elif content_type == "text/html" and html is None:
            html = part
    return plain, html


def _own_parts(part: Message) -> list[Message]:
    """Leaf parts written by the sender: no attachments, no enclosed messages."""
    if part.is_multipart():
        if part.get_content_type() == "multipart/digest":
            return []
        payload = part.get_payload()
        children = payload if isinstance(payload, list) else []
        return [
            leaf for child in children if isinstance(child, Message) for leaf in _own_parts(child)
        ]
    if part.get_content_maintype() == "message" or _is_attachment(part):
        return []
    return [part]


def _is_attachment(part: Message) -> bool:
    try:
        disposition = part.get_content_disposition()
    except Exception:
        return False
    return disposition == "attachment"


def _part_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if not isinstance(payload, bytes):
        raw = part.get_payload()
        return raw if isinstance(raw, str) else ""
    return decode_bytes(payload, _charset(part))


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return None


def decode_bytes(payload: bytes, charset: str | None) -> str:
    """Declared charset, else UTF-8, else Windows-1252 (what undeclared 8-bit mail usually is)."""
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return payload.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return payload.decode("cp1252", errors="replace")


class _TextExtractor(HTMLParser):
    """Visible text of an HTML body; block elements become line breaks."""

    _BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "blockquote", "hr"})
    _HIDDEN = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.hidden = 0
        self.quote_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self.hidden += 1
        elif tag == "blockquote":
            self.quote_depth += 1
        if tag in self._BLOCKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag == "blockquote":
            self.quote_depth = max(0, self.quote_depth - 1)
        if tag in self._BLOCKS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.quote_depth:
            # A quoted reply in HTML: mark it like plain-text quoting so it is stripped.
            data = "\n".join(f"> {line}" for line in data.splitlines() if line.strip())
        self.chunks.append(data)


def html_to_text(html: str) -> str:
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:  # html.parser is lenient; this is for truly broken input
        return re.sub(r"<[^>]*>", " ", html)
    lines = (" ".join(line.split()) for line in "".join(extractor.chunks).splitlines())
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
