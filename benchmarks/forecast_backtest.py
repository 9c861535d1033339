"""Deadline-risk backtest of a whole Jira export, against the issue's aims and four baselines.

    python benchmarks/forecast_backtest.py [--jira-export FILE] [--cut 2012-01-02] [--fit]
                                           [--purge] [--simulate 100000]

Replays every Monday of the export (issue 12, item 5). With `--cut`, parameters (when
`--fit`: calibration, P85 stretch, the default threshold) and the baselines' probability
scales are chosen on origins before the cut and every figure printed comes from origins on
or after it. Without `--fit` the model runs with its shipped defaults. `--simulate N` also
times `forecast_many` over N synthetic open tasks (the per-task cost the rules engine pays).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent))

from syncd.connectors.jira.history import history_from_issues, read_export
from syncd.forecast import (
    Evidence,
    FinishedWork,
    OpenItem,
    OpenWork,
    TaskAtMoment,
    forecast_many,
)
from syncd.forecast.backtest import BASELINES, run_backtest

DEFAULT_EXPORT = Path(__file__).resolve().parents[3] / "shared/data/jira-history/duraspace.jsonl.gz"
FIELDS = (
    "auc",
    "brier",
    "brier_skill",
    "precision",
    "recall",
    "median_flag_lead_working_days",
    "flagged_early",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jira-export", type=Path, default=DEFAULT_EXPORT)
    parser.add_argument("--cut", type=date.fromisoformat, default=date(2012, 1, 2))
    parser.add_argument("--fit", action="store_true")
    parser.add_argument(
        "--purge",
        action="store_true",
        help="fit only on pairs whose outcome was decided before the cut",
    )
    parser.add_argument("--simulate", type=int, default=0)
    args = parser.parse_args()

    started = time.perf_counter()
    history = history_from_issues(read_export(args.jira_export))
    loaded = time.perf_counter() - started
    result = run_backtest(history, cut=args.cut, fit=args.fit, purge=args.purge)
    total = time.perf_counter() - started
    metrics = result.metrics
    print(f"export {args.jira_export.name}: {len(history.tasks)} issues, read in {loaded:.1f} s")
    print(
        f"cut {args.cut} (parameters {'fitted' if args.fit else 'shipped'}"
        f"{', purged' if args.purge else ''}); after it: "
        f"{metrics['origins']} Mondays, {metrics['eligible']} eligible pairs, "
        f"{metrics['assessed']} assessed ({metrics['assessed'] / max(metrics['eligible'], 1):.1%}), "
        f"{metrics['scored']} scored, missed share {metrics['base_rate']}"
    )
    print(f"threshold {metrics['threshold']}, calibration {metrics['calibration']}")
    print(f"{'':32s}" + "".join(f"{name:>11s}" for name in ("model", *BASELINES)))
    columns = [metrics, *(result.baselines[name] for name in BASELINES)]
    for field in FIELDS:
        print(f"{field:32s}" + "".join(f"{_cell(c.get(field)):>11s}" for c in columns))
    print(
        f"P85 coverage {metrics['p85_coverage']} over {metrics['p85_pairs']} pairs with a known "
        f"answer; {metrics['p85_coverage_finished']} of the work that finished"
    )
    print("reliability (model): decile, forecasts, mean P, observed, gap")
    for row in metrics["reliability"]:
        if row["count"]:
            gap = abs(row["mean_p"] - row["observed"])
            print(
                f"  {row['bin']} {row['count']:6d} {row['mean_p']:.3f} {row['observed']:.3f} {gap:.3f}"
            )
    print(f"whole backtest: {total:.1f} s (aim <= 60 s)")
    _aims(metrics, result.baselines, total)
    if args.simulate:
        _time_forecast_many(args.simulate)


def _aims(metrics: dict[str, Any] | Any, baselines: Any, seconds: float) -> None:
    best_baseline = max((b.get("auc") or 0.0) for b in baselines.values())
    deciles = [r for r in metrics["reliability"] if r["count"] >= 100]
    worst = max((abs(r["mean_p"] - r["observed"]) for r in deciles), default=0.0)
    checks = [
        ("AUC > 0.80", metrics["auc"], metrics["auc"] is not None and metrics["auc"] > 0.80),
        ("AUC above every baseline", best_baseline, (metrics["auc"] or 0) > best_baseline),
        ("Brier skill > 0.15", metrics["brier_skill"], (metrics["brier_skill"] or 0) > 0.15),
        ("precision >= 0.80", metrics["precision"], (metrics["precision"] or 0) >= 0.80),
        ("recall >= 0.65", metrics["recall"], (metrics["recall"] or 0) >= 0.65),
        ("deciles (>=100) within 0.05", round(worst, 4), worst <= 0.05),
        (
            "P85 coverage 0.80-0.90",
            metrics["p85_coverage"],
            0.80 <= (metrics["p85_coverage"] or 0) <= 0.90,
        ),
        ("<= 60 s", round(seconds, 1), seconds <= 60),
    ]
    for name, value, met in checks:
        print(f"  {'met   ' if met else 'MISSED'} {name}: {value}")


def _time_forecast_many(count: int) -> None:
    now = datetime(2024, 3, 4, tzinfo=UTC)
    finished = [
        FinishedWork(
            key=f"F-{i}",
            owner=f"p{i % 40}",
            team=f"t{i % 4}",
            created_at=now - timedelta(days=5 + i % 90),
            started_at=now - timedelta(days=2 + i % 20),
            finished_at=now - timedelta(days=i % 60),
        )
        for i in range(4000)
    ]
    still_open = [
        OpenWork(f"O-{i}", f"p{i % 40}", f"t{i % 4}", 2, None, now - timedelta(days=i % 300))
        for i in range(2000)
    ]
    evidence = Evidence.from_finished(finished, now, still_open=still_open)
    tasks = [
        TaskAtMoment(
            key=f"T-{i}",
            owner=f"p{i % 40}",
            team=f"t{i % 4}",
            status="in_progress" if i % 3 == 0 else "open",
            created_at=now - timedelta(days=i % 200),
            started_at=now - timedelta(days=i % 10) if i % 3 == 0 else None,
            deadline=now.date() + timedelta(days=1 + i % 60),
            deadline_source="due",
            priority_rank=1 + i % 3,
            blockers=(OpenItem(f"B-{i}", now - timedelta(days=30)),) if i % 50 == 0 else (),
            ahead=i % 12,
            last_activity=now - timedelta(days=i % 30),
        )
        for i in range(count)
    ]
    started = time.perf_counter()
    forecasts = forecast_many(tasks, evidence, now, seed=0)
    seconds = time.perf_counter() - started
    assessed = sum(1 for f in forecasts if f.assessed)
    print(
        f"forecast_many over {count} open tasks: {seconds:.2f} s "
        f"({seconds / count * 1e6:.1f} us a task, {assessed} assessed)"
    )


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


if __name__ == "__main__":
    main()
