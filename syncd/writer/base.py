"""The contract between the outbox and the channel writers.

A writer delivers one follow-up to where the work lives and leaves a marker with
the follow-up's idempotency key that it can find again (an HTML comment on
GitHub, a comment property on Jira, message metadata on Slack, a Message-ID on
email). After a crash between posting and recording, the drain asks `find`
before it ever posts again, so nothing is sent twice.

Before the *first* post of a key the drain also asks `markers`: the target may
hold follow-ups the ledger never knew of (it was restored from an old backup,
or replaced by an empty one). Keys are built so that this can be told: a key is
`<series>:<episode>:<window>`, where the series names one rule on one task by
the task's source and immutable id (see `syncd.writer.plan`), the same whatever
ledger planned it; `series_of` recovers it from any key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
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
    # A follow-up of the same series posted less than this long ago, which the
    # ledger does not know of, counts as this one (None: only this exact key does).
    repeat_after: timedelta | None = None


@dataclass(frozen=True)
class Marker:
    """One of syncd's posts found at the target, in the series of a delivery."""

    remote_id: str
    exact: bool  # it carries the delivery's own key
    at: datetime | None = None  # when the target says it was posted
    key: str | None = None  # its key, where the target shows it (not email's Message-ID)


def series_of(idempotency_key: str) -> str:
    """The series part of a key (`<series>:<episode>:<window>`); a shorter key is its own."""
    parts = idempotency_key.rsplit(":", 2)
    return parts[0] if len(parts) == 3 else idempotency_key


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

    def markers(self, delivery: Delivery) -> list[Marker]:
        """syncd's posts of this delivery's series in its target thread, read from the target."""
        ...

    def post(self, delivery: Delivery) -> str:
        """Deliver once (never retried blindly) and return the remote id."""
        ...

    def close(self) -> None: ...
