"""Deadline risk: will an open task miss its deadline? See `syncd.forecast.model`.

Public API (pure, deterministic for a seed, no I/O):

- `TaskAtMoment`, `OpenItem`, `OpenWork`: an open task as it stood at `as_of`.
- `FinishedWork` -> `Evidence.from_finished(finished, as_of)`: the team's history.
- `forecast(task, evidence, as_of, seed=0)` / `forecast_many(tasks, ...)` -> `Forecast`
  (`p_miss` or None when not assessed, `p50`, `p85`, `reasons`, `assessed`,
  `not_assessed_reason`).
- `would_flag(forecast, deadline, as_of)`: the `deadline_risk` rule's default test.
- `count_ahead(task, open_work)`: the owner's queue ahead of a task.
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
