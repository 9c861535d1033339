"""The three audit reports as JSON-ready dicts (the contract in SPEC "Reports").

Shapes (every report also carries `summary`, the numbers the HTML tiles show):

- ownerless:  {report, generated_at, summary, groups: [{source, project, count}],
               tasks: [task + {project, problem, problem_text, age_days,
                               suggested_owner, suggestion_reason}]}
- violations: {report, generated_at, summary,
               violations: [{rule, kind, severity, message, first_seen, task}]}
- compliance: {report, generated_at, summary, overall, sources, projects, rules, trend}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.config import PolicySettings
from syncd.ledger.repository import Ledger
from syncd.reports.compliance import compliance_report, overall_compliance, trend
from syncd.reports.ownerless import OwnerIndex, ownership_problem, suggest_owner
from syncd.reports.snapshot import Snapshot, is_open, load_snapshot
from syncd.rules.engine import CompiledRule, evaluation_context
from syncd.rules.view import TaskView

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}

__all__ = ["REPORTS", "build_report", "report_from_snapshot", "task_json"]


def task_json(view: TaskView) -> dict[str, Any]:
    """The task object every report shares: SPEC's minimum plus what a lead needs."""
    return {
        "source": view.source,
        "key": view.key,
        "url": view.url,
        "title": view.title,
        "status": view.status,
        "owners": list(view.owners),
        "due": view.due.isoformat() if view.due else None,
        "priority": view.priority,
        "project": view.project,
        "team": view.team,
        "reporter": view.reporter,
        "created_at": _iso(view.created_at),
        "last_activity_at": _iso(view.last_activity_at),
    }


def ownerless_report(snapshot: Snapshot) -> dict[str, Any]:
    index = OwnerIndex(snapshot.views, snapshot.team_aliases)
    rows = []
    for view in snapshot.views:
        problem = ownership_problem(view, snapshot.team_aliases) if is_open(view) else None
        if problem is None:
            continue
        suggestion = suggest_owner(view, problem, index)
        rows.append(
            task_json(view)
            | {
                "problem": problem.code,
                "problem_text": problem.text,
                "age_days": _age_days(view, snapshot.now),
                "suggested_owner": suggestion.person,
                "suggestion_reason": suggestion.reason,
            }
        )
    # Grouped by source and project; the oldest first inside a group.
    rows.sort(key=lambda r: (r["source"], r["project"], -(r["age_days"] or 0), r["key"]))
    groups = Counter((r["source"], r["project"]) for r in rows)
    return {
        "groups": [{"source": s, "project": p, "count": n} for (s, p), n in groups.items()],
        "tasks": rows,
    }


def violations_report(snapshot: Snapshot) -> dict[str, Any]:
    tasks = snapshot.by_id()
    ordered = sorted(
        snapshot.open_violations(),
        key=lambda v: (
            SEVERITY_ORDER.get(v.severity, 9),
            v.first_seen,
            v.rule,
            tasks[v.task_id].source,
            tasks[v.task_id].key,
        ),
    )
    return {
        "violations": [
            {
                "rule": v.rule,
                "kind": v.kind,
                "severity": v.severity,
                "message": v.message,
                "first_seen": v.first_seen.isoformat(),
                "task": task_json(tasks[v.task_id]),
            }
            for v in ordered
        ]
    }


def summary(snapshot: Snapshot) -> dict[str, Any]:
    """The headline numbers and chart data, the same in every report."""
    open_views = [view for view in snapshot.views if is_open(view)]
    ownerless = sum(1 for v in open_views if ownership_problem(v, snapshot.team_aliases))
    violations = snapshot.open_violations()
    by_rule = Counter(v.rule for v in violations)
    return {
        "tasks": len(snapshot.views),
        "open_tasks": len(open_views),
        "ownerless": ownerless,
        "open_violations": len(violations),
        "compliance_percent": overall_compliance(snapshot)["percent"],
        "open_violations_by_rule": dict(by_rule.most_common()),
        "trend": trend(snapshot),
    }


REPORTS: dict[str, Callable[[Snapshot], dict[str, Any]]] = {
    "ownerless": ownerless_report,
    "violations": violations_report,
    "compliance": compliance_report,
}


def build_report(
    ledger: Ledger,
    report: str,
    *,
    rules: Sequence[CompiledRule] = (),
    policy: PolicySettings | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Build one report from the ledger as it is; rules are read, never evaluated here.

    Without `rules`, compliance has nothing to measure (its percentages are null);
    the ownerless and violations reports need none.
    """
    ctx = evaluation_context(policy or PolicySettings(), now or datetime.now(UTC))
    snapshot = load_snapshot(
        ledger, list(rules), now=ctx.now, zone=ctx.timezone, team_aliases=ctx.team_aliases
    )
    return report_from_snapshot(report, snapshot)


def report_from_snapshot(name: str, snapshot: Snapshot) -> dict[str, Any]:
    if name not in REPORTS:
        raise ValueError(f"unknown report {name!r} (one of: {', '.join(REPORTS)})")
    head = {
        "report": name,
        "generated_at": snapshot.now.isoformat(),
        "summary": summary(snapshot),
    }
    return head | REPORTS[name](snapshot)


def _age_days(view: TaskView, now: datetime) -> int | None:
    if view.created_at is None:
        return None
    return max((now - view.created_at) // timedelta(days=1), 0)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
