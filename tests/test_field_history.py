"""Field history in the ledger: rows a page carries, observed changes, idempotent re-reads,
the read API, and migration 0004's backfill from stored payloads (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from syncd.connectors.github.mapping import map_issue as map_github_issue
from syncd.connectors.github.settings import GitHubSettings
from syncd.connectors.jira.history import read_export
from syncd.connectors.jira.mapping import map_issue
from syncd.connectors.jira.settings import JiraSettings
from syncd.ledger.db import create_ledger_engine, current_revision, upgrade
from syncd.ledger.models import FieldHistory, RawPayload, TaskRow
from syncd.ledger.repository import Ledger, _row
from syncd.model import FieldChange, Priority, Task
from syncd.people import PeopleDirectory

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
FIXTURE = Path(__file__).parent / "forecast" / "fixtures" / "duracloud-2011.jsonl.gz"
JIRA = JiraSettings(kind="jira", url="https://jira.example", token="t", jql="project = X")
GITHUB = GitHubSettings(kind="github", token="t", repos=["acme/api"])


def make_task(**changes: Any) -> Task:
    task = Task(
        source="gh",
        external_id="1001",
        key="acme/api#1",
        title="Task",
        owners=["alice"],
        due=date(2026, 3, 10),
        priority=Priority.HIGH,
        created_at=NOW - timedelta(days=3),
        updated_at=NOW - timedelta(hours=1),
        field_changes=[
            FieldChange("due", "2026-03-06", "initial", NOW - timedelta(days=3)),
            FieldChange("due", "2026-03-10", "e7", NOW - timedelta(days=1), "bob"),
        ],
    )
    for name, value in changes.items():
        setattr(task, name, value)
    return task


def count(ledger: Ledger) -> int:
    with ledger.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(FieldHistory)) or 0)


def jira_tasks(issues: list[dict[str, Any]]) -> list[Task]:
    people = PeopleDirectory()
    return [map_issue(i, source="jira", settings=JIRA, people=people) for i in issues]


def test_a_page_records_its_changes_and_what_syncd_observed(ledger: Ledger) -> None:
    ledger.ingest_page("gh", [make_task()], now=NOW)
    task_id = ledger.task_by_key("acme/api#1").id  # type: ignore[union-attr]
    rows = ledger.field_history([task_id])[task_id]
    by_field = {(r.field, r.change_key): r for r in rows}
    assert [r.value for r in rows if r.field == "due"] == ["2026-03-06", "2026-03-10"]
    assert by_field[("due", "initial")].origin == "initial"
    assert by_field[("due", "e7")].changed_by == "bob"
    # No source change explains owners and priority: seen at this sync, dated by it.
    seen = {r.field: r for r in rows if r.origin == "observed"}
    assert set(seen) == {"owners", "priority"}
    assert seen["owners"].value == ["alice"] and seen["owners"].changed_at == NOW
    assert seen["priority"].value == "high"


def test_a_second_read_of_the_same_history_adds_no_rows(ledger: Ledger) -> None:
    ledger.ingest_page("gh", [make_task()], now=NOW)
    first = count(ledger)
    # The same history with a different title: the task is rewritten, its history is not.
    ledger.ingest_page("gh", [make_task(title="Renamed")], now=NOW + timedelta(hours=1))
    assert count(ledger) == first


def test_a_change_the_source_does_not_date_is_recorded_at_the_sync(ledger: Ledger) -> None:
    ledger.ingest_page("gh", [make_task()], now=NOW)
    later = NOW + timedelta(hours=2)
    ledger.ingest_page("gh", [make_task(due=date(2026, 3, 20), estimate_hours=5.0)], now=later)
    task_id = ledger.task_by_key("acme/api#1").id  # type: ignore[union-attr]
    rows = ledger.field_history([task_id], ["due", "estimate_hours"])[task_id]
    assert [(r.field, r.value, r.changed_at, r.origin) for r in rows[-2:]] == [
        ("due", "2026-03-20", later, "observed"),
        ("estimate_hours", 5.0, later, "observed"),
    ]
    assert ledger.deadline_moves([task_id], NOW - timedelta(days=2)) == {task_id: 0}
    assert ledger.deadline_moves([task_id], NOW) == {task_id: 1}
    assert ledger.deadline_moves([task_id], later) == {task_id: 2}
    assert ledger.field_values_at([task_id], NOW - timedelta(days=2), ["due"]) == {
        task_id: {"due": "2026-03-06"}
    }


def test_real_jira_changelogs_fill_the_history_once(ledger: Ledger) -> None:
    issues = read_export(FIXTURE)
    ledger.ingest_page("jira", jira_tasks(issues), now=NOW)
    rows = count(ledger)
    ids = [row.id for row in ledger.tasks()]
    history = ledger.field_history(ids)
    moved = [i for i, changes in history.items() if any(c.origin == "source" for c in changes)]
    assert len(moved) > len(ids) // 3  # the export is rich in changelog items
    # Every value the ledger ends with is the issue's current one (nothing observed).
    assert not [c for changes in history.values() for c in changes if c.origin == "observed"]
    ledger.ingest_page("jira", jira_tasks(issues), now=NOW + timedelta(days=1))
    assert count(ledger) == rows


def stored_at_0003(url: str, tasks: list[Task]) -> None:
    """A ledger at revision 0003 holding these tasks and their payloads, as syncd wrote them
    before the field history existed (with an old content digest)."""
    engine = create_ledger_engine(url)
    upgrade(engine, "0003")
    with engine.begin() as connection:
        for task in tasks:
            row = _row(task, "digest-before-0004", NOW, 1)
            task_id = connection.execute(insert(TaskRow).returning(TaskRow.id), row).scalar_one()
            connection.execute(
                insert(RawPayload), {"task_id": task_id, "payload": task.raw, "fetched_at": NOW}
            )
    engine.dispose()


def github_issue() -> dict[str, Any]:
    return {
        "id": 5001,
        "number": 7,
        "title": "Ship it",
        "state": "open",
        "html_url": "https://github.com/acme/api/issues/7",
        "repository_url": "https://api.github.com/repos/acme/api",
        "created_at": "2026-02-01T10:00:00Z",
        "updated_at": "2026-02-20T10:00:00Z",
        "assignees": [{"login": "Dana"}],
        "labels": [{"name": "p1"}],
        "milestone": {"id": 9, "number": 2, "title": "v2", "due_on": "2026-03-31T07:00:00Z"},
    }


def test_upgrade_to_0004_fills_history_from_stored_payloads(
    ledger_url: str, tmp_path: Path
) -> None:
    issues = read_export(FIXTURE)
    tasks = jira_tasks(issues)
    gh = map_github_issue(github_issue(), source="gh", settings=GITHUB, people=PeopleDirectory())
    stored_at_0003(ledger_url, [*tasks, gh])

    ledger = Ledger.open(ledger_url, auto_upgrade=False)
    assert current_revision(ledger.engine) == "0003"
    upgrade(ledger.engine)
    backfilled = count(ledger)
    ids = {row.key: row.id for row in ledger.tasks()}
    history = ledger.field_history(ids.values())
    # GitHub payloads hold no events: the milestone, owners and priority as seen now.
    github = {c.field: c for c in history[ids["acme/api#7"]]}
    assert github["fix_versions"].value == [{"id": "v2", "name": "v2", "date": "2026-03-31"}]
    assert (github["owners"].value, github["priority"].value) == (["github:Dana"], "high")
    assert github["owners"].origin == "observed"

    # The Jira rows are exactly those a fresh ingest writes from the same issues.
    fresh = Ledger.open(f"sqlite:///{tmp_path / 'fresh.db'}")
    fresh.ingest_page("jira", tasks, now=NOW)
    fresh_ids = {row.key: row.id for row in fresh.tasks()}
    expected = fresh.field_history(fresh_ids.values())
    for task in tasks:
        got = history.get(ids[task.key], [])
        want = expected.get(fresh_ids[task.key], [])
        assert _facts(got) == _facts(want), task.key
    fresh.close()

    # A sync after the upgrade rewrites the tasks (new digest) and adds no history.
    ledger.ingest_page("jira", tasks, now=NOW + timedelta(days=1))
    assert count(ledger) == backfilled
    ledger.close()


def _facts(rows: list[FieldHistory]) -> list[tuple[Any, ...]]:
    return sorted(
        (
            r.field,
            r.change_key,
            json.dumps(r.value, sort_keys=True),
            r.changed_at,
            r.origin,
            r.changed_by,
        )
        for r in rows
    )
