"""The connector contract: how a source becomes pages of normalized tasks.

A connector reads its cursors, fetches from its source and yields `Page`s: the
tasks of one page, the items it had to quarantine, and the cursor that follows
that page. The driver (`syncd.sync`) commits each page and its cursor in one
transaction, so a crash at any point resumes from the last committed page. A
connector that has just finished a complete listing yields a `Listing` of every
id the source still has; only then may the driver mark the others gone.

Third-party connectors implement this protocol and register the class in the
`syncd.connectors` entry point group (see README, "Adding a connector").

A connector whose webhooks carry whole items may also offer `webhook_items`
(see `WebhookItems`): `syncd run` then ingests a verified delivery directly,
without a poll and without moving any cursor; the next poll still reconciles.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from structlog.stdlib import BoundLogger

from syncd.clock import Clock
from syncd.config import PolicySettings, SourceSettings
from syncd.model import Activity, QuarantinedItem, Task
from syncd.people import PeopleDirectory

__all__ = [
    "Activity",
    "Connector",
    "ConnectorContext",
    "ConnectorFactory",
    "Listing",
    "Page",
    "WebhookItems",
    "WebhookMapper",
]


@dataclass
class Page:
    """One page of a stream, committed atomically with the cursor after it."""

    stream: str
    tasks: list[Task] = field(default_factory=list)
    quarantined: list[QuarantinedItem] = field(default_factory=list)
    cursor: dict[str, Any] | None = None
    # Activity on tasks that live elsewhere (a message naming a Jira key), same transaction.
    activity: list[Activity] = field(default_factory=list)
    # Items the source returned, including those skipped (pull requests, duplicates).
    fetched: int = 0
    # For a source whose `updated_at` only moves forward: an item older than the stored
    # state is skipped, so a read that raced a newer webhook delivery never undoes it.
    newer_only: bool = False


@dataclass
class Listing:
    """Every external id the source still has within `scope` (None: the whole source)."""

    external_ids: set[str]
    scope: str | None = None


@dataclass
class WebhookItems:
    """What one verified webhook delivery says, as far as its payload can tell.

    `tasks` are ingested at once (never over a newer stored state). `poll` asks for
    a prompt (coalesced) poll of the source as well: the payload could not tell the
    whole story (a deletion, an item whose sub-issues need a listing, an event
    with no item in it). A payload that is malformed raises `MappingError`.
    """

    tasks: list[Task] = field(default_factory=list)
    activity: list[Activity] = field(default_factory=list)
    poll: bool = False


class WebhookMapper(Protocol):
    """`Connector.webhook_items`: a pure function of the delivery, like the mapping."""

    def __call__(
        self,
        event: str,
        payload: Any,
        *,
        source: str,
        settings: Any,
        people: PeopleDirectory,
        now: datetime,
    ) -> WebhookItems: ...


@dataclass
class ConnectorContext:
    """What a connector may use from syncd: nothing about the stages after it."""

    source: str
    people: PeopleDirectory
    policy: PolicySettings
    clock: Clock
    log: BoundLogger
    # The committed cursor of a stream, or None before the first sync.
    read_cursor: Callable[[str], dict[str, Any] | None]
    # The raw payloads this source stored for its live tasks with these external ids:
    # what the connector itself wrote before, e.g. where a thread's older messages are.
    read_payloads: Callable[[Collection[str]], dict[str, dict[str, Any]]] = field(
        default=lambda external_ids: {}
    )


class Connector(Protocol):
    kind: ClassVar[str]
    settings_model: ClassVar[type[SourceSettings]]

    def pull(self) -> Iterator[Page | Listing]:
        """Fetch what changed since the committed cursors, page by page."""
        ...

    def close(self) -> None: ...


class ConnectorFactory(Protocol):
    kind: ClassVar[str]
    settings_model: ClassVar[type[SourceSettings]]

    def __call__(self, settings: Any, context: ConnectorContext) -> Connector: ...
