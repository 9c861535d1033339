"""The pull half of reconcile: run each source's connector into the ledger.

One failing source never stops the others and never closes or deletes its
tasks: its pages committed so far stay, its cursor stays where the last good
page left it, and the error is reported in plain words.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from syncd.clock import Clock
from syncd.config import Settings, SourceSettings
from syncd.connector import Connector, ConnectorContext, Listing, Page
from syncd.errors import FailureKind, SourceError, SuspiciousDisappearance
from syncd.ledger.repository import Ledger
from syncd.logs import get_logger
from syncd.people import PeopleDirectory, Person
from syncd.plugins import connector_class

# Called after every committed page: (source name, items fetched so far).
ProgressCallback = Callable[[str, int], None]


@dataclass
class SourceSummary:
    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    gone: int = 0
    failed: bool = False
    error: str | None = None
    failure_kind: FailureKind | None = None  # for a SourceError; None for a crash
    seconds: float = 0.0
    changed_task_ids: list[int] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "fetched": self.fetched,
            "new": self.new,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "quarantined": self.quarantined,
            "gone": self.gone,
            "failed": self.failed,
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


def people_directory(settings: Settings) -> PeopleDirectory:
    """`[people.<id>]` tables as a directory connectors resolve identities with."""
    people = []
    for person_id, person in settings.people.items():
        handles = {
            kind: value
            for kind in ("email", "github", "jira", "slack")
            if (value := getattr(person, kind)) is not None
        }
        people.append(Person(id=person_id, name=person.name, handles=handles))
    return PeopleDirectory(people)


def make_connector(
    name: str,
    source: SourceSettings,
    settings: Settings,
    ledger: Ledger,
    people: PeopleDirectory,
    clock: Clock,
) -> Connector:
    factory = connector_class(source.kind)
    if factory is None:  # config validation already rejects this; a plugin may vanish
        raise SourceError(
            FailureKind.CONFIGURATION,
            f"no connector is installed for kind {source.kind!r} (source {name})",
        )
    context = ConnectorContext(
        source=name,
        people=people,
        policy=settings.policy,
        clock=clock,
        log=get_logger("syncd.connector", source=name),
        read_cursor=lambda stream: ledger.cursor(name, stream),
        read_payloads=lambda external_ids: ledger.payloads(name, external_ids),
    )
    connector: Connector = factory(source, context)
    return connector


def pull_source(
    connector: Connector,
    name: str,
    ledger: Ledger,
    clock: Clock,
    *,
    on_page: ProgressCallback | None = None,
) -> SourceSummary:
    """Drain one connector into the ledger, page by page."""
    summary = SourceSummary()
    log = get_logger("syncd.sync", source=name)
    started = time.perf_counter()
    try:
        for item in connector.pull():
            if isinstance(item, Listing):
                summary.gone += _apply_listing(ledger, name, item, clock, log)
            else:
                _commit_page(ledger, name, item, clock, summary, log)
                if on_page is not None:
                    on_page(name, summary.fetched)
    except SourceError as error:
        summary.failed, summary.error, summary.failure_kind = True, str(error), error.kind
        log.error("source failed", kind=error.kind.value, error=str(error))
    except SuspiciousDisappearance as error:
        summary.failed, summary.error = True, str(error)
        log.error("listing refused", error=str(error))
    except Exception as error:  # a bug in one connector must not stop the others
        summary.failed, summary.error = True, f"unexpected error in source {name}: {error!r}"
        log.exception("source crashed")
    finally:
        connector.close()
        summary.seconds = time.perf_counter() - started
    return summary


def _commit_page(
    ledger: Ledger,
    name: str,
    page: Page,
    clock: Clock,
    summary: SourceSummary,
    log: structlog.stdlib.BoundLogger,
) -> None:
    result = ledger.ingest_page(
        name,
        page.tasks,
        now=clock.now(),
        stream=page.stream,
        cursor=page.cursor,
        quarantined=page.quarantined,
        activity=page.activity,
        newer_only=page.newer_only,
    )
    summary.fetched += page.fetched or len(page.tasks) + len(page.quarantined)
    summary.new += result.new
    summary.updated += result.updated
    summary.unchanged += result.unchanged
    summary.quarantined += result.quarantined
    summary.changed_task_ids.extend(result.changed_task_ids)
    log.info(
        "page committed",
        stream=page.stream,
        items=len(page.tasks),
        new=result.new,
        updated=result.updated,
        quarantined=result.quarantined,
        activity=len(page.activity),
        linked=result.linked,
    )
    for item in page.quarantined:
        log.warning(
            "item quarantined", stream=page.stream, ref=item.external_ref, reason=item.reason
        )


def _apply_listing(
    ledger: Ledger, name: str, listing: Listing, clock: Clock, log: structlog.stdlib.BoundLogger
) -> int:
    gone = ledger.mark_gone(name, listing.external_ids, now=clock.now(), scope_prefix=listing.scope)
    log.info("complete listing applied", present=len(listing.external_ids), gone=len(gone))
    return len(gone)


def pull_all(
    settings: Settings,
    ledger: Ledger,
    names: Iterable[str],
    clock: Clock,
    *,
    on_page: ProgressCallback | None = None,
    on_source_done: Callable[[str, SourceSummary], None] | None = None,
) -> tuple[dict[str, SourceSummary], PeopleDirectory]:
    """Pull every named source; returns per-source summaries and the people seen."""
    people = people_directory(settings)
    # Join the caller's run (the service binds one per cycle), else start one.
    run_id = structlog.contextvars.get_contextvars().get("run_id") or uuid.uuid4().hex[:12]
    summaries: dict[str, SourceSummary] = {}
    for name in names:
        with structlog.contextvars.bound_contextvars(run_id=run_id, source=name):
            try:
                connector = make_connector(
                    name, settings.sources[name], settings, ledger, people, clock
                )
            except SourceError as error:
                summaries[name] = SourceSummary(
                    failed=True, error=str(error), failure_kind=error.kind
                )
            else:
                summaries[name] = pull_source(connector, name, ledger, clock, on_page=on_page)
        if on_source_done is not None:
            on_source_done(name, summaries[name])
    ledger.resolve_links()
    return summaries, people
