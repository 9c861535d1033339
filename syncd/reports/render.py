"""Present a built report: terminal table, JSON, CSV, Markdown or HTML."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

from rich.console import Console

from syncd.reports.escape import csv_cell, json_text, markdown_cell
from syncd.reports.html import TITLES, render_html
from syncd.reports.rows import columns, rows
from syncd.reports.table import render_table

FORMATS = ("table", "json", "csv", "md", "html")


def render_json(report: dict[str, Any]) -> str:
    return json_text(json.dumps(report, indent=2, ensure_ascii=False)) + "\n"


def render_csv(report: dict[str, Any]) -> str:
    """Every text cell quoted and formula-safe (OWASP); numbers stay numbers."""
    buffer = io.StringIO()
    writer = csv.DictWriter(
        buffer, fieldnames=columns(report), lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC
    )
    writer.writeheader()
    writer.writerows({name: csv_cell(value) for name, value in row.items()} for row in rows(report))
    return buffer.getvalue()


def render_markdown(report: dict[str, Any]) -> str:
    head = report["summary"]
    lines = [
        f"# {TITLES[report['report']]}",
        "",
        f"Generated {report['generated_at']}. {head['open_tasks']} open tasks, "
        f"{head['ownerless']} ownerless, {head['open_violations']} open violations, "
        f"compliance {_percent(head['compliance_percent'])}.",
        "",
    ]
    names = columns(report)
    lines.append("| " + " | ".join(names) + " |")
    lines.append("|" + "---|" * len(names))
    for row in rows(report):
        lines.append("| " + " | ".join(markdown_cell(row[name]) for name in names) + " |")
    return "\n".join(lines) + "\n"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value}%"


def _render_table(report: dict[str, Any]) -> str:
    console = Console(file=io.StringIO(), width=160, record=True)
    render_table(report, console)
    return console.export_text()


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "table": _render_table,
    "json": render_json,
    "csv": render_csv,
    "md": render_markdown,
    "html": render_html,
}


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt not in RENDERERS:
        raise ValueError(f"unknown format {fmt!r} (one of: {', '.join(FORMATS)})")
    return RENDERERS[fmt](report)
