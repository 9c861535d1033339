"""Jira wiki markup (REST v2 comments) for what syncd posts: source text inert.

In wiki markup `[~accountid:…]` (Cloud) and `[~user]` (Server) mention someone,
`[text|url]` links, `!url!` embeds an image, `{code}`, `{noformat}`, `{color}`
and the like are macros, and `|` builds tables. Source text gets a backslash
before each of `[ ] { } ! |` (the renderer shows the character itself), a
backslash of its own becomes `&#92;` (two backslashes would be a line break), and
an `@name` is shown in monospace (`{{@name}}`) so no tool reads it as a mention.
The one mention in a comment is the recipient's, built here from an account id.
"""

from __future__ import annotations

import re

from syncd.plaintext import DEFAULT_LIMIT, printable

# Cloud account ids (`557058:f58131cb-…`, `5b10ac8d82e05b22cc7d4ef5`).
ACCOUNT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9:_-]{1,127}")
_AT_NAME = re.compile(r"(?<![\w@])@[\w./-]*\w")
_SPECIAL = re.compile(r"[\[\]{}!|]")


def escape(text: str, *, multiline: bool = False, limit: int | None = DEFAULT_LIMIT) -> str:
    """Source text as wiki markup that shows as written and mentions nobody."""
    clean = printable(text, multiline=multiline, limit=limit)
    out: list[str] = []
    position = 0
    for found in _AT_NAME.finditer(clean):
        out.append(_escape_plain(clean[position : found.start()]))
        out.append("{{" + found.group() + "}}")
        position = found.end()
    out.append(_escape_plain(clean[position:]))
    return "".join(out)


def mention(account_id: str) -> str:
    """`[~accountid:…]` for a Jira account id; ValueError for anything of another shape."""
    if not ACCOUNT_ID.fullmatch(account_id):
        raise ValueError(f"{account_id!r} is not a Jira account id")
    return f"[~accountid:{account_id}]"


def _escape_plain(text: str) -> str:
    text = text.replace("\\", "&#92;")
    return _SPECIAL.sub(lambda m: "\\" + m.group(), text)
