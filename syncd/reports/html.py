"""The report as one self-contained HTML page: inline CSS and SVG, no script, no network."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from itertools import groupby
from typing import Any

from jinja2 import Environment, StrictUndefined, Template
from markupsafe import Markup

from syncd.reports.svg import bar_chart, line_chart

TITLES = {
    "ownerless": "Ownerless tasks",
    "violations": "Open violations",
    "compliance": "Compliance",
}
SEVERITY_COLORS = {"error": "#dc2626", "warning": "#d97706", "info": "#0284c7"}


@cache
def _template() -> Template:
    text = files("syncd.reports").joinpath("report.html.j2").read_text(encoding="utf-8")
    env = Environment(
        autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    env.filters["percent"] = _percent
    env.filters["tone"] = _tone
    return env.from_string(text)


def render_html(report: dict[str, Any]) -> str:
    head = report["summary"]
    charts = {
        "by_rule": Markup(
            bar_chart(
                list(head["open_violations_by_rule"].items()), title="Open violations per rule"
            )
        ),
        "trend": Markup(
            line_chart(
                [(p["date"], p["open"]) for p in head["trend"]],
                title="Open violations per day",
            )
        ),
    }
    if report["report"] == "ownerless":
        charts["groups"] = Markup(
            bar_chart(
                [(f"{g['source']} · {g['project']}", g["count"]) for g in report["groups"]],
                title="Ownerless tasks per project",
                color="#e11d48",
            )
        )
    return _template().render(
        report=report,
        head=head,
        title=TITLES[report["report"]],
        charts=charts,
        groups=_groups(report),
        severity_colors=SEVERITY_COLORS,
    )


def _groups(report: dict[str, Any]) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """Items grouped by source and project, keeping the report's order inside a group."""
    if report["report"] == "ownerless":
        items, place = report["tasks"], lambda t: (t["source"], t["project"])
    elif report["report"] == "violations":
        items = sorted(
            report["violations"], key=lambda v: (v["task"]["source"], v["task"]["project"])
        )
        place = lambda v: (v["task"]["source"], v["task"]["project"])  # noqa: E731
    else:
        return []
    return [
        (source, project, list(group)) for (source, project), group in groupby(items, key=place)
    ]


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}%" if value == int(value) else f"{value:.1f}%"


def _tone(value: float | None) -> str:
    if value is None:
        return "none"
    return "good" if value >= 90 else "fair" if value >= 70 else "poor"
