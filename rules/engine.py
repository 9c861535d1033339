"""Rules compiled once from `[[rules]]`, evaluated over the ledger incrementally.

After a sync only the tasks that changed, the tasks linked to them (a blocker or
the same work elsewhere), and the tasks whose time-based verdict came due (the
indexed `tasks.next_check_at`) are evaluated — never the whole ledger, unless the
rules themselves changed. Violations are kept over time: first seen, last seen,
resolved.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from syncd.config import FollowupSettings, PolicySettings, RuleSettings
from syncd.ledger.repository import Ledger
from syncd.rules.expressions import SAMPLE, Expression, ExpressionError, Verdicts, task_context
from syncd.rules.kinds import KINDS, NOT_YET, EvalContext, Params, RuleKind
from syncd.rules.store import Finding, RuleCounts, RuleStore
from syncd.rules.view import TaskView

MATCH_KEYS = ("source", "project", "label")


class RuleConfigError(ValueError):
    """A rule that cannot be compiled; the message names the rule id and the key."""


@dataclass(frozen=True)
class Override:
    """Different parameters for some tasks: the first override that matches wins."""

    source: str | None
    project: str | None
    label: str | None
    params: Params

    def matches(self, task: TaskView) -> bool:
        return (
            (self.source is None or task.source == self.source)
            and (self.project is None or task.project == self.project)
            and (self.label is None or self.label.lower() in (x.lower() for x in task.labels))
        )


@dataclass(frozen=True)
class CompiledRule:
    id: str
    kind: RuleKind
    severity: str
    params: Params
    scope: Expression | None = None
    require: Expression | None = None
    overrides: tuple[Override, ...] = ()
    followup: FollowupSettings | None = None

    def params_for(self, task: TaskView) -> Params:
        for override in self.overrides:
            if override.matches(task):
                return override.params
        return self.params

    def describe(self) -> str:
        return self.kind.summary if not self.require else f"require {self.require.source}"


def compile_rules(rules: Iterable[RuleSettings]) -> list[CompiledRule]:
    """Check every rule once, at start-up; errors name the rule, the key, the position."""
    compiled: list[CompiledRule] = []
    seen: set[str] = set()
    for index, rule in enumerate(rules):
        label = f"rules[{index}] (id {rule.id!r})"
        if rule.id in seen:
            raise RuleConfigError(f"{label}: id: another rule already has the id {rule.id!r}")
        seen.add(rule.id)
        compiled.append(_compile(rule, label))
    return compiled


def _compile(rule: RuleSettings, label: str) -> CompiledRule:
    if rule.kind in NOT_YET:
        raise RuleConfigError(f"{label}: kind: {NOT_YET[rule.kind]}")
    kind = KINDS.get(rule.kind)
    if kind is None:
        known = ", ".join(sorted(KINDS))
        raise RuleConfigError(f"{label}: kind: unknown rule kind {rule.kind!r} (known: {known})")
    raw = rule.params
    overrides_raw = raw.pop("overrides", [])
    params = _params(kind, raw, label, "")
    scope = _expression(rule.scope, rule.id, "scope")
    require = _expression(rule.require, rule.id, "require")
    if rule.kind == "custom" and require is None:
        raise RuleConfigError(f"{label}: require: a custom rule needs a `require` expression")
    if rule.kind != "custom" and require is not None:
        raise RuleConfigError(f'{label}: require: only kind = "custom" takes `require`')
    overrides = tuple(
        _override(kind, raw, item, label, i) for i, item in enumerate(_list(overrides_raw, label))
    )
    return CompiledRule(
        id=rule.id,
        kind=kind,
        severity=rule.severity,
        params=params,
        scope=scope,
        require=require,
        overrides=overrides,
        followup=rule.followup,
    )


def _params(kind: RuleKind, raw: dict[str, Any], label: str, where: str) -> Params:
    try:
        return kind.params_model.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            allowed = ", ".join(kind.params_model.model_fields) or "none"
            reason = f"unknown parameter for kind {kind.name} (parameters: {allowed})"
        else:
            reason = first["msg"]
        raise RuleConfigError(f"{label}: {where}{key}: {reason}") from None


def _expression(source: str | None, rule_id: str, key: str) -> Expression | None:
    if source is None:
        return None
    try:
        expression = Expression(source, rule_id=rule_id, key=key)
        expression.check(task_context(SAMPLE, datetime.now().astimezone()))
    except ExpressionError as error:
        raise RuleConfigError(str(error)) from None
    return expression


def _list(value: object, label: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise RuleConfigError(
            f'{label}: overrides: a list of tables, e.g. [{{ source = "gh", days = 3 }}]'
        )
    return value


def _override(
    kind: RuleKind, base: dict[str, Any], item: dict[str, Any], label: str, index: int
) -> Override:
    match = {key: item.get(key) for key in MATCH_KEYS}
    if not any(match.values()):
        raise RuleConfigError(
            f"{label}: overrides[{index}]: needs at least one of source, project, label"
        )
    rest = {k: v for k, v in item.items() if k not in MATCH_KEYS}
    params = _params(kind, {**base, **rest}, label, f"overrides[{index}].")
    return Override(match["source"], match["project"], match["label"], params)


def evaluation_context(policy: PolicySettings, now: datetime) -> EvalContext:
    try:
        zone = ZoneInfo(policy.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleConfigError(f"policy.timezone: unknown time zone {policy.timezone!r}") from None
    return EvalContext(
        now=now, timezone=zone, team_aliases=frozenset(a.lower() for a in policy.team_aliases)
    )


# --- evaluation -----------------------------------------------------------------------


@dataclass
class EvaluationResult:
    evaluated: int = 0
    full: bool = False
    rules: dict[str, RuleCounts] = field(default_factory=dict)
    changed: int = 0
    came_due: int = 0
    dependents: int = 0


class _Step(NamedTuple):
    """A rule as it runs over the tasks of one status."""

    rule: CompiledRule
    scope: Expression | None  # None: no scope, or one already decided for the whole status
    check: Callable[[TaskView, Any, EvalContext], str | None]
    next_check: Callable[[TaskView, Any, EvalContext], datetime | None] | None


def judge(
    rules: list[CompiledRule], views: Iterable[TaskView], ctx: EvalContext
) -> tuple[list[Finding], dict[int, datetime | None]]:
    """Every rule over every view: the findings and each task's next check."""
    findings: list[Finding] = []
    next_checks: dict[int, datetime | None] = {}
    verdicts = Verdicts(ctx.now)
    by_status: dict[str, list[_Step]] = {}
    for task in views:
        steps = by_status.get(task.status)
        if steps is None:
            steps = by_status[task.status] = _steps(rules, task, verdicts)
        soonest: datetime | None = None
        for rule, scope, check, next_check in steps:
            if scope is not None and not verdicts.holds(scope, task):
                continue
            params = rule.params_for(task) if rule.overrides else rule.params
            message = check(task, params, ctx)
            if message:
                findings.append(Finding(rule.id, rule.kind.name, rule.severity, task.id, message))
            if next_check is not None:
                moment = next_check(task, params, ctx)
                if moment is not None and (soonest is None or moment < soonest):
                    soonest = moment
        next_checks[task.id] = soonest
    return findings, next_checks


def _steps(rules: list[CompiledRule], task: TaskView, verdicts: Verdicts) -> list[_Step]:
    """The rules that may apply to tasks of this task's status, each ready to run.

    Which tasks a kind looks at depends on the status alone, and so does a scope that
    reads nothing else (`status != 'cancelled'`): both are decided here, once per status.
    """
    steps = []
    for rule in rules:
        scope = rule.scope
        if scope is None:
            if not rule.kind.applies_to(task.status):
                continue
        elif set(scope.variables) <= {"status"}:
            if not verdicts.holds(scope, task):
                continue
            scope = None
        check = rule.kind.check if rule.require is None else _requirement(rule, verdicts)
        next_check = rule.kind.next_check if rule.kind.timed else None
        steps.append(_Step(rule, scope, check, next_check))
    return steps


def _requirement(
    rule: CompiledRule, verdicts: Verdicts
) -> Callable[[TaskView, Any, EvalContext], str | None]:
    """A custom rule's check: its `require` expression must hold."""
    require = rule.require
    assert require is not None

    def check(task: TaskView, params: Any, ctx: EvalContext) -> str | None:
        return None if verdicts.holds(require, task) else _custom_message(rule, params)

    return check


def _custom_message(rule: CompiledRule, params: Any) -> str:
    message: str | None = getattr(params, "message", None)
    return message or f"does not satisfy {rule.require.source if rule.require else rule.id}"


def fingerprint(rules: list[CompiledRule], policy: PolicySettings) -> str:
    """Changes when the rules or the policy change: then everything is evaluated again."""
    described = [
        [r.id, r.kind.name, r.severity, r.params.model_dump(), r.scope and r.scope.source,
         r.require and r.require.source, [(o.source, o.project, o.label, o.params.model_dump())
                                          for o in r.overrides]]
        for r in rules
    ]  # fmt: skip
    payload = json.dumps([described, policy.model_dump()], sort_keys=True, default=str)
    return hashlib.blake2b(payload.encode(), digest_size=12).hexdigest()


def evaluate(
    ledger: Ledger,
    rules: list[CompiledRule],
    policy: PolicySettings,
    now: datetime,
    *,
    full: bool = False,
) -> EvaluationResult:
    """Evaluate what needs it and record the violations; returns per-rule counts."""
    with _cycle_collector_paused():
        return _evaluate(ledger, rules, policy, now, full=full)


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch of views is loaded and judged.

    The views and findings are long-lived containers, so the collector's full passes
    rescan a heap that grows by 100,000s of objects several times over (more than a
    second of a 100,000-task evaluation); reference counting still frees everything
    else, and any cycles are collected once the collector runs again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _evaluate(
    ledger: Ledger, rules: list[CompiledRule], policy: PolicySettings, now: datetime, *, full: bool
) -> EvaluationResult:
    store = RuleStore(ledger, rules_only=True)
    ctx = evaluation_context(policy, now)
    mark = store.watermark()
    print_ = fingerprint(rules, policy)
    full = full or mark is None or mark.get("fingerprint") != print_
    high_water = store.latest_revision()
    result = EvaluationResult(full=full)
    if full:
        views = store.load_all()
        evaluated_ids = {view.id for view in views} | store.ids_with_open_violations()
    else:
        changed = store.changed_between(int(mark.get("revision") or 0) if mark else 0, high_water)
        due = store.came_due(now) - changed
        dependents = store.dependents_of(changed) - changed - due
        result.changed, result.came_due, result.dependents = len(changed), len(due), len(dependents)
        evaluated_ids = changed | due | dependents
        views = store.load_ids(evaluated_ids)
    if any(rule.kind.name == "deadline_risk" for rule in rules):
        ctx = replace(ctx, risks=_forecasts(ledger, views, high_water, full=full, now=now))
    findings, next_checks = judge(rules, views, ctx)
    rule_ids = {rule.id for rule in rules}
    counts = store.record(findings, next_checks, evaluated_ids, rule_ids, now, full=full)
    store.save_watermark(high_water, print_, now)
    result.evaluated = len(views)
    result.rules = {rule.id: counts.get(rule.id, RuleCounts()) for rule in rules}
    return result


def _forecasts(
    ledger: Ledger, views: list[TaskView], revision: int, *, full: bool, now: datetime
) -> dict[int, Any]:
    """deadline_risk's forecasts of the evaluated tasks (`syncd.forecast.ledger`): the
    board's snapshot follows the ledger's revisions, and only changed inputs are simulated."""
    from syncd.forecast.ledger import board_for

    board = board_for(ledger)
    board.sync(views, revision, complete=full)
    return board.forecasts((view.id for view in views), now)
