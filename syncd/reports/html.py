"""The report as one self-contained HTML page: inline CSS and SVG, no script, no network.

Every `{{ … }}` value is autoescaped after `finalize` made it printable (no
control or bidi characters, capped); links keep only http, https and mailto
targets (`href`); and the page's Content-Security-Policy allows its one
stylesheet, by hash, and nothing else: no script, no request, no inline style.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from itertools import groupby
from typing import Any

from jinja2 import Environment, StrictUndefined, Template
from markupsafe import Markup

from syncd.reports.escape import content_security_policy, html_text, safe_href
from syncd.reports.svg import bar_chart, line_chart

TITLES = {
    "ownerless": "Ownerless tasks",
    "violations": "Open violations",
    "compliance": "Compliance",
}


@cache
def _template() -> Template:
    text = files("syncd.reports").joinpath("report.html.j2").read_text(encoding="utf-8")
    env = Environment(
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_finalize,
    )
    env.filters["percent"] = _percent
    env.filters["tone"] = _tone
    env.filters["href"] = safe_href
    return env.from_string(text)


@cache
def _stylesheet() -> str:
    return files("syncd.reports").joinpath("report.css").read_text(encoding="utf-8")


def _finalize(value: Any) -> Any:
    """Text printable before autoescape; the page's own markup (charts) as it is."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return html_text(value)


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
        stylesheet=Markup(_stylesheet()),  # syncd's own file, hashed in the CSP
        csp=content_security_policy(_stylesheet()),
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
