"""Text from a source made printable: the first step of every sink's encoder.

Whatever a source sends, text that syncd writes anywhere first loses the
characters that act instead of showing: C0 and C1 control characters (an ANSI
escape reaching a terminal, a CR/LF reaching a mail header), bidirectional
controls that make text read differently from how it is stored ("Trojan
source"), and invisible zero-width characters that hide a token inside another.
Very long strings are cut, visibly, with "…". Each sink's encoder then escapes
its own markup on top of this (see `syncd.writer.sinks`).
"""

from __future__ import annotations

import re

ELLIPSIS = "…"
# What one interpolated source value may take in a message before it is cut.
DEFAULT_LIMIT = 400

_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_INVISIBLE = "\u200b\u2060\ufeff"  # zero-width space, word joiner, BOM
_C0_BUT_NEWLINE = "\x00-\x09\x0b-\x1f\x7f"
_C1 = "\x80-\x9f"
_DROP = re.compile(f"[{_BIDI}{_INVISIBLE}{_C0_BUT_NEWLINE}{_C1}]")
_LINE_BREAKS = re.compile("\r\n|[\r\u2028\u2029\x85]")
_WHITESPACE_CONTROLS = re.compile("[\t\x0b\x0c]")


def printable(text: str, *, multiline: bool = False, limit: int | None = DEFAULT_LIMIT) -> str:
    """`text` without control, bidi or zero-width characters, at most `limit` long.

    Line breaks of any kind become `\\n` when `multiline`, else a space (a value
    interpolated into a sentence, a header, a table cell stays on one line); tabs
    become spaces. The cut keeps `limit - 1` characters and adds "…".
    """
    text = _LINE_BREAKS.sub("\n", text)
    text = _WHITESPACE_CONTROLS.sub(" ", text)
    if not multiline:
        text = text.replace("\n", " ")
    text = _DROP.sub("", text)
    return cap(text, limit)


def cap(text: str, limit: int | None) -> str:
    """`text` cut to `limit` characters, the last being "…" when anything was cut."""
    if limit is None or len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + ELLIPSIS
