"""GitHub Markdown for what syncd posts: source text that notifies and links nobody.

GitHub turns `@login` and `@org/team` into mentions (which notify) and `#123`,
`GH-123` and `owner/repo#123` into cross-references (which link and leave a trace
on the other issue), as do links to an issue's URL, except inside code. So every
word of source text holding an `@`, a `#`, a `GH-` number or an issue or pull
request path is quoted as a code span, fenced with more
backticks than it contains. Around those, `&`, `<` and `>` become entities, so
source text can never write HTML: not an image, not a link, not syncd's own
`<!-- syncd:KEY -->` marker; and `\\`, backticks, `[` and `]` are
backslash-escaped, so it cannot open a code span of its own (which would
un-quote the next word) or a link. The one mention in a comment is the
recipient's, built here from a login.
"""

from __future__ import annotations

import re

from syncd.plaintext import DEFAULT_LIMIT, printable

# Logins: letters, digits and single hyphens, at most 39 characters; Enterprise
# Managed Users add `_shortcode` (`octocat_fabrikam`).
LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}(?:_[A-Za-z0-9]+)?")
_WORD = re.compile(r"\S+")
_REFERENCE = re.compile(r"[@#]|\bGH-\d|/(?:issues|pull|discussions)/\d", re.IGNORECASE)
_MARKDOWN = re.compile(r"[\\`\[\]]")
_BACKTICKS = re.compile(r"`+")


def escape(text: str, *, multiline: bool = False, limit: int | None = DEFAULT_LIMIT) -> str:
    """Source text as GitHub Markdown that shows as written and mentions nobody."""
    clean = printable(text, multiline=multiline, limit=limit)
    return _WORD.sub(lambda word: _escape_word(word.group()), clean)


def code_span(text: str) -> str:
    """`text` as one inline code span, whatever backticks it holds."""
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    fence = "`" * (longest + 1)
    # A span starting or ending with a backtick needs a space inside the fence
    # (CommonMark strips one space from each side of such a span).
    pad = " " if text.startswith("`") or text.endswith("`") or text.strip(" ") == "" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def mention(login: str) -> str:
    """`@login` for a GitHub login; ValueError for anything of another shape."""
    login = login.removeprefix("@")
    if not LOGIN.fullmatch(login):
        raise ValueError(f"{login!r} is not a GitHub login")
    return f"@{login}"


def _escape_word(word: str) -> str:
    if _REFERENCE.search(word):
        return code_span(word)
    word = word.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN.sub(lambda m: "\\" + m.group(), word)
