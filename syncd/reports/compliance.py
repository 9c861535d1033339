"""Compliance: the share of tasks that follow each policy, and its trend.

A task is *in scope* of a rule when the engine would judge it: the rule's `scope`
expression when it has one, else the kind's default set (open work for most
kinds, done work for `verify_before_close`). It *complies* when it has no open
violation of that rule. Per source and per project, a task counts when at least
one rule applies to it and complies when it breaks none of them.

The trend is read from the violation history alone: on each of the last
`TREND_DAYS` local days, how many violations were open at the end of the day,
how many were first seen and how many were resolved that day.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

from syncd.reports.snapshot import Snapshot
from syncd.rules.engine import CompiledRule
from syncd.rules.expressions import ExpressionError, task_context

TREND_DAYS = 14


def rules_in_scope(snapshot: Snapshot) -> dict[int, set[str]]:
    """For every live task, the ids of the configured rules that apply to it."""
    scoped: dict[int, set[str]] = {}
    for view in snapshot.views:
        context: dict[str, Any] | None = None
        applying = set()
        for rule in snapshot.rules:
            if rule.scope is None:
                if rule.kind.applies(view):
                    applying.add(rule.id)
                continue
            context = context or task_context(view, snapshot.now)
            if _holds(rule, context):
                applying.add(rule.id)
        scoped[view.id] = applying
    return scoped


def _holds(rule: CompiledRule, context: dict[str, Any]) -> bool:
    assert rule.scope is not None
    try:
        return bool(rule.scope.evaluate(context))
    except ExpressionError:
        return False  # as in the engine: a scope that cannot be evaluated excludes the task


def broken_rules(snapshot: Snapshot) -> dict[int, set[str]]:
    broken: dict[int, set[str]] = defaultdict(set)
    for violation in snapshot.open_violations():
        broken[violation.task_id].add(violation.rule)
    return broken


def _share(tasks: int, compliant: int) -> dict[str, Any]:
    percent = round(100 * compliant / tasks, 1) if tasks else None
    return {"tasks": tasks, "compliant": compliant, "percent": percent}


class _Tally:
    """Counts tasks and compliant tasks per group, overall and per rule."""

    def __init__(self) -> None:
        self.tasks: Counter[Any] = Counter()
        self.compliant: Counter[Any] = Counter()

    def add(self, group: Any, complies: bool) -> None:
        self.tasks[group] += 1
        self.compliant[group] += complies

    def share(self, group: Any) -> dict[str, Any]:
        return _share(self.tasks[group], self.compliant[group])


def overall_compliance(snapshot: Snapshot) -> dict[str, Any]:
    scoped, broken = rules_in_scope(snapshot), broken_rules(snapshot)
    tally = _Tally()
    for view in snapshot.views:
        if scoped[view.id]:
            tally.add("all", not (scoped[view.id] & broken[view.id]))
    return tally.share("all")


def compliance_report(snapshot: Snapshot) -> dict[str, Any]:
    scoped, broken = rules_in_scope(snapshot), broken_rules(snapshot)
    sources, projects, rules, per_source_rule = _Tally(), _Tally(), _Tally(), _Tally()
    for view in snapshot.views:
        applying = scoped[view.id]
        if not applying:
            continue
        complies = not (applying & broken[view.id])
        sources.add(view.source, complies)
        projects.add((view.source, view.project), complies)
        for rule_id in applying:
            ok = rule_id not in broken[view.id]
            rules.add(rule_id, ok)
            per_source_rule.add((view.source, rule_id), ok)
    return {
        "overall": overall_compliance(snapshot),
        "sources": [
            {"source": name, **sources.share(name), "rules": _source_rules(per_source_rule, name)}
            for name in sorted(sources.tasks)
        ],
        "projects": [
            {"source": source, "project": project, **projects.share((source, project))}
            for source, project in sorted(projects.tasks)
        ],
        "rules": [_rule_row(rule, rules) for rule in snapshot.rules],
        "trend": trend(snapshot),
    }


def _source_rules(tally: _Tally, source: str) -> dict[str, float | None]:
    return {
        rule_id: tally.share((name, rule_id))["percent"]
        for name, rule_id in sorted(tally.tasks)
        if name == source
    }


def _rule_row(rule: CompiledRule, tally: _Tally) -> dict[str, Any]:
    return {
        "rule": rule.id,
        "kind": rule.kind.name,
        "severity": rule.severity,
        "checks": rule.describe(),
        **tally.share(rule.id),
    }


def trend(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Open violations at the end of each of the last TREND_DAYS days, oldest first."""
    days = [snapshot.today - timedelta(days=n) for n in range(TREND_DAYS - 1, -1, -1)]
    zone = snapshot.zone
    first_seen = Counter(v.first_seen.astimezone(zone).date() for v in snapshot.violations)
    resolved = Counter(
        v.resolved_at.astimezone(zone).date() for v in snapshot.violations if v.resolved_at
    )
    points = []
    for day in days:
        # Today is not over: count what is open now.
        moment = min(snapshot.end_of(day), snapshot.now)
        still_open = sum(1 for v in snapshot.violations if v.open_at(moment))
        points.append(
            {
                "date": day.isoformat(),
                "open": still_open,
                "new": first_seen[day],
                "resolved": resolved[day],
            }
        )
    return points
