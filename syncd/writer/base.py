"""The contract between the outbox and the channel writers.

A writer delivers one follow-up to where the work lives and leaves a marker with
the follow-up's idempotency key that it can find again (an HTML comment on
GitHub, a comment property on Jira, message metadata on Slack, a Message-ID on
email). After a crash between posting and recording, the drain asks `find`
before it ever posts again, so nothing is sent twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Delivery:
    """One follow-up to deliver, as the outbox stores it."""

    idempotency_key: str
    channel: str  # "github" | "jira" | "slack" | "email"
    # Where: github {"source", "repo", "number"}; jira {"source", "key"};
    # slack {"source", "channel", "thread_ts"} or {"source", "user"} for a direct message;
    # email {"to", "subject", "in_reply_to", "references"}.
    target: dict[str, Any] = field(default_factory=dict)
    recipient: str | None = None  # person id, for the record
    mention: str | None = None  # the recipient's handle in this tool, to @-mention
    body: str = ""


class WriteError(Exception):
    """Delivery failed; `permanent` failures (a deleted issue, an archived channel) are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class UnconfirmableDelivery(WriteError):
    """The target offers no way to look for the marker (email without a Sent folder)."""


class ChannelWriter(Protocol):
    channel: str

    def find(self, delivery: Delivery) -> str | None:
        """The remote id of an earlier post carrying this delivery's marker, if any."""
        ...

    def post(self, delivery: Delivery) -> str:
        """Deliver once (never retried blindly) and return the remote id."""
        ...

    def close(self) -> None: ...
