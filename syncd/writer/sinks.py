"""Which encoder makes source text safe for each channel syncd writes to.

Each sink's encoder lives beside its connector (`connectors/slack/markup.py`,
`connectors/jira/markup.py`, `connectors/github/markup.py`,
`connectors/mail/headers.py`); this table is how the planner, digests and alerts
pick the one for the channel a message goes out on. Text is encoded once, when
the message is composed, because only then is it known which words came from a
source and which from syncd or the config's template author: the stored body is
ready for its channel, and writers add nothing but the recipient's mention.
"""

from __future__ import annotations

from typing import Protocol

from syncd.connectors.github import markup as github
from syncd.connectors.jira import markup as jira
from syncd.connectors.mail import headers as mail
from syncd.connectors.slack import markup as slack


class Encoder(Protocol):
    def __call__(self, text: str, *, multiline: bool = ..., limit: int | None = ...) -> str: ...


ENCODERS: dict[str, Encoder] = {
    "github": github.escape,
    "jira": jira.escape,
    "slack": slack.escape,
    "email": mail.body_text,
}


def encoder_for(channel: str) -> Encoder:
    """The encoder for source text in a message sent on `channel`."""
    try:
        return ENCODERS[channel]
    except KeyError:
        raise ValueError(f"no encoder for channel {channel!r}") from None
