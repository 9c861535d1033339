"""Deadline risk: will an open task miss its deadline? See `syncd.forecast.model`.

Public API (pure, deterministic for a seed, no I/O):

- `TaskAtMoment`, `OpenItem`, `OpenWork`: an open task as it stood at `as_of`.
- `FinishedWork`, `OpenWork`, `DeadlineOutcome` -> `Evidence.from_finished(finished,
  as_of, params, still_open, outcomes)`: the team's history as known at `as_of`.
- `forecast(task, evidence, as_of, seed=0)` / `forecast_many(tasks, ...)` -> `Forecast`
  (`p_miss` or None when not assessed, `p50`, `p85`, `reasons`, `assessed`,
  `not_assessed_reason`).
- `would_flag(forecast, deadline, as_of)`: the `deadline_risk` rule's default test.
- `count_ahead(task, open_work)`: the owner's queue ahead of a task.
- `simulate` / `from_simulation` / `RawForecasts`: the draws before calibration, for
  refitting (`syncd.forecast.backtest.fit_params`).

Point-in-time histories (`syncd.forecast.timeline`) and the replay
(`syncd.forecast.backtest`) are source-neutral too; a source reads its own change log
into them (`syncd.connectors.jira.history`).
"""

from __future__ import annotations

from syncd.forecast.model import (
    DEFAULT_PARAMS,
    Calibration,
    DeadlineOutcome,
    Evidence,
    FinishedWork,
    Forecast,
    ModelParams,
    OpenItem,
    OpenWork,
    RawForecasts,
    Survival,
    TaskAtMoment,
    WorkStats,
    count_ahead,
    end_of_day,
    forecast,
    forecast_many,
    from_simulation,
    simulate,
    working_days_between,
    would_flag,
)

__all__ = [
    "DEFAULT_PARAMS",
    "Calibration",
    "DeadlineOutcome",
    "Evidence",
    "FinishedWork",
    "Forecast",
    "ModelParams",
    "OpenItem",
    "OpenWork",
    "RawForecasts",
    "Survival",
    "TaskAtMoment",
    "WorkStats",
    "count_ahead",
    "end_of_day",
    "forecast",
    "forecast_many",
    "from_simulation",
    "simulate",
    "working_days_between",
    "would_flag",
]
