"""The ledger on SQLite and PostgreSQL: migrations, atomic pages, quiet re-ingest."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, inspect, select, text

from syncd.ledger.db import create_ledger_engine, current_revision, head_revision, upgrade
from syncd.ledger.models import Base, RawPayload, TaskLink, TaskRow
from syncd.ledger.repository import Ledger, task_to_dict
from syncd.model import Priority, QuarantinedItem, Status, StatusChange, Task

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def make_task(n: int, **changes: object) -> Task:
    task = Task(
        source="gh",
        external_id=str(1000 + n),
        key=f"acme/api#{n}",
        title=f"Task {n}",
        url=f"https://github.com/acme/api/issues/{n}",
        description="Something to do",
        owners=["alice"],
        due=date(2026, 3, 10),
        priority=Priority.HIGH,
        priority_raw="P1",
        labels=["P1"],
        blocked_by=["OPS-7"] if n % 2 else [],
        created_at=NOW - timedelta(days=3),
        updated_at=NOW - timedelta(hours=1),
        raw={"number": n, "title": f"Task {n}"},
    )
    for name, value in changes.items():
        setattr(task, name, value)
    return task


def test_migrations_apply_to_an_empty_database_and_match_the_models(ledger_url: str) -> None:
    engine = create_ledger_engine(ledger_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)
    with engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata
        )
    assert diff == [], f"models and migrations drifted apart: {diff}"
    assert {"tasks", "outbox", "violations", "sync_cursors", "quarantine"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()


def test_sqlite_ledger_upgrades_itself_with_wal_and_foreign_keys(sqlite_url: str) -> None:
    ledger = Ledger.open(sqlite_url)
    with ledger.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    assert current_revision(ledger.engine) == head_revision(ledger.engine)
    ledger.close()


def test_postgres_ledger_asks_for_db_upgrade(postgres_url: str) -> None:
    from syncd.ledger.db import LedgerError

    with pytest.raises(LedgerError, match="syncd db upgrade"):
        Ledger.open(postgres_url)


def test_first_ingest_stores_every_field(ledger: Ledger) -> None:
    result = ledger.ingest_page("gh", [make_task(1), make_task(2)], now=NOW)
    assert (result.new, result.updated, result.unchanged) == (2, 0, 0)
    stored = task_to_dict(ledger.task_by_key("acme/api#1", "gh"))  # type: ignore[arg-type]
    assert stored["title"] == "Task 1"
    assert stored["owners"] == ["alice"]
    assert stored["due"] == "2026-03-10"
    assert stored["priority"] == "high" and stored["priority_raw"] == "P1"
    assert stored["created_at"] == (NOW - timedelta(days=3)).isoformat()
    assert stored["blocked_by"] == ["OPS-7"]


def test_unchanged_rows_are_not_written(ledger: Ledger) -> None:
    tasks = [make_task(n) for n in range(20)]
    ledger.ingest_page("gh", tasks, now=NOW)
    statements: list[str] = []
    event.listen(ledger.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    later = NOW + timedelta(hours=1)
    result = ledger.ingest_page("gh", [make_task(n) for n in range(20)], now=later)
    assert (result.new, result.updated, result.unchanged) == (0, 0, 20)
    writes = [
        s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]
    assert writes == []
    with ledger.sessions() as session:
        assert {row.changed_at for row in session.scalars(select(TaskRow))} == {NOW}


def test_changed_rows_are_updated_and_status_history_written_once(ledger: Ledger) -> None:
    ledger.ingest_page("gh", [make_task(1), make_task(2)], now=NOW)
    later = NOW + timedelta(hours=2)
    done = make_task(1, status=Status.DONE, status_raw="closed", updated_at=later)
    retitled = make_task(2, title="Renamed")
    result = ledger.ingest_page("gh", [done, retitled], now=later)
    assert (result.new, result.updated, result.unchanged) == (0, 2, 0)
    first = ledger.task_by_key("acme/api#1")
    second = ledger.task_by_key("acme/api#2")
    assert first is not None and second is not None
    assert first.status == "done" and first.changed_at == later
    assert second.title == "Renamed"
    history = ledger.status_history(first.id)
    assert [(h.from_status, h.to_status, h.at) for h in history] == [("open", "done", later)]
    assert ledger.status_history(second.id) == []


def test_status_history_uses_the_sources_transition_time(ledger: Ledger) -> None:
    ledger.ingest_page("gh", [make_task(1, status_raw="To Do")], now=NOW)
    moved_at = NOW + timedelta(minutes=5)
    change = StatusChange(at=moved_at, from_raw="To Do", to_raw="In Progress")
    task = make_task(
        1, status=Status.IN_PROGRESS, status_raw="In Progress", status_changes=[change]
    )
    ledger.ingest_page("gh", [task], now=NOW + timedelta(hours=1))
    stored = ledger.task_by_key("acme/api#1")
    assert stored is not None
    assert ledger.status_history(stored.id)[-1].at == moved_at


def test_a_new_task_keeps_its_sources_changelog(ledger: Ledger) -> None:
    changes = [
        StatusChange(at=NOW - timedelta(days=2), from_raw="To Do", to_raw="In Progress"),
        StatusChange(at=NOW - timedelta(days=1), from_raw="In Progress", to_raw="Done"),
    ]
    ledger.ingest_page("gh", [make_task(1, status_changes=changes)], now=NOW)
    stored = ledger.task_by_key("acme/api#1")
    assert stored is not None
    history = ledger.status_history(stored.id)
    assert [(h.from_raw, h.to_raw, h.at) for h in history] == [
        ("To Do", "In Progress", NOW - timedelta(days=2)),
        ("In Progress", "Done", NOW - timedelta(days=1)),
    ]


def test_key_is_an_alias_identity_is_the_external_id(ledger: Ledger) -> None:
    ledger.ingest_page("gh", [make_task(5)], now=NOW)
    before = ledger.task_by_key("acme/api#5")
    moved = make_task(5, key="acme/web#77", url="https://github.com/acme/web/issues/77")
    result = ledger.ingest_page("gh", [moved], now=NOW + timedelta(minutes=1))
    after = ledger.task_by_key("acme/web#77")
    assert result.updated == 1 and before is not None and after is not None
    assert after.id == before.id
    assert ledger.task_by_key("acme/api#5") is None


def test_page_cursor_and_quarantine_commit_together(ledger: Ledger) -> None:
    bad = QuarantinedItem(reason="missing title", payload='{"id": 3}', external_ref="3")
    ledger.ingest_page(
        "gh", [make_task(1)], now=NOW, stream="acme/api", cursor={"since": "x"}, quarantined=[bad]
    )
    assert ledger.cursor("gh", "acme/api") == {"since": "x"}
    [row] = ledger.quarantine("gh")
    assert (row.reason, row.external_ref, row.stream) == ("missing title", "3", "acme/api")


def test_a_failed_page_moves_nothing(ledger: Ledger) -> None:
    ledger.ingest_page("gh", [make_task(1)], now=NOW, cursor={"since": "a"})
    broken = make_task(2, created_at=datetime(2026, 1, 1))  # naive: refused by the ledger
    with pytest.raises(Exception, match="aware"):
        ledger.ingest_page("gh", [make_task(3), broken], now=NOW, cursor={"since": "b"})
    assert ledger.cursor("gh") == {"since": "a"}
    assert ledger.task_by_key("acme/api#3") is None


def test_tasks_of_another_source_are_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="source"):
        ledger.ingest_page("jira", [make_task(1)], now=NOW)


def test_links_are_written_and_resolved_across_sources(ledger: Ledger) -> None:
    ledger.ingest_page("gh", [make_task(1, links=["OPS-7"])], now=NOW)
    blocker = Task(source="ops", external_id="10007", key="OPS-7", title="Firewall")
    ledger.ingest_page("ops", [blocker], now=NOW)
    assert ledger.resolve_links() == 2
    with ledger.sessions() as session:
        links = session.scalars(select(TaskLink).order_by(TaskLink.kind)).all()
        target = ledger.task_by_key("OPS-7")
        assert target is not None
        assert [(link.kind, link.target_task_id) for link in links] == [
            ("blocked_by", target.id),
            ("same_work", target.id),
        ]


def test_raw_payload_is_kept_and_replaced(ledger: Ledger) -> None:
    ledger.ingest_page("gh", [make_task(1)], now=NOW)
    ledger.ingest_page("gh", [make_task(1, raw={"number": 1, "title": "new"})], now=NOW)
    stored = ledger.task_by_key("acme/api#1")
    assert stored is not None
    with ledger.sessions() as session:
        payload = session.get(RawPayload, stored.id)
        assert payload is not None and payload.payload == {"number": 1, "title": "new"}


def test_payloads_are_read_back_by_external_id_for_live_tasks_of_one_source(
    ledger: Ledger,
) -> None:
    ledger.ingest_page("gh", [make_task(n) for n in range(3)], now=NOW)
    ledger.ingest_page("other", [make_task(1, source="other")], now=NOW)
    ledger.mark_gone("gh", {make_task(0).external_id, make_task(1).external_id}, now=NOW)
    wanted = [make_task(n).external_id for n in range(4)] * 300  # repeated, and > one batch
    assert ledger.payloads("gh", wanted) == {
        "1000": {"number": 0, "title": "Task 0"},
        "1001": {"number": 1, "title": "Task 1"},
    }
    assert ledger.payloads("gh", []) == {}


def test_large_page_is_batched(ledger: Ledger) -> None:
    tasks = [make_task(n) for n in range(1234)]
    result = ledger.ingest_page("gh", tasks, now=NOW)
    assert result.new == 1234 and len(set(result.changed_task_ids)) == 1234
    assert sum(1 for _ in ledger.tasks(sources=["gh"])) == 1234


def test_complete_listing_marks_missing_tasks_gone_not_deleted(ledger: Ledger) -> None:
    ledger.ingest_page("gh", [make_task(n) for n in range(10)], now=NOW)
    present = {make_task(n).external_id for n in range(10) if n != 4}
    gone = ledger.mark_gone("gh", present, now=NOW + timedelta(hours=1))
    assert len(gone) == 1
    assert [t.key for t in ledger.tasks(sources=["gh"])].count("acme/api#4") == 0
    kept = [t for t in ledger.tasks(sources=["gh"], include_gone=True) if t.key == "acme/api#4"]
    assert kept and kept[0].gone_at == NOW + timedelta(hours=1)
    # It comes back when the source shows it again.
    result = ledger.ingest_page("gh", [make_task(4)], now=NOW + timedelta(hours=2))
    assert result.updated == 1 and ledger.task_by_key("acme/api#4").gone_at is None  # type: ignore[union-attr]


def test_sudden_mass_disappearance_is_refused(ledger: Ledger) -> None:
    from syncd.errors import SuspiciousDisappearance

    ledger.ingest_page("gh", [make_task(n) for n in range(40)], now=NOW)
    with pytest.raises(SuspiciousDisappearance, match="lacks 30 of its 40"):
        ledger.mark_gone("gh", {make_task(n).external_id for n in range(10)}, now=NOW)
    assert sum(1 for _ in ledger.tasks(sources=["gh"])) == 40


def test_newer_only_ingest_never_replaces_a_newer_state(ledger: Ledger) -> None:
    newer = make_task(1, title="Second edit", updated_at=NOW)
    ledger.ingest_page("gh", [newer], now=NOW, newer_only=True)
    late = make_task(1, title="First edit", updated_at=NOW - timedelta(minutes=5))
    result = ledger.ingest_page("gh", [late], now=NOW, newer_only=True)
    assert (result.stale, result.updated, result.changed_task_ids) == (1, 0, [])
    row = ledger.task_by_key("acme/api#1")
    assert row is not None and row.title == "Second edit"
    same_second = make_task(1, title="Third edit", updated_at=NOW)
    assert ledger.ingest_page("gh", [same_second], now=NOW, newer_only=True).updated == 1
    # Without the flag (a poll of the CLI's reconcile), the page is applied as read.
    assert ledger.ingest_page("gh", [late], now=NOW).updated == 1


def test_newer_only_upsert_holds_against_a_write_that_raced_the_read(ledger: Ledger) -> None:
    ledger.ingest_page("gh", [make_task(1, title="Old", updated_at=NOW - timedelta(hours=2))],
                       now=NOW)  # fmt: skip
    with ledger.sessions.begin() as session:
        # The read said "older" (it ran before the newer write), the write must still refuse.
        ids = ledger._upsert(
            session,
            [_row_of(make_task(1, title="Stale", updated_at=NOW - timedelta(hours=3)))],
            newer_only=True,
        )
    assert ids == {}
    row = ledger.task_by_key("acme/api#1")
    assert row is not None and row.title == "Old"


def _row_of(task: Task) -> dict[str, object]:
    from syncd.ledger.repository import _row

    return _row(task, task.content_hash(), NOW, 1)
