"""`syncd forecast --format html`: one self-contained page, no script, no network.

Built with the audit report's conventions (`syncd.reports`): its stylesheet (plus a few
rules of this page's own), hashed into a Content-Security-Policy that allows nothing
else; every value autoescaped after `html_text` made it printable; links only to http,
https and mailto targets. The chart is inline SVG made here, every label escaped: each
at-risk task's P50-P85 finish range against its deadline.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache
from html import escape
from importlib.resources import files
from typing import Any

from jinja2 import Environment, StrictUndefined, Template
from markupsafe import Markup

from syncd.reports.escape import content_security_policy, html_text, safe_href

__all__ = ["finish_chart", "render_page"]

_SHOWN = 25  # tasks in the chart: the riskiest
_EXTRA_CSS = """
  svg.finish .range { fill: #f59e0b; } svg.finish .late { fill: #dc2626; }
  svg.finish .deadline { stroke: #0f172a; stroke-width: 2; }
  svg.finish .today { stroke: #94a3b8; stroke-dasharray: 3 3; }
  svg.finish .lbl { fill: #334155; } svg.finish .axis { fill: #94a3b8; font-size: 11px; }
  .pmiss { font-weight: 700; color: var(--poor); }
  .legend { color: var(--muted); font-size: 12px; margin-top: 6px; }
"""


@cache
def _stylesheet() -> str:
    base = files("syncd.reports").joinpath("report.css").read_text(encoding="utf-8")
    return base + _EXTRA_CSS


@cache
def _template() -> Template:
    text = files("syncd.forecast").joinpath("forecast.html.j2").read_text(encoding="utf-8")
    env = Environment(
        autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        finalize=_finalize,
    )  # fmt: skip
    env.filters["href"] = safe_href
    return env.from_string(text)


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return html_text(value)


def render_page(outlook: dict[str, Any]) -> str:
    stylesheet = _stylesheet()
    return _template().render(
        outlook=outlook,
        chart=Markup(
            finish_chart(outlook["at_risk"][:_SHOWN], date.fromisoformat(outlook["as_of"][:10]))
        ),
        stylesheet=Markup(stylesheet),  # syncd's own text, hashed in the CSP
        csp=content_security_policy(stylesheet),
    )


def finish_chart(tasks: list[dict[str, Any]], today: date, *, width: int = 760) -> str:
    """One row per task: its P50-P85 finish range (amber, red past the deadline) and its
    deadline as a dark tick, on a shared time axis from today."""
    if not tasks:
        return '<svg class="chart finish" role="img" viewBox="0 0 760 40"><title>No task at risk</title><text x="8" y="24" class="axis">No task at risk.</text></svg>'
    days = [date.fromisoformat(t[k]) for t in tasks for k in ("p50", "p85", "deadline") if t[k]]
    end = max([*days, today + timedelta(days=7)])
    span = max((end - today).days, 1)
    left, right, row, top = 190, 20, 26, 24
    plot = width - left - right
    height = top + row * len(tasks) + 26

    def x(day: date) -> float:
        return round(left + plot * max((day - today).days, 0) / span, 1)

    parts = [f'<line class="today" x1="{left}" x2="{left}" y1="{top - 6}" y2="{height - 22}"/>']
    for index, task in enumerate(tasks):
        y = top + index * row
        deadline = date.fromisoformat(task["deadline"])
        p50 = date.fromisoformat(task["p50"]) if task["p50"] else today
        p85 = date.fromisoformat(task["p85"]) if task["p85"] else p50
        start, stop = x(p50), max(x(p85), x(p50) + 2)
        tip = escape(
            f"{task['key']}: P(miss) {task['p_miss']:.0%}, P50 {task['p50']}, P85 {task['p85']}, "
            f"deadline {task['deadline']}"
        )
        parts.append(
            f'<text x="{left - 8}" y="{y + 14}" text-anchor="end" class="lbl">'
            f"{escape(_clip(task['key'], 26))}</text>"
            f'<rect class="range" x="{start}" y="{y + 3}" width="{round(stop - start, 1)}" '
            f'height="14" rx="3"><title>{tip}</title></rect>'
        )
        if p85 > deadline:
            late_from = max(x(deadline), start)
            parts.append(
                f'<rect class="late" x="{late_from}" y="{y + 3}" '
                f'width="{round(max(stop - late_from, 1), 1)}" height="14" rx="3">'
                f"<title>{tip}</title></rect>"
            )
        dx = x(deadline)
        parts.append(f'<line class="deadline" x1="{dx}" x2="{dx}" y1="{y}" y2="{y + 20}"/>')
    parts.append(
        f'<text x="{left}" y="{height - 6}" class="axis">{today.isoformat()}</text>'
        f'<text x="{width - right}" y="{height - 6}" text-anchor="end" class="axis">'
        f"{end.isoformat()}</text>"
    )
    return (
        f'<svg class="chart finish" role="img" viewBox="0 0 {width} {height}" '
        f'width="100%" data-tasks="{len(tasks)}"><title>Finish range (P50 to P85) against '
        f"the deadline</title>{''.join(parts)}</svg>"
    )


def _clip(text: str, limit: int) -> str:
    text = html_text(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
