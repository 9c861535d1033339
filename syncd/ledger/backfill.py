"""Fill the field history of tasks stored before it existed, from their raw payloads.

Run by migration 0004 (so every path that upgrades a ledger, `syncd db upgrade` or a
SQLite ledger's automatic upgrade, fills it once). Each source's own reader turns its
payload into `FieldChange`s (`syncd.connectors.<kind>.fields`); people are resolved
through the ledger's identities table, as the configured directory would. Rows go in
through the same `field_history_rows` as ingest, so a later sync of the same history
adds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, MetaData, Table, select

from syncd.ledger.field_history import field_history_rows
from syncd.ledger.models import Base
from syncd.model import FieldChange, Priority, Task

__all__ = ["backfill_field_history", "payload_kind"]

_BATCH = 500

PersonOf = Callable[[str, str], str]


def payload_kind(payload: Mapping[str, Any]) -> str | None:
    """Which connector stored this payload, from its shape."""
    if isinstance(payload.get("fields"), Mapping) and "key" in payload:
        return "jira"
    if "number" in payload and ("html_url" in payload or "repository_url" in payload):
        return "github"
    return None


def backfill_field_history(connection: Connection, now: datetime | None = None) -> int:
    """Rows added for every stored task whose payload a source reader understands."""
    now = now or datetime.now(UTC)
    meta = MetaData()
    tasks = Table("tasks", meta, autoload_with=connection)
    payloads = Table("raw_payloads", meta, autoload_with=connection)
    # The model's table, not a reflected one: its value type encodes JSON per backend.
    history = Base.metadata.tables["field_history"]
    person = _people(connection, meta)
    added = 0
    for batch in _batched(connection, tasks, payloads):
        rows: list[dict[str, Any]] = []
        for stored, payload in batch:
            task = _task(stored, payload, person)
            rows.extend(field_history_rows(stored.id, task, _NOTHING, now))
        if rows:
            connection.execute(history.insert(), rows)
            added += len(rows)
    return added


_NOTHING: Mapping[str, tuple[datetime, Any]] = {}


def _task(stored: Any, payload: Mapping[str, Any], person: PersonOf) -> Task:
    """The stored task's current values, with the history its payload tells.

    A value the payload explains is dated by the source; one it does not (a GitHub
    issue's milestone, whose events are not stored) is recorded as observed now."""
    changes: list[FieldChange] = []
    versions: list[dict[str, Any]] | None = None
    kind = payload_kind(payload)
    if kind == "jira":
        from syncd.connectors.jira.fields import current_fix_versions, issue_field_changes

        changes = issue_field_changes(payload, person=lambda handle: person("jira", handle))
        versions = current_fix_versions(payload["fields"])
    elif kind == "github":
        from syncd.connectors.github.fields import current_milestone

        versions = current_milestone(payload)
    return Task(
        source=stored.source,
        external_id=stored.external_id,
        key=stored.key,
        title="",
        owners=list(_json(stored.owners) or []),
        due=_day(stored.due),
        priority=Priority(stored.priority) if stored.priority else None,
        estimate_hours=stored.estimate_hours,
        logged_hours=stored.logged_hours,
        fix_versions=versions,
        field_changes=changes,
    )


def _json(value: Any) -> Any:
    # Reflected tables read SQLite's JSON columns as text.
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _day(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _batched(
    connection: Connection, tasks: Table, payloads: Table
) -> Iterator[list[tuple[Any, Mapping[str, Any]]]]:
    query = (
        select(
            tasks.c.id,
            tasks.c.source,
            tasks.c.external_id,
            tasks.c.key,
            tasks.c.owners,
            tasks.c.due,
            tasks.c.priority,
            tasks.c.estimate_hours,
            tasks.c.logged_hours,
            payloads.c.payload,
        )
        .join(payloads, payloads.c.task_id == tasks.c.id)
        .order_by(tasks.c.id)
    )
    batch: list[tuple[Any, Mapping[str, Any]]] = []
    for stored in connection.execute(query):
        payload = _json(stored.payload)
        if isinstance(payload, Mapping):
            batch.append((stored, payload))
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _people(connection: Connection, meta: MetaData) -> PersonOf:
    """(kind, handle) -> person id through the identities table; unmapped: "kind:handle"."""
    identities = Table("identities", meta, autoload_with=connection)
    known: dict[tuple[str, str], str] = {
        (kind, _fold(kind, handle)): person_id
        for kind, handle, person_id in connection.execute(
            select(identities.c.kind, identities.c.handle, identities.c.person_id)
        )
    }

    def person(kind: str, handle: str) -> str:
        return known.get((kind, _fold(kind, handle)), f"{kind}:{handle}")

    return person


def _fold(kind: str, handle: str) -> str:
    # As `syncd.people`: GitHub logins and email addresses are case-insensitive.
    return handle.lower() if kind in ("github", "email") else handle
