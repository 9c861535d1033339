"""Every rule kind on hand-built ledgers, expressions, and incremental evaluation."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from syncd.cli import app
from syncd.config import PolicySettings, RuleSettings
from syncd.ledger.db import upgrade
from syncd.ledger.models import Violation
from syncd.ledger.repository import Ledger
from syncd.model import Priority, Status, Task
from syncd.rules.engine import RuleConfigError, compile_rules, evaluate

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # a Wednesday
POLICY = PolicySettings()


def task(key: str, **fields: Any) -> Task:
    source = fields.pop("source", "ops" if "#" not in key else "gh")
    base: dict[str, Any] = {
        "title": f"Work on {key}",
        "description": "Context",
        "acceptance_criteria": "It works",
        "owners": ["alice"],
        "due": date(2026, 3, 20),
        "priority": Priority.MEDIUM,
        "status": Status.OPEN,
        "created_at": NOW - timedelta(days=20),
        "last_activity_at": NOW - timedelta(days=1),
    }
    base.update(fields)
    return Task(source=source, external_id=f"id-{key}", key=key, **base)


def rules(*specs: dict[str, Any]) -> list[Any]:
    return compile_rules([RuleSettings.model_validate(spec) for spec in specs])


def store(ledger: Ledger, *tasks: Task, now: datetime = NOW) -> None:
    for source in {t.source for t in tasks}:
        ledger.ingest_page(source, [t for t in tasks if t.source == source], now=now)
    ledger.resolve_links()


def open_violations(ledger: Ledger) -> dict[tuple[str, str], str]:
    with ledger.sessions() as session:
        rows = session.execute(
            select(Violation.rule_id, Violation.task_id, Violation.message).where(
                Violation.resolved_at.is_(None)
            )
        ).all()
    keys = {t.id: t.key for t in ledger.tasks(include_gone=True)}
    return {(rule_id, keys[task_id]): message for rule_id, task_id, message in rows}


@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> Any:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'rules.db'}")
    yield ledger
    ledger.close()


# --- single owner -----------------------------------------------------------------------


def test_single_owner_flags_none_several_and_teams(sqlite_ledger: Ledger) -> None:
    store(
        sqlite_ledger,
        task("OPS-1"),
        task("OPS-2", owners=[]),
        task("acme/api#3", owners=["alice", "github:bob-o"]),
        task("acme/api#4", owners=["github:team"]),
        task("OPS-5", owners=[], team="Platform"),
        task("OPS-6", owners=["email:support@acme.example"]),
        task("OPS-7", owners=[], status=Status.DONE),
    )
    evaluate(sqlite_ledger, rules({"id": "owner", "kind": "single_owner"}), POLICY, NOW)
    assert open_violations(sqlite_ledger) == {
        ("owner", "OPS-2"): "no owner",
        ("owner", "acme/api#3"): "2 owners: alice, github:bob-o",
        ("owner", "acme/api#4"): "owned by a team, not a person: github:team",
        ("owner", "OPS-5"): "no owner (team Platform only)",
        ("owner", "OPS-6"): "owned by a team, not a person: email:support@acme.example",
    }


def test_owners_disagreeing_across_sources_count_as_several(sqlite_ledger: Ledger) -> None:
    store(
        sqlite_ledger,
        task("OPS-1", owners=["alice"]),
        task("acme/api#9", owners=["bob"], links=["OPS-1"]),
    )
    evaluate(sqlite_ledger, rules({"id": "owner", "kind": "single_owner"}), POLICY, NOW)
    found = open_violations(sqlite_ledger)
    assert found[("owner", "acme/api#9")] == (
        "owners disagree across sources: bob here, alice on OPS-1"
    )
    assert (
        found[("owner", "OPS-1")] == "owners disagree across sources: alice here, bob on acme/api#9"
    )


# --- due date, priority, context -------------------------------------------------------


def test_due_date_priority_and_context(sqlite_ledger: Ledger) -> None:
    store(
        sqlite_ledger,
        task("OPS-1", due=None, priority=None, description="", acceptance_criteria=None),
        task("OPS-2", acceptance_criteria=""),
        task("OPS-3"),
    )
    evaluate(
        sqlite_ledger,
        rules(
            {"id": "due", "kind": "due_date"},
            {"id": "prio", "kind": "priority"},
            {"id": "ctx", "kind": "context"},
            {"id": "desc-only", "kind": "context", "require_acceptance_criteria": False},
        ),
        POLICY,
        NOW,
    )
    assert open_violations(sqlite_ledger) == {
        ("due", "OPS-1"): "no due date",
        ("prio", "OPS-1"): "no priority",
        ("ctx", "OPS-1"): "no description and no acceptance criteria",
        ("ctx", "OPS-2"): "no acceptance criteria",
        ("desc-only", "OPS-1"): "no description",
    }


# --- dependencies ------------------------------------------------------------------------


def test_dependency_risk_follows_blockers_across_sources(sqlite_ledger: Ledger) -> None:
    store(
        sqlite_ledger,
        task("acme/api#1", blocked_by=["OPS-1"]),  # blocker overdue, in Jira
        task("OPS-1", due=date(2026, 3, 1)),
        task("acme/api#2", blocked_by=["acme/api#3"], due=date(2026, 3, 10)),
        task("acme/api#3", due=date(2026, 3, 15)),  # due after the task it blocks
        task("acme/api#4", blocked_by=["OPS-2"]),
        task("OPS-2", status=Status.IN_PROGRESS, last_activity_at=NOW - timedelta(days=9)),
        task("acme/api#5", blocked_by=["OPS-3"]),  # chain: OPS-3 waits on overdue OPS-4
        task("OPS-3", blocked_by=["OPS-4"], due=date(2026, 3, 15)),
        task("OPS-4", due=date(2026, 2, 1)),
        task("acme/api#6", blocked_by=["OPS-5"]),  # closed blocker: no risk
        task("OPS-5", due=date(2026, 1, 1), status=Status.DONE),
    )
    evaluate(sqlite_ledger, rules({"id": "deps", "kind": "dependency_risk"}), POLICY, NOW)
    found = {key: message for (_, key), message in open_violations(sqlite_ledger).items()}
    assert found["acme/api#1"] == "blocked by OPS-1, which is overdue (due 2026-03-01)"
    assert found["acme/api#2"] == (
        "blocked by acme/api#3, which is due 2026-03-15, after this task's due date 2026-03-10"
    )
    assert found["acme/api#4"] == "blocked by OPS-2, which is stale (no activity since 2026-02-23)"
    assert found["acme/api#5"] == (
        "blocked by OPS-3, which is itself at risk: blocked by OPS-4, which is overdue (due 2026-02-01)"
    )
    assert "acme/api#6" not in found


# --- time -------------------------------------------------------------------------------


def test_stale_counts_only_human_activity_and_has_overrides(sqlite_ledger: Ledger) -> None:
    # The connectors leave bot and syncd comments out of last_activity_at.
    store(
        sqlite_ledger,
        task("OPS-1", status=Status.IN_PROGRESS, last_activity_at=NOW - timedelta(days=6)),
        task("OPS-2", status=Status.IN_PROGRESS, last_activity_at=NOW - timedelta(days=2)),
        task(
            "OPS-3",
            status=Status.IN_PROGRESS,
            labels=["urgent"],
            last_activity_at=NOW - timedelta(days=2),
        ),
        task("OPS-4", status=Status.OPEN, last_activity_at=NOW - timedelta(days=30)),
    )
    stale = {"id": "stale", "kind": "stale", "overrides": [{"label": "urgent", "days": 1}]}
    evaluate(sqlite_ledger, rules(stale), POLICY, NOW)
    assert open_violations(sqlite_ledger) == {
        ("stale", "OPS-1"): "in progress with no activity for over 5 days (last on 2026-02-26)",
        ("stale", "OPS-3"): "in progress with no activity for over 1 days (last on 2026-03-02)",
    }


def test_due_soon_only_for_work_not_started(sqlite_ledger: Ledger) -> None:
    store(
        sqlite_ledger,
        task("OPS-1", due=date(2026, 3, 5)),
        task("OPS-2", due=date(2026, 3, 5), status=Status.IN_PROGRESS),
        task("OPS-3", due=date(2026, 3, 9)),
        task("OPS-4", due=date(2026, 3, 2)),
    )
    evaluate(sqlite_ledger, rules({"id": "soon", "kind": "due_soon"}), POLICY, NOW)
    assert open_violations(sqlite_ledger) == {
        ("soon", "OPS-1"): "due 2026-03-05 and not started",
        ("soon", "OPS-4"): "due 2026-03-02 and not started",
    }


def test_verify_before_close_and_a_reopened_task(sqlite_ledger: Ledger) -> None:
    store(
        sqlite_ledger,
        task("OPS-1", status=Status.DONE),
        task("OPS-2", status=Status.DONE, verified_by="field:QA Sign-off"),
        task("OPS-3", status=Status.VERIFIED, verified_by="status:Verified"),
        task("OPS-4", status=Status.CANCELLED),
    )
    verify = rules({"id": "verify", "kind": "verify_before_close"})
    evaluate(sqlite_ledger, verify, POLICY, NOW)
    assert open_violations(sqlite_ledger) == {("verify", "OPS-1"): "done without verification"}
    store(sqlite_ledger, task("OPS-1", status=Status.IN_PROGRESS), now=NOW + timedelta(hours=1))
    result = evaluate(sqlite_ledger, verify, POLICY, NOW + timedelta(hours=1))
    assert open_violations(sqlite_ledger) == {}
    assert result.rules["verify"].resolved == 1


# --- expressions -------------------------------------------------------------------------


def test_scope_and_custom_require(sqlite_ledger: Ledger) -> None:
    store(
        sqlite_ledger,
        task("OPS-1", priority=Priority.HIGH, estimate_hours=None),
        task("OPS-2", priority=Priority.HIGH, estimate_hours=4.0),
        task("acme/api#3", priority=Priority.HIGH, due=None),
    )
    evaluate(
        sqlite_ledger,
        rules(
            {
                "id": "estimate",
                "kind": "custom",
                "require": "estimate_hours > 0.0",
                "scope": "priority == 'high'",
                "message": "high priority work needs an estimate",
            },
            {"id": "gh-due", "kind": "due_date", "scope": "source == 'gh'"},
        ),
        POLICY,
        NOW,
    )
    assert open_violations(sqlite_ledger) == {
        ("estimate", "OPS-1"): "high priority work needs an estimate",
        ("estimate", "acme/api#3"): "high priority work needs an estimate",
        ("gh-due", "acme/api#3"): "no due date",
    }


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"id": "x", "kind": "custom", "require": "size(owners == 1"},
            "rule x: require = 'size(owners == 1': Syntax error: missing ')' at '<EOF>' at column 17",
        ),
        ({"id": "x", "kind": "stale", "scope": "stauts == 'open'"}, "rule x: scope"),
        ({"id": "x", "kind": "custom", "require": "size(owners)"}, "must be true or false"),
        ({"id": "x", "kind": "deadline_risk", "threshold": 1.5}, "threshold: Input should be"),
        ({"id": "x", "kind": "stale", "dayz": 3}, "dayz: unknown parameter for kind stale"),
        (
            {"id": "x", "kind": "stale", "days": 0},
            "days: Input should be greater than or equal to 1",
        ),
        ({"id": "x", "kind": "custom"}, "a custom rule needs a `require` expression"),
        (
            {"id": "x", "kind": "stale", "overrides": [{"days": 2}]},
            "overrides[0]: needs at least one of source, project, label",
        ),
        ({"id": "x", "kind": "flux"}, "unknown rule kind 'flux'"),
    ],
)
def test_rule_errors_name_the_rule_and_key(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleConfigError) as caught:
        rules(spec)
    assert message in str(caught.value)


def test_rules_check_command(tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    path.write_text(
        '[[rules]]\nid = "stale"\nkind = "stale"\ndays = 3\n\n'
        '[[rules]]\nid = "est"\nkind = "custom"\nrequire = "estimate_hours > 0.0"\n'
    )
    result = CliRunner().invoke(app, ["rules", "check", "-c", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert '"days": 3' in result.stdout and '"kind": "custom"' in result.stdout
    path.write_text('[[rules]]\nid = "bad"\nkind = "custom"\nrequire = "owners ==="\n')
    result = CliRunner().invoke(app, ["rules", "check", "-c", str(path)])
    assert result.exit_code == 2
    assert "rule bad: require" in result.output and "column" in result.output


# --- incremental evaluation -------------------------------------------------------------


def test_incremental_evaluates_only_changed_and_came_due(sqlite_ledger: Ledger) -> None:
    batch = [task(f"OPS-{n}", status=Status.IN_PROGRESS) for n in range(1, 51)]
    batch[0] = task(
        "OPS-1", status=Status.IN_PROGRESS, last_activity_at=NOW - timedelta(days=4, hours=20)
    )
    store(sqlite_ledger, *batch)
    active = rules({"id": "stale", "kind": "stale"}, {"id": "due", "kind": "due_date"})
    first = evaluate(sqlite_ledger, active, POLICY, NOW)
    assert first.full and first.evaluated == 50
    later = NOW + timedelta(hours=6)  # OPS-1's five idle days are over
    store(sqlite_ledger, task("OPS-7", status=Status.IN_PROGRESS, due=None), now=later)
    second = evaluate(sqlite_ledger, active, POLICY, later)
    assert not second.full
    assert (second.changed, second.came_due) == (1, 1)
    assert second.evaluated == second.changed + second.came_due
    assert open_violations(sqlite_ledger) == {
        ("stale", "OPS-1"): "in progress with no activity for over 5 days (last on 2026-02-27)",
        ("due", "OPS-7"): "no due date",
    }
    quiet = evaluate(sqlite_ledger, active, POLICY, later + timedelta(minutes=1))
    assert quiet.evaluated == 0


def test_changed_rules_trigger_a_full_evaluation(sqlite_ledger: Ledger) -> None:
    store(sqlite_ledger, task("OPS-1", due=None))
    evaluate(sqlite_ledger, rules({"id": "due", "kind": "due_date"}), POLICY, NOW)
    result = evaluate(sqlite_ledger, rules({"id": "prio", "kind": "priority"}), POLICY, NOW)
    assert result.full
    assert open_violations(sqlite_ledger) == {}  # the removed rule's violation is resolved


def test_violations_keep_first_seen_and_last_seen(ledger: Ledger) -> None:
    store(ledger, task("OPS-1", due=None))
    active = rules({"id": "due", "kind": "due_date"})
    evaluate(ledger, active, POLICY, NOW)
    store(ledger, task("OPS-1", due=None, title="renamed"), now=NOW + timedelta(days=1))
    evaluate(ledger, active, POLICY, NOW + timedelta(days=1))
    with ledger.sessions() as session:
        [violation] = session.scalars(select(Violation)).all()
    assert (violation.first_seen, violation.last_seen) == (NOW, NOW + timedelta(days=1))
    assert violation.kind == "due_date" and violation.resolved_at is None


STATUSES = st.sampled_from(list(Status))
TASKS = st.lists(
    st.fixed_dictionaries(
        {
            "status": STATUSES,
            "owners": st.lists(st.sampled_from(["alice", "bob", "github:team"]), max_size=2),
            "due_in": st.one_of(st.none(), st.integers(-10, 10)),
            "idle": st.integers(0, 12),
            "blocker": st.one_of(st.none(), st.integers(0, 7)),
        }
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(before=TASKS, after=TASKS, hours=st.integers(0, 200))
def test_incremental_equals_full(
    tmp_path_factory: Any, before: Any, after: Any, hours: int
) -> None:
    """Whatever changed and whenever: incremental evaluation gives the full evaluation's verdict."""
    all_rules = rules(
        {"id": "owner", "kind": "single_owner"}, {"id": "due", "kind": "due_date"},
        {"id": "stale", "kind": "stale", "days": 3}, {"id": "soon", "kind": "due_soon"},
        {"id": "deps", "kind": "dependency_risk"}, {"id": "verify", "kind": "verify_before_close"},
    )  # fmt: skip
    later = NOW + timedelta(hours=hours)
    ledgers = []
    for name in ("incremental", "full"):
        path = tmp_path_factory.mktemp(name) / "l.db"
        shutil.copy(_template(tmp_path_factory), path)
        ledgers.append(Ledger.open(f"sqlite:///{path}", auto_upgrade=False))
    incremental, full = ledgers
    for ledger in ledgers:
        store(ledger, *generated(before))
    evaluate(incremental, all_rules, POLICY, NOW)
    for ledger in ledgers:
        store(ledger, *generated(after), now=later)
    evaluate(incremental, all_rules, POLICY, later)
    evaluate(full, all_rules, POLICY, later, full=True)
    assert open_violations(incremental) == open_violations(full)
    for ledger in ledgers:
        ledger.close()


_TEMPLATES: dict[str, Path] = {}


def _template(factory: Any) -> Path:
    """One migrated, empty ledger file copied for each example (migrations are slow)."""
    if "ledger" not in _TEMPLATES:
        path = factory.mktemp("template") / "template.db"
        ledger = Ledger.open(f"sqlite:///{path}", auto_upgrade=False)
        upgrade(ledger.engine)
        with ledger.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        ledger.close()
        _TEMPLATES["ledger"] = path
    return _TEMPLATES["ledger"]


def generated(specs: list[dict[str, Any]]) -> list[Task]:
    return [
        task(
            f"OPS-{n}",
            status=spec["status"],
            owners=spec["owners"],
            due=NOW.date() + timedelta(days=spec["due_in"]) if spec["due_in"] is not None else None,
            last_activity_at=NOW - timedelta(days=spec["idle"]),
            blocked_by=[f"OPS-{spec['blocker']}"] if spec["blocker"] not in (None, n) else [],
        )
        for n, spec in enumerate(specs)
    ]
