"""`syncd forecast`: the ledger's open work at risk of missing its deadline, and each
person's load against their throughput.

`build_outlook` forecasts every open task with a deadline through the same adapter
as the `deadline_risk` rule (`syncd.forecast.ledger.RiskBoard`), as of `as_of`: only
work finished by then is evidence and only work created by then is forecast (deadline
moves and fix-version dates are those known by then; the task's other fields are the
ledger's current ones). A task is flagged as the first `deadline_risk` rule of the
configuration would flag it (else with the rule's defaults). Renderers: `render_table` (rich),
`to_json_text`, and `syncd.forecast.page.render_page` (HTML).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from syncd.forecast.ledger import RiskBoard, TaskRisk
from syncd.forecast.model import would_flag
from syncd.ledger.repository import Ledger
from syncd.reports.escape import json_text
from syncd.reports.escape import terminal_text as plain

__all__ = ["FlagRule", "build_outlook", "render_table", "to_json_text"]


@dataclass(frozen=True)
class FlagRule:
    """The `deadline_risk` parameters a task is flagged with."""

    threshold: float | None = None
    min_lead: int = 3
    horizon: int | None = None


def build_outlook(
    ledger: Ledger, as_of: datetime, *, owner: str | None = None, rule: FlagRule = FlagRule()
) -> dict[str, Any]:
    from syncd.rules.store import RuleStore

    board = RiskBoard(ledger, history_as_of=as_of)
    board.replace_all(RuleStore(ledger).load_all())  # with urls: the page links each task
    created_by = [
        view.id
        for view in board.views.values()
        if view.created_at is not None and view.created_at <= as_of
    ]
    risks = board.forecasts(created_by, as_of)
    evidence = board.evidence_at(as_of)
    tasks = [_task_json(board, risk, as_of, rule) for risk in risks.values()]
    if owner is not None:
        tasks = [t for t in tasks if t["owner"] == owner]
    assessed = [t for t in tasks if t["assessed"]]
    assessed.sort(key=lambda t: (-t["p_miss"], t["deadline"], t["key"]))
    not_assessed = sorted((t for t in tasks if not t["assessed"]), key=lambda t: t["key"])
    people = _people(board, assessed + not_assessed, evidence, owner)
    return {
        "as_of": as_of.isoformat(),
        "threshold": board.params.threshold if rule.threshold is None else rule.threshold,
        "min_lead": rule.min_lead,
        "horizon": rule.horizon,
        "owner": owner,
        "at_risk": [t for t in assessed if t["flag"]],
        "forecasts": assessed,
        "not_assessed": not_assessed,
        "people": people,
    }


def _task_json(board: RiskBoard, risk: TaskRisk, as_of: datetime, rule: FlagRule) -> dict[str, Any]:
    view = board.views[risk.task_id]
    forecast = risk.forecast
    flag = would_flag(
        forecast, risk.moment.deadline, as_of,
        threshold=rule.threshold, min_lead=rule.min_lead, horizon=rule.horizon,
    )  # fmt: skip
    return {
        "key": view.key,
        "source": view.source,
        "title": view.title,
        "url": view.url,
        "owner": risk.moment.owner,
        "status": view.status,
        "deadline": risk.moment.deadline.isoformat(),
        "assessed": forecast.assessed,
        "p_miss": forecast.p_miss,
        "p50": _day(forecast.p50),
        "p85": _day(forecast.p85),
        "flag": flag,
        "reasons": list(forecast.reasons),
        "not_assessed_reason": forecast.not_assessed_reason,
        "ahead": risk.moment.ahead,
    }


def _people(
    board: RiskBoard, tasks: list[dict[str, Any]], evidence: Any, only: str | None
) -> list[dict[str, Any]]:
    """Per owner: open work, the share with a deadline, recent throughput, weeks of work."""
    open_by: dict[str, int] = {}
    for view in board.views.values():
        if view.closed or not view.owners:
            continue
        open_by[view.owners[0]] = open_by.get(view.owners[0], 0) + 1
    rows: list[dict[str, Any]] = []
    for person, count in open_by.items():
        if only is not None and person != only:
            continue
        stats = evidence.people.get(person)
        weekly = round(stats.weekly_throughput, 2) if stats is not None else 0.0
        mine = [t for t in tasks if t["owner"] == person]
        rows.append(
            {
                "owner": person,
                "open": count,
                "with_deadline": len(mine),
                "at_risk": sum(1 for t in mine if t["flag"]),
                "weekly_throughput": weekly,
                "weeks_of_work": round(count / weekly, 1) if weekly > 0 else None,
            }
        )
    # Most weeks of work first; people without recent throughput last.
    rows.sort(key=lambda r: (r["weeks_of_work"] is None, -(r["weeks_of_work"] or 0.0), r["owner"]))
    return rows


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def to_json_text(outlook: dict[str, Any]) -> str:
    return json_text(orjson.dumps(outlook, option=orjson.OPT_INDENT_2).decode()) + "\n"


def render_table(outlook: dict[str, Any], console: Console) -> None:
    at_risk = outlook["at_risk"]
    console.print(
        f"Deadline risk as of {outlook['as_of'][:16].replace('T', ' ')} UTC: "
        f"{len(at_risk)} at risk of {len(outlook['forecasts'])} forecast "
        f"(threshold {outlook['threshold']:.2f}), {len(outlook['not_assessed'])} not assessed",
        highlight=False,
        markup=False,
    )
    table = Table(title="at risk, highest first", title_justify="left")
    for column, justify in (
        ("task", "left"),
        ("owner", "left"),
        ("P(miss)", "right"),
        ("P85 finish", "right"),
        ("deadline", "right"),
        ("why", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]  # fmt: skip
    for task in at_risk:
        table.add_row(
            plain(task["key"]),
            plain(task["owner"] or "—"),
            f"{task['p_miss']:.0%}",
            task["p85"] or "—",
            task["deadline"],
            plain("; ".join(task["reasons"]), multiline=True),
        )
    console.print(table)
    people = Table(title="load against throughput", title_justify="left")
    for column in ("owner", "open", "with deadline", "at risk", "done / week", "weeks of work"):
        people.add_column(column, justify="left" if column == "owner" else "right")
    for row in outlook["people"]:
        people.add_row(
            plain(row["owner"]),
            str(row["open"]),
            str(row["with_deadline"]),
            str(row["at_risk"]),
            f"{row['weekly_throughput']:.1f}",
            "—" if row["weeks_of_work"] is None else f"{row['weeks_of_work']:.1f}",
        )
    console.print(people)
    for task in outlook["not_assessed"][:10]:
        console.print(
            plain(f"not assessed: {task['key']}: {task['not_assessed_reason']}"), highlight=False
        )


def start_of(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)
