"""Every message in ../shared/corpus/email is stored or quarantined with a reason; none raises."""

from __future__ import annotations

import mailbox

import pytest
from corpus_root import CORPUS as SHARED_CORPUS

from syncd.connectors.mail.pages import parse_or_quarantine
from syncd.connectors.mail.parse import NotARequest, parse_message
from syncd.model import QuarantinedItem

CORPUS = SHARED_CORPUS / "email"


def corpus_messages() -> list[tuple[str, bytes]]:
    """(name, raw bytes) of every message; an mbox file holds several."""
    found: list[tuple[str, bytes]] = []
    for path in sorted(CORPUS.rglob("*")):
        if not path.is_file() or path.name.startswith(("LICENSE", "NOTICE")):
            continue
        name = str(path.relative_to(CORPUS))
        if path.suffix == ".mbox":
            box = mailbox.mbox(str(path), create=False)
            found += [(f"{name}#{key}", box.get_bytes(key)) for key in box.iterkeys()]
        else:
            found.append((name, path.read_bytes()))
    return found


MESSAGES = corpus_messages()


def test_the_corpus_is_there() -> None:
    assert len(MESSAGES) >= 250


@pytest.mark.parametrize(("name", "raw"), MESSAGES, ids=[name for name, _ in MESSAGES])
def test_each_message_is_stored_or_quarantined_with_a_reason(name: str, raw: bytes) -> None:
    quarantined: list[QuarantinedItem] = []
    parsed = parse_or_quarantine(raw, name, quarantined)
    if parsed is None:
        assert len(quarantined) == 1 and quarantined[0].reason
        assert not quarantined[0].reason.startswith("unparseable"), quarantined[0].reason
    else:
        assert parsed.message_id and not quarantined
        assert parse_or_quarantine(raw, name, [], headers_only=True) is not None


def test_decoding_survives_odd_charsets_html_and_attachments() -> None:
    raw = (
        b"From: =?x-unknown?q?Jos=E9?= <jose@client.example>\r\n"
        b"To: support@acme.example\r\nSubject: =?iso-8859-1?q?Caf=E9_urgent?=\r\n"
        b"Subject: a duplicate subject\r\n"
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>Please fix the caf\xe9 printer <b>by Friday</b></p>"
        b"<blockquote>old quoted text</blockquote><style>p{}</style>\r\n"
        b"--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment\r\n\r\nJVBERi0=\r\n"
        b"--b--\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.subject == "Café urgent"
    assert parsed.message_id.endswith("@syncd.invalid") and parsed.synthesized_id
    assert parsed.new_text == "Please fix the café printer by Friday"
    assert parse_message(raw).message_id == parsed.message_id  # stable


def test_a_delivery_report_is_not_a_request() -> None:
    raw = b"From: MAILER-DAEMON@x\r\nContent-Type: multipart/report; boundary=z\r\n\r\n--z--\r\n"
    with pytest.raises(NotARequest, match="automated report"):
        parse_message(raw)
