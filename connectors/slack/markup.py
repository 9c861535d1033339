"""Slack mrkdwn for what syncd posts: source text escaped, mentions only by syncd.

In mrkdwn, `&`, `<` and `>` are control characters: `<!channel>`, `<!here>`,
`<!subteam^S1>`, `<@U123>` and `<https://x|label>` are live only when written
with real angle brackets. A message read back from the API shows typed brackets
escaped (`&lt;!channel&gt;`) and the connector unescapes them for display, so
everything from a source is escaped again on the way out. The one mention in a
follow-up is the recipient's, built here from a handle of a user id's shape, and
messages never ask Slack to `link_names` (which would turn `@name` into a ping).
"""

from __future__ import annotations

import re

from syncd.plaintext import DEFAULT_LIMIT, printable

# User ids start with U (or W on Enterprise Grid), upper-case letters and digits.
USER_ID = re.compile(r"[UW][A-Z0-9]{2,30}")


def escape(text: str, *, multiline: bool = False, limit: int | None = DEFAULT_LIMIT) -> str:
    """Source text as mrkdwn that shows as written and can never ping or link."""
    clean = printable(text, multiline=multiline, limit=limit)
    return clean.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user_id: str) -> str:
    """`<@U…>` for a Slack user id; ValueError for anything of another shape."""
    if not USER_ID.fullmatch(user_id):
        raise ValueError(f"{user_id!r} is not a Slack user id (U… or W…)")
    return f"<@{user_id}>"
