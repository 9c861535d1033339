"""The rules engine's batch paths agree with the plain definitions they speed up.

Views are decoded from untyped rows, verdicts are shared between tasks with the
same values, kinds and status-only scopes are decided once per status, and rows
are written through the DB-API's executemany: each is checked here against the
straightforward reading (ORM rows, one expression run per task, every rule on
every task).
"""

from __future__ import annotations

import gc
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from syncd.config import PolicySettings, RuleSettings
from syncd.ledger.models import TaskRow, Violation
from syncd.ledger.repository import Ledger
from syncd.model import Priority, Status, Task
from syncd.rules.engine import CompiledRule, compile_rules, evaluate, evaluation_context, judge
from syncd.rules.expressions import Expression, ExpressionError, task_context
from syncd.rules.kinds import EvalContext
from syncd.rules.store import REPORT_ONLY, VIEW_FIELDS, Finding, RuleStore
from syncd.rules.view import TaskView

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def test_views_decode_as_the_column_types_do(ledger: Ledger) -> None:
    """On each backend, a view's fields are what the ORM reads from the same row."""
    tasks = [
        Task(source="ops", external_id="1", key="OPS-1", title="one", status=Status.OPEN),
        Task(
            source="gh", external_id="2", key="acme/api#2", title="two", url="https://x/2",
            description="", status=Status.IN_PROGRESS, status_raw="open",
            owners=["alice", "github:bob"], team="Platform", reporter="carol",
            due=date(2026, 3, 20), priority=Priority.HIGH, labels=["P1", "bug"], parent="OPS-1",
            blocked_by=["OPS-1"], links=["OPS-1"], acceptance_criteria="- works",
            estimate_hours=2.5, logged_hours=0.0, created_at=NOW - timedelta(days=3),
            updated_at=NOW - timedelta(hours=5, microseconds=7),
            closed_at=NOW - timedelta(minutes=1), last_activity_at=NOW - timedelta(seconds=1),
            verified_by="dan", participants=["alice"],
        ),
    ]  # fmt: skip
    ledger.ingest_page("ops", tasks[:1], now=NOW)
    ledger.ingest_page("gh", tasks[1:], now=NOW)
    ledger.resolve_links()
    views = {view.id: view for view in RuleStore(ledger).load_all()}
    with ledger.sessions() as session:
        rows = session.scalars(select(TaskRow)).all()
        assert sorted(views) == sorted(row.id for row in rows)
        for row in rows:
            view = views[row.id]
            for name in VIEW_FIELDS:
                expected = getattr(row, name)
                if name == "description" or isinstance(getattr(view, name), list):
                    expected = expected or type(getattr(view, name))()
                assert getattr(view, name) == expected, name
                assert type(getattr(view, name)) is type(expected), name
            for name in ("created_at", "updated_at", "closed_at", "last_activity_at"):
                moment = getattr(view, name)
                assert moment is None or moment.utcoffset() == timedelta(0), name
    second = views[max(views)]
    assert [blocker.key for blocker in second.blockers] == ["OPS-1"]
    assert second.created_at == NOW - timedelta(days=3)
    assert second.updated_at == NOW - timedelta(hours=5, microseconds=7)
    # Loaded for rules, the same views without the fields only reports show.
    for view in RuleStore(ledger, rules_only=True).load_all():
        for name in VIEW_FIELDS:
            expected = getattr(views[view.id], name)
            if name in REPORT_ONLY:
                expected = [] if name == "participants" else None
            assert getattr(view, name) == expected, name


def test_new_violations_and_next_checks_are_written_on_each_backend(ledger: Ledger) -> None:
    idle = Task(
        source="ops", external_id="1", key="OPS-1", title="idle", status=Status.IN_PROGRESS,
        owners=["alice"], created_at=NOW - timedelta(days=10), last_activity_at=NOW - timedelta(days=1),
    )  # fmt: skip
    ledger.ingest_page("ops", [idle], now=NOW)
    active = compile_rules(
        [
            RuleSettings.model_validate({"id": "due", "kind": "due_date", "severity": "warning"}),
            RuleSettings.model_validate({"id": "stale", "kind": "stale", "days": 3}),
        ]
    )
    evaluate(ledger, active, PolicySettings(), NOW)
    with ledger.sessions() as session:
        [violation] = session.scalars(select(Violation)).all()
        [row] = session.scalars(select(TaskRow)).all()
    assert (violation.rule_id, violation.kind, violation.severity, violation.message) == (
        "due", "due_date", "warning", "no due date",
    )  # fmt: skip
    assert (violation.task_id, violation.first_seen, violation.last_seen) == (row.id, NOW, NOW)
    assert violation.resolved_at is None
    assert row.next_check_at == NOW + timedelta(days=2)


def test_many_new_violations_keep_the_order_they_were_found_in(ledger: Ledger) -> None:
    """More violations than one insert statement takes: all written, in task order."""
    tasks = [
        Task(source="ops", external_id=str(n), key=f"OPS-{n}", title="t", status=Status.OPEN)
        for n in range(300)
    ]
    ledger.ingest_page("ops", tasks, now=NOW)
    active = compile_rules(
        [
            RuleSettings.model_validate({"id": "due", "kind": "due_date"}),
            RuleSettings.model_validate({"id": "priority", "kind": "priority"}),
        ]
    )
    result = evaluate(ledger, active, PolicySettings(), NOW)
    assert (result.rules["due"].new, result.rules["priority"].new) == (300, 300)
    with ledger.sessions() as session:
        written = session.execute(
            select(Violation.task_id, Violation.rule_id).order_by(Violation.id)
        ).all()
        ids = session.scalars(select(TaskRow.id).order_by(TaskRow.id)).all()
    assert written == [(task_id, rule) for task_id in ids for rule in ("due", "priority")]


def test_evaluation_leaves_the_garbage_collector_as_it_was(ledger: Ledger) -> None:
    active = compile_rules([RuleSettings.model_validate({"id": "due", "kind": "due_date"})])
    evaluate(ledger, active, PolicySettings(), NOW)
    assert gc.isenabled()
    gc.disable()
    try:
        evaluate(ledger, active, PolicySettings(), NOW, full=True)
        assert not gc.isenabled()
    finally:
        gc.enable()


# --- judge against every rule on every task ------------------------------------------------

RULES = [
    {"id": "owner", "kind": "single_owner", "team_aliases": ["platform"]},
    {"id": "due", "kind": "due_date", "scope": "source == 'gh'"},
    {"id": "priority", "kind": "priority"},
    {"id": "context", "kind": "context", "require_acceptance_criteria": False},
    {"id": "deps", "kind": "dependency_risk", "stale_days": 2},
    {"id": "stale", "kind": "stale", "days": 3, "overrides": [{"source": "gh", "days": 1}]},
    {"id": "verify", "kind": "verify_before_close"},
    {"id": "soon", "kind": "due_soon", "scope": "status in ['open', 'blocked']"},
    {"id": "estimate", "kind": "custom", "require": "estimate_hours > 0.0 || priority != 'high'",
     "scope": "status != 'cancelled'"},
    {"id": "one-owner", "kind": "custom", "require": "size(owners) == 1 && !('x' in labels)",
     "scope": "has_due && days_to_due < 3", "message": "needs one owner"},
    {"id": "future", "kind": "custom", "require": "days_to_due > 0"},  # null without a due date
]  # fmt: skip

VIEWS = st.lists(
    st.fixed_dictionaries(
        {
            "source": st.sampled_from(["gh", "ops"]),
            "status": st.sampled_from([*(s.value for s in Status), "weird"]),
            "owners": st.lists(
                st.sampled_from(["alice", "bob", "platform", "github:x"]), max_size=2
            ),
            "labels": st.lists(st.sampled_from(["x", "y"]), max_size=2),
            "priority": st.sampled_from(["high", "medium", "low", None]),
            "due_in": st.one_of(st.none(), st.integers(-4, 6)),
            "estimate": st.one_of(st.none(), st.sampled_from([0.0, 1.5])),
            "idle_hours": st.one_of(st.none(), st.integers(0, 150)),
            "description": st.sampled_from(["", "  ", "why"]),
            "verified_by": st.sampled_from([None, "dan"]),
            "blocker": st.one_of(st.none(), st.integers(0, 9)),
        }
    ),
    max_size=10,
)


@settings(max_examples=150, deadline=None)
@given(specs=VIEWS, hours=st.integers(0, 72))
def test_judge_is_every_rule_on_every_task(specs: list[dict[str, Any]], hours: int) -> None:
    compiled = compile_rules([RuleSettings.model_validate(dict(rule)) for rule in RULES])
    views, for_rules = _views(specs, report_fields=True), _views(specs, report_fields=False)
    ctx = evaluation_context(PolicySettings(), NOW + timedelta(hours=hours))
    assert judge(compiled, views, ctx) == _plain_judge(compiled, views, ctx)
    # Rules never read the fields views loaded for rules leave out.
    assert judge(compiled, for_rules, ctx) == judge(compiled, views, ctx)
    for view, rule_view in zip(views, for_rules, strict=True):
        assert task_context(rule_view, ctx.now) == task_context(view, ctx.now)


def _views(specs: list[dict[str, Any]], *, report_fields: bool) -> list[TaskView]:
    views = [_view(n, spec) for n, spec in enumerate(specs)]
    for view, spec in zip(views, specs, strict=True):
        if spec["blocker"] is not None and spec["blocker"] < len(views):
            view.blockers = [views[spec["blocker"]]]
        if report_fields:
            view.url, view.participants = f"https://x/{view.id}", ["erin"]
            view.updated_at = view.closed_at = NOW - timedelta(hours=spec["idle_hours"] or 1)
    return views


def _view(n: int, spec: dict[str, Any]) -> TaskView:
    idle = spec["idle_hours"]
    return TaskView(
        id=n + 1, source=spec["source"], key=f"{spec['source'].upper()}-{n}", title=f"t{n}",
        status=spec["status"], description=spec["description"], owners=spec["owners"],
        labels=spec["labels"], priority=spec["priority"],
        due=NOW.date() + timedelta(days=spec["due_in"]) if spec["due_in"] is not None else None,
        estimate_hours=spec["estimate"], verified_by=spec["verified_by"],
        created_at=NOW - timedelta(days=30),
        last_activity_at=NOW - timedelta(hours=idle) if idle is not None else None,
    )  # fmt: skip


def _plain_judge(
    rules: list[CompiledRule], views: list[TaskView], ctx: EvalContext
) -> tuple[list[Finding], dict[int, datetime | None]]:
    """The engine's definition, spelled out: every rule, every task, every expression run."""
    findings: list[Finding] = []
    next_checks: dict[int, datetime | None] = {}
    for task in views:
        context = task_context(task, ctx.now)
        moments = []
        for rule in rules:
            if rule.scope is None and not rule.kind.applies(task):
                continue
            if rule.scope is not None and not _holds(rule.scope, context):
                continue
            params = rule.params_for(task)
            if rule.require is not None:
                require = rule.require
                failed = params.message or f"does not satisfy {require.source}"  # type: ignore[attr-defined]
                message = None if _holds(require, context) else failed
            else:
                message = rule.kind.check(task, params, ctx)
            if message:
                findings.append(Finding(rule.id, rule.kind.name, rule.severity, task.id, message))
            moment = rule.kind.next_check(task, params, ctx)
            if moment is not None:
                moments.append(moment)
        next_checks[task.id] = min(moments) if moments else None
    return findings, next_checks


def _holds(expression: Expression, context: dict[str, Any]) -> bool:
    try:
        return bool(expression.evaluate(context))
    except ExpressionError:
        return False
