"""The reports as rich tables, for reading on a terminal.

Every value from the ledger goes in as `Text` (`terminal_text`): rich would
otherwise read `[...]` in a title as markup (and fail on `[/]`), and control
characters such as ANSI escapes would reach the terminal.
"""

from __future__ import annotations

from itertools import groupby
from typing import Any

from rich.console import Console
from rich.style import Style
from rich.table import Table
from rich.text import Text

from syncd.reports.escape import safe_href
from syncd.reports.escape import terminal_text as plain

SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def render_table(report: dict[str, Any], console: Console) -> None:
    _print_summary(report, console)
    {"ownerless": _ownerless, "violations": _violations, "compliance": _compliance}[
        report["report"]
    ](report, console)


def _print_summary(report: dict[str, Any], console: Console) -> None:
    head = report["summary"]
    percent = head["compliance_percent"]
    console.print(
        f"[bold]{head['open_tasks']}[/] open tasks · [bold]{head['ownerless']}[/] ownerless · "
        f"[bold]{head['open_violations']}[/] open violations · compliance "
        f"[bold]{'n/a' if percent is None else f'{percent}%'}[/]  "
        f"[dim](generated {report['generated_at']})[/]",
        highlight=False,
    )


def _ownerless(report: dict[str, Any], console: Console) -> None:
    if not report["tasks"]:
        console.print("[green]Every open task has exactly one owner.[/]")
        return
    for (source, project), items in groupby(
        report["tasks"], key=lambda t: (t["source"], t["project"])
    ):
        table = Table(title=plain(f"{source} · {project}"), title_justify="left", expand=True)
        for column in ("task", "title", "problem", "age", "reporter", "suggested owner"):
            table.add_column(
                column, overflow="fold", justify="right" if column == "age" else "left"
            )
        for task in items:
            age = "—" if task["age_days"] is None else f"{task['age_days']}d"
            suggestion = plain(task["suggested_owner"] or "—", style="bold")
            suggestion.append("\n").append_text(plain(task["suggestion_reason"], style="dim"))
            table.add_row(
                _link(task["key"], task["url"]),
                plain(task["title"]),
                plain(task["problem_text"]),
                age,
                plain(task["reporter"] or "—"),
                suggestion,
            )
        console.print(table)


def _violations(report: dict[str, Any], console: Console) -> None:
    items = report["violations"]
    table = Table(title=f"{len(items)} open violations", title_justify="left", expand=True)
    for column in ("severity", "rule", "task", "message", "owners", "first seen"):
        table.add_column(column, overflow="fold")
    for item in items:
        task = item["task"]
        table.add_row(
            plain(item["severity"], style=SEVERITY_STYLE.get(item["severity"], "")),
            plain(item["rule"]),
            _link(task["key"], task["url"]),
            plain(item["message"]),
            plain(", ".join(task["owners"]) or "—"),
            item["first_seen"][:16].replace("T", " "),
        )
    console.print(table)


def _compliance(report: dict[str, Any], console: Console) -> None:
    for title, entries, label in (
        ("By rule", report["rules"], lambda e: e["rule"]),
        ("By source", report["sources"], lambda e: e["source"]),
        ("By project", report["projects"], lambda e: f"{e['source']} · {e['project']}"),
    ):
        table = Table(title=title, title_justify="left")
        table.add_column("")
        for column in ("tasks", "compliant", "compliance"):
            table.add_column(column, justify="right")
        for entry in entries:
            table.add_row(
                plain(label(entry)),
                str(entry["tasks"]),
                str(entry["compliant"]),
                _percent(entry["percent"]),
            )
        console.print(table)
    trend = report["trend"]
    line = "  ".join(f"{point['date'][5:]}: {point['open']}" for point in trend)
    console.print(f"[bold]Open violations, last {len(trend)} days[/]\n{line}", highlight=False)


def _percent(value: float | None) -> Text:
    if value is None:
        return Text("n/a", style="dim")
    style = "green" if value >= 90 else "yellow" if value >= 70 else "red"
    return Text(f"{value:.1f}%", style=style)


def _link(key: str, url: str | None) -> Text:
    """The key, a terminal hyperlink when the URL is one a browser may open."""
    href = safe_href(url)
    text = plain(key)
    if href:
        text.stylize(Style(link=href))
    return text
