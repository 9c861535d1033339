"""Email for what syncd sends: header values on one line, bodies as plain text.

A CR or LF in a header value would end the header and start another (`Bcc:`
injection); Python's `email.policy.default` refuses one with an exception, which
would fail the delivery instead. So every header value syncd writes is folded to
one line here first, without control or bidi characters and of a sane length.
Bodies are `text/plain`: nothing in them is markup, so source text only loses
what `printable` removes and keeps its line breaks.
"""

from __future__ import annotations

from syncd.plaintext import DEFAULT_LIMIT, printable

# RFC 5322 recommends lines under 78 characters; a subject this long is folded by
# the policy, and one longer than this is not worth reading.
SUBJECT_LIMIT = 200


def header_value(text: str, *, limit: int | None = SUBJECT_LIMIT) -> str:
    """`text` as a header value: one line, no control characters, runs of spaces as one."""
    one_line = " ".join(printable(text, limit=None).split())
    return printable(one_line, limit=limit)


def body_text(text: str, *, multiline: bool = False, limit: int | None = DEFAULT_LIMIT) -> str:
    """Source text for a plain-text body."""
    return printable(text, multiline=multiline, limit=limit)
