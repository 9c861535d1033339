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


def task_context(task: TaskView, now: datetime) -> dict[str, Any]:
    """The variables an expression sees for one task."""
    today = now.date()
    return {
        "source": task.source,
        "key": task.key,
        "title": task.title,
        "description": task.description or "",
        "status": task.status,
        "status_raw": task.status_raw or "",
        "priority": task.priority or "",
        "owners": list(task.owners),
        "team": task.team or "",
        "reporter": task.reporter or "",
        "labels": list(task.labels),
        "project": task.project,
        "due": task.due.isoformat() if task.due else None,
        "has_due": task.due is not None,
        "blocked_by": list(task.blocked_by),
        "parent": task.parent or "",
        "acceptance_criteria": task.acceptance_criteria or "",
        "estimate_hours": float(task.estimate_hours or 0),
        "logged_hours": float(task.logged_hours or 0),
        "age_days": _days_between(task.created_at, now),
        "idle_days": _days_between(task.last_activity_at or task.created_at, now),
        "days_to_due": (task.due - today).days if task.due else None,
        "verified_by": task.verified_by or "",
    }


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
