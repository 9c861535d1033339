"""Safe expressions over task fields: CEL, through `common-expression-language`.

Chosen by benchmark (benchmarks/rules.py): the Rust-backed `cel` evaluates a
typical scope in about 3 µs against about 280 µs for the pure-Python cel-python.
Expressions only ever see the plain values of `task_context`, never Python
objects, and there is no `eval` anywhere.

Variables: source, key, title, description, status, status_raw, priority,
owners, team, reporter, labels, project, due (a date string "YYYY-MM-DD" or
null), has_due, blocked_by, parent, acceptance_criteria, estimate_hours,
logged_hours, age_days, idle_days (days since the last human activity),
days_to_due (null without a due date), verified_by.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import cel

from syncd.rules.view import TaskView

_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*?)(?:\n|$)")


class ExpressionError(ValueError):
    """An expression that does not parse or does not evaluate; names the rule and key."""


class Expression:
    def __init__(self, source: str, *, rule_id: str, key: str) -> None:
        self.source = source
        self.rule_id = rule_id
        self.key = key
        try:
            self._program = cel.compile(source)
        except ValueError as error:
            raise ExpressionError(self._describe(str(error))) from None
        # Passing only the variables the expression reads keeps each call cheap.
        self.variables: tuple[str, ...] = tuple(self._program.variables())
        self.unknown = [name for name in self.variables if name not in VARIABLES]
        self.getters = tuple(VARIABLES[name] for name in self.variables if not self.unknown)

    def _describe(self, message: str) -> str:
        match = _POSITION.search(message)
        where = f" at column {match.group(2)}" if match else ""
        reason = match.group(3) if match else message.splitlines()[0]
        return f"rule {self.rule_id}: {self.key} = {self.source!r}: {reason}{where}"

    def evaluate(self, context: dict[str, Any]) -> Any:
        try:
            return self._program.execute({name: context[name] for name in self.variables})
        except KeyError as error:
            raise ExpressionError(self._describe(f"unknown variable {error.args[0]!r}")) from None
        except (RuntimeError, ValueError, TypeError) as error:
            raise ExpressionError(self._describe(str(error))) from None

    def check(self, context: dict[str, Any]) -> None:
        """Evaluate once against a sample task so unknown names fail at start-up."""
        result = self.evaluate(context)
        if not isinstance(result, bool):
            raise ExpressionError(
                f"rule {self.rule_id}: {self.key} = {self.source!r} must be true or false, "
                f"not {type(result).__name__}"
            )


Getter = Callable[[TaskView, datetime], Any]

# How each variable is read from a task at a moment `now`.
VARIABLES: dict[str, Getter] = {
    "source": lambda task, now: task.source,
    "key": lambda task, now: task.key,
    "title": lambda task, now: task.title,
    "description": lambda task, now: task.description or "",
    "status": lambda task, now: task.status,
    "status_raw": lambda task, now: task.status_raw or "",
    "priority": lambda task, now: task.priority or "",
    "owners": lambda task, now: list(task.owners),
    "team": lambda task, now: task.team or "",
    "reporter": lambda task, now: task.reporter or "",
    "labels": lambda task, now: list(task.labels),
    "project": lambda task, now: task.project,
    "due": lambda task, now: task.due.isoformat() if task.due else None,
    "has_due": lambda task, now: task.due is not None,
    "blocked_by": lambda task, now: list(task.blocked_by),
    "parent": lambda task, now: task.parent or "",
    "acceptance_criteria": lambda task, now: task.acceptance_criteria or "",
    "estimate_hours": lambda task, now: float(task.estimate_hours or 0),
    "logged_hours": lambda task, now: float(task.logged_hours or 0),
    "age_days": lambda task, now: _days_between(task.created_at, now),
    "idle_days": lambda task, now: _days_between(task.last_activity_at or task.created_at, now),
    "days_to_due": lambda task, now: (task.due - now.date()).days if task.due else None,
    "verified_by": lambda task, now: task.verified_by or "",
}


def task_context(task: TaskView, now: datetime) -> dict[str, Any]:
    """The variables an expression sees for one task."""
    return {name: get(task, now) for name, get in VARIABLES.items()}


class Verdicts:
    """Whether expressions hold for many tasks at one moment, each expression run once
    per distinct combination of the values it reads.

    An expression is a pure function of those values, and scopes and requirements
    mostly read a few fields with few distinct values (status, priority…), so
    100,000 tasks take a handful of runs instead of 100,000. One `Verdicts` serves
    one evaluation: its memory is bounded by the tasks it sees.
    """

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._known: dict[tuple[Any, ...], bool] = {}

    def holds(self, expression: Expression, task: TaskView) -> bool:
        """True when the expression is true; false when false or it cannot be evaluated
        (e.g. a null due date in arithmetic)."""
        if expression.unknown:
            return False
        now = self.now
        values = [get(task, now) for get in expression.getters]
        key = (expression.source, *[tuple(v) if v.__class__ is list else v for v in values])
        verdict = self._known.get(key)
        if verdict is None:
            context = dict(zip(expression.variables, values, strict=True))
            try:
                verdict = bool(expression.evaluate(context))
            except ExpressionError:
                verdict = False
            self._known[key] = verdict
        return verdict


def _days_between(start: datetime | None, now: datetime) -> int:
    return (now - start).days if start else 0


SAMPLE = TaskView(
    id=0,
    source="sample",
    key="SAMPLE-1",
    title="sample",
    status="open",
    due=date(2026, 1, 1),
)
