"""Running `syncd forecast backtest` on a Jira export and showing its figures."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from syncd.forecast.backtest import BASELINES, BacktestResult, run_backtest
from syncd.forecast.timeline import History
from syncd.ledger.repository import Ledger

__all__ = ["backtest_jira_export", "backtest_ledger", "render_table", "to_json_text"]

_SHOWN = (
    ("scored", "pairs scored"),
    ("base_rate", "missed share"),
    ("auc", "AUC"),
    ("brier", "Brier"),
    ("brier_skill", "Brier skill"),
    ("precision", "precision (>=3 wd)"),
    ("recall", "recall (>=3 wd)"),
    ("median_flag_lead_working_days", "median flag lead (wd)"),
)


def backtest_jira_export(
    path: Path,
    *,
    start: date | None,
    end: date | None,
    cut: date | None,
    fit: bool,
    seed: int,
    progress_console: Console,
) -> BacktestResult:
    """Reads the export through the Jira connector's history reader, then replays it."""
    from syncd.connectors.jira.history import history_from_issues, read_export

    history = history_from_issues(read_export(path))
    return _replay(history, start, end, cut, fit, seed, progress_console)


def backtest_ledger(
    ledger: Ledger,
    *,
    start: date | None,
    end: date | None,
    cut: date | None,
    fit: bool,
    seed: int,
    progress_console: Console,
) -> BacktestResult:
    """Replays the ledger's own history (tasks, status and field history) the same way."""
    from syncd.forecast.ledger_history import history_from_ledger

    return _replay(history_from_ledger(ledger), start, end, cut, fit, seed, progress_console)


def _replay(
    history: History,
    start: date | None,
    end: date | None,
    cut: date | None,
    fit: bool,
    seed: int,
    progress_console: Console,
) -> BacktestResult:
    columns = (
        TextColumn("replaying Mondays"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=progress_console, transient=True) as progress:
        bar = progress.add_task("replay", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        return run_backtest(
            history, start=start, end=end, cut=cut, fit=fit, seed=seed, progress=advance
        )


def to_json_text(result: BacktestResult) -> str:
    return orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n"


def render_table(result: BacktestResult, console: Console) -> None:
    metrics = result.metrics
    console.print(
        f"{metrics['eligible']} eligible pairs, {metrics['assessed']} assessed, "
        f"{metrics['origins']} Mondays"
        + (f" from {metrics['cut']} (parameters chosen before it)" if metrics["cut"] else "")
        + f"; flag threshold {metrics['threshold']}",
        highlight=False,
    )
    table = Table(title="deadline risk vs baselines, same pairs", title_justify="left")
    table.add_column("metric")
    for name in ("model", *BASELINES):
        table.add_column(name, justify="right")
    columns: list[Mapping[str, Any]] = [metrics, *(result.baselines[b] for b in BASELINES)]
    for field, label in _SHOWN:
        table.add_row(label, *(_cell(column.get(field)) for column in columns))
    console.print(table)
    console.print(
        f"P85 coverage {_cell(metrics.get('p85_coverage'))} "
        f"(of finished work: {_cell(metrics.get('p85_coverage_finished'))})",
        highlight=False,
    )
    reliability = Table(title="reliability by decile (model)", title_justify="left")
    for column in ("P(miss)", "forecasts", "mean P", "observed"):
        reliability.add_column(column, justify="right")
    for row in metrics.get("reliability", []):
        reliability.add_row(
            row["bin"], str(row["count"]), _cell(row["mean_p"]), _cell(row["observed"])
        )
    console.print(reliability)


def _cell(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
