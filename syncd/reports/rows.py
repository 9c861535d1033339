"""One flat row per report item: what CSV and Markdown print, the same rows as JSON.

The ownerless report's rows are its `tasks`; the violations report's are its
`violations` with the task's fields beside them; the compliance report's are its
`sources`, `projects` and `rules` entries, told apart by `level` (the trend is a
chart, not rows, and stays in JSON and HTML).
"""

from __future__ import annotations

from typing import Any

Row = dict[str, str | int | float | None]

TASK_COLUMNS = ("source", "project", "key", "title", "status", "owners", "due", "priority", "url")
OWNERLESS_COLUMNS = (
    *TASK_COLUMNS, "problem", "problem_text", "age_days", "reporter",
    "suggested_owner", "suggestion_reason",
)  # fmt: skip
VIOLATION_COLUMNS = (
    "rule", "kind", "severity", "message", "first_seen",
    *(f"task_{name}" for name in TASK_COLUMNS),
)  # fmt: skip
COMPLIANCE_COLUMNS = ("level", "source", "project", "rule", "tasks", "compliant", "percent")


def columns(report: dict[str, Any]) -> tuple[str, ...]:
    return {
        "ownerless": OWNERLESS_COLUMNS,
        "violations": VIOLATION_COLUMNS,
        "compliance": COMPLIANCE_COLUMNS,
    }[report["report"]]


def rows(report: dict[str, Any]) -> list[Row]:
    kind = report["report"]
    if kind == "ownerless":
        return [_flat(task, OWNERLESS_COLUMNS) for task in report["tasks"]]
    if kind == "violations":
        return [_violation_row(item) for item in report["violations"]]
    return _compliance_rows(report)


def _scalar(value: Any) -> str | int | float | None:
    if isinstance(value, list):
        return "; ".join(str(item) for item in value)
    if value is None or isinstance(value, str | int | float):
        return value
    return str(value)


def _flat(item: dict[str, Any], names: tuple[str, ...]) -> Row:
    return {name: _scalar(item.get(name)) for name in names}


def _violation_row(item: dict[str, Any]) -> Row:
    row = _flat(item, VIOLATION_COLUMNS[:5])
    row.update({f"task_{name}": _scalar(item["task"].get(name)) for name in TASK_COLUMNS})
    return row


def _compliance_rows(report: dict[str, Any]) -> list[Row]:
    out: list[Row] = []
    for entry in report["sources"]:
        out.append(_flat({"level": "source", **entry}, COMPLIANCE_COLUMNS))
    for entry in report["projects"]:
        out.append(_flat({"level": "project", **entry}, COMPLIANCE_COLUMNS))
    for entry in report["rules"]:
        out.append(_flat({"level": "rule", **entry}, COMPLIANCE_COLUMNS))
    return out
