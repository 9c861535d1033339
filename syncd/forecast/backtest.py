"""Point-in-time replay of a history (`syncd.forecast.timeline.History`) and its scores.

The contract (issue 12, item 5), so that two careful implementations produce the same
pairs: origins every Monday 00:00 UTC from `start` to `end` (default: the first Monday at
least 90 days after the earliest creation, and the latest timestamp); a task is eligible
at t when created at or before t, not in a done status at t, with a deadline known at t
(its due date, else the earliest release date among its fix versions) on or after t's
day; it missed when it did not enter a done status after t and before the end of that
deadline day. Pairs whose outcome the data cannot tell, and tasks whose final resolution
says the work was not done, are forecast but left out of the metrics.

Every forecast for t is built from `History` queried at t only (release dates excepted,
which Jira does not date), so a forecast does not change when the history is cut later.

The same pairs are scored for four baselines: the base rate, "fewer days left is
riskier", a commercial-badge rule (overdue / no activity for 48 h / blocked) and a
straight-line velocity date (the team's open work due first, at its recent throughput).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np

from syncd.forecast.model import (
    DEFAULT_PARAMS,
    Calibration,
    DeadlineOutcome,
    Evidence,
    FinishedWork,
    FloatArray,
    Forecast,
    ModelParams,
    OpenItem,
    OpenWork,
    RawForecasts,
    TaskAtMoment,
    end_of_day,
    from_simulation,
    simulate,
    working_days_between,
    would_flag,
)
from syncd.forecast.timeline import History, TaskTimeline

__all__ = [
    "EXCLUDED_RESOLUTIONS",
    "BacktestResult",
    "Pair",
    "default_origins",
    "fit_params",
    "replay",
    "run_backtest",
]

EXCLUDED_RESOLUTIONS = frozenset(
    {
        "won't fix",
        "won't do",
        "duplicate",
        "cannot reproduce",
        "invalid",
        "incomplete",
        "not a problem",
        "later",
    }
)
BASELINES = ("base_rate", "days_left", "badge", "velocity")
_BADGE_IDLE = timedelta(hours=48)
_VELOCITY_WINDOW = timedelta(days=84)

Progress = Callable[[int, int], None]


@dataclass
class Pair:
    """One eligible (task, origin): the forecast, the baselines' raw scores, the outcome."""

    task: TaskAtMoment
    as_of: datetime
    forecast: Forecast
    features: FloatArray
    p50_days: float  # simulated, before the calibration's stretch
    p85_days: float
    driver: str
    missed: bool | None  # None: the data cannot tell
    excluded: bool  # final resolution says the work was not done
    finished_at: datetime | None  # first entry into a done status after as_of
    scores: dict[str, float]  # baseline -> raw score (higher: riskier)
    evidence: Evidence

    @property
    def working_days_left(self) -> int:
        return working_days_between(self.as_of.date(), self.task.deadline)

    @property
    def scored(self) -> bool:
        return self.forecast.assessed and self.missed is not None and not self.excluded


@dataclass(frozen=True)
class BacktestResult:
    pairs: Sequence[Pair]
    params: ModelParams
    metrics: Mapping[str, Any]
    baselines: Mapping[str, Mapping[str, Any]]
    cut: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "forecasts": [_pair_json(pair, self.params) for pair in self.pairs],
            "metrics": dict(self.metrics),
            "baselines": {name: dict(values) for name, values in self.baselines.items()},
        }


# --- origins and replay ------------------------------------------------------------------


def default_origins(
    history: History, start: date | None = None, end: date | None = None
) -> list[datetime]:
    """Mondays 00:00 UTC on or after `start` and on or before `end` (UTC dates).

    Default start: the first Monday at least 90 days after the earliest creation; default
    end: the latest timestamp in the history."""
    if start is None:
        threshold = history.earliest + timedelta(days=90)
        start = threshold.astimezone(UTC).date()
        if _midnight(start) < threshold:
            start += timedelta(days=1)
    if end is None:
        end = history.latest.astimezone(UTC).date()
    first = start + timedelta(days=(7 - start.weekday()) % 7)
    count = max(0, (end - first).days // 7 + 1)
    return [_midnight(first + timedelta(weeks=week)) for week in range(count)]


class _Index:
    """What replay needs fast: done / in-progress entries and children, per task."""

    def __init__(self, history: History) -> None:
        self.history = history
        self.by_key = {task.key: i for i, task in enumerate(history.tasks)}
        self.done_entries: list[list[datetime]] = []
        self.progress_entries: list[list[datetime]] = []
        self.children: dict[str, list[int]] = defaultdict(list)
        for i, task in enumerate(history.tasks):
            done, progress = self._entries(task)
            self.done_entries.append(done)
            self.progress_entries.append(progress)
            for parent in set(task.parent.values):
                if parent is not None:
                    self.children[parent].append(i)
        self.outcomes = sorted(
            (o for i in range(len(history.tasks)) for o in self._outcomes(i)),
            key=lambda o: o.decided_at,
        )
        self.decided = [o.decided_at for o in self.outcomes]

    def _outcomes(self, i: int) -> list[DeadlineOutcome]:
        """Each deadline the task held that came to a decision while it was the deadline."""
        task = self.history.tasks[i]
        changes = {at for at, _ in task.due.changes_until(self.history.latest)}
        changes |= {at for at, _ in task.fix_versions.changes_until(self.history.latest)}
        starts = sorted({task.created_at} | {max(at, task.created_at) for at in changes})
        out = []
        for number, start in enumerate(starts):
            deadline = _deadline(task, self.history, start)
            if deadline is None or self.history.is_done(task.status.at(start)):
                continue
            ends = starts[number + 1] if number + 1 < len(starts) else None
            closes = end_of_day(deadline[0])
            done = self.first_done_after(i, start)
            if done is not None and (ends is None or done < ends) and done <= closes:
                out.append(DeadlineOutcome(task.key, task.team, deadline[0], done, False))
            elif (ends is None or closes < ends) and (done is None or done > closes):
                out.append(DeadlineOutcome(task.key, task.team, deadline[0], closes, True))
        return out

    def outcomes_by(self, moment: datetime) -> Sequence[DeadlineOutcome]:
        return self.outcomes[: bisect_right(self.decided, moment)]

    def _entries(self, task: TaskTimeline) -> tuple[list[datetime], list[datetime]]:
        done: list[datetime] = []
        progress: list[datetime] = []
        was_done = was_progress = False
        for at, status in zip(task.status.times, task.status.values, strict=True):
            at = max(at, task.created_at)
            is_done = self.history.is_done(status)
            is_progress = self.history.is_in_progress(status)
            if is_done and not was_done:
                done.append(at)
            if is_progress and not was_progress:
                progress.append(at)
            was_done, was_progress = is_done, is_progress
        return done, progress

    def started(self, i: int, moment: datetime) -> datetime | None:
        entries = self.progress_entries[i]
        stop = bisect_right(entries, moment)
        return entries[0] if stop else None

    def first_done_after(self, i: int, moment: datetime) -> datetime | None:
        entries = self.done_entries[i]
        index = bisect_right(entries, moment)
        return entries[index] if index < len(entries) else None

    def last_done_by(self, i: int, moment: datetime) -> datetime | None:
        entries = self.done_entries[i]
        index = bisect_right(entries, moment)
        return entries[index - 1] if index else None


def replay(
    history: History,
    origins: Sequence[datetime],
    *,
    params: ModelParams = DEFAULT_PARAMS,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[Pair]:
    index = _Index(history)
    pairs: list[Pair] = []
    for number, origin in enumerate(origins):
        pairs.extend(_pairs_at(index, origin, params, seed))
        if progress is not None:
            progress(number + 1, len(origins))
    return pairs


def _pairs_at(index: _Index, t: datetime, params: ModelParams, seed: int) -> list[Pair]:
    history = index.history
    tasks = history.tasks
    finished: list[FinishedWork] = []
    open_rows: list[int] = []
    for i, task in enumerate(tasks):
        if task.created_at > t:
            continue
        if history.is_done(task.status.at(t)):
            work = _finished(index, i, t)
            if work is not None:
                finished.append(work)
        else:
            open_rows.append(i)
    deadlines = {i: _deadline(tasks[i], history, t) for i in open_rows}
    still_open = [_open_work(index, i, t, deadlines[i]) for i in open_rows]
    evidence = Evidence.from_finished(finished, t, params, still_open, index.outcomes_by(t))
    ahead = _queue_positions(tasks, open_rows, deadlines, t)
    eligible = [i for i in open_rows if (d := deadlines[i]) is not None and d[0] >= t.date()]
    moments = [_task_at(index, i, t, deadlines[i], ahead.get(i, 0)) for i in eligible]
    if not moments:
        return []
    raw = simulate(moments, evidence, t, seed=seed, params=params)
    forecasts = from_simulation(moments, raw, evidence, t, params)
    velocity = _velocity_scores(tasks, open_rows, deadlines, finished, t)
    pairs = []
    for row, (i, moment, forecast) in enumerate(zip(eligible, moments, forecasts, strict=True)):
        task = tasks[i]
        finished_at = index.first_done_after(i, t)
        pairs.append(
            Pair(
                task=moment,
                as_of=t,
                forecast=forecast,
                features=raw.features[row],
                p50_days=float(raw.p50_days[row]),
                p85_days=float(raw.p85_days[row]),
                driver=raw.driver[row],
                missed=_missed(finished_at, moment.deadline, history.latest),
                excluded=(task.final_resolution or "").casefold() in EXCLUDED_RESOLUTIONS,
                finished_at=finished_at,
                scores=_baseline_scores(moment, t, history, task, velocity[i]),
                evidence=evidence,
            )
        )
    return pairs


def _finished(index: _Index, i: int, t: datetime) -> FinishedWork | None:
    task = index.history.tasks[i]
    resolution = task.resolution.at(t)
    if resolution is not None and resolution.casefold() in EXCLUDED_RESOLUTIONS:
        return None  # closed without the work: no evidence of how long work takes
    at = index.last_done_by(i, t)
    if at is None:
        return None
    return FinishedWork(
        key=task.key,
        owner=task.owner.at(at),
        team=task.team,
        created_at=task.created_at,
        started_at=index.started(i, at),
        finished_at=at,
        estimate_hours=task.estimate_hours.at(at),
        logged_hours=task.logged_hours.at(at),
    )


def _open_work(index: _Index, i: int, t: datetime, deadline: tuple[date, str] | None) -> OpenWork:
    task = index.history.tasks[i]
    in_progress = index.history.is_in_progress(task.status.at(t))
    return OpenWork(
        key=task.key,
        owner=task.owner.at(t),
        team=task.team,
        priority_rank=task.priority_rank.at(t),
        deadline=deadline[0] if deadline else None,
        created_at=task.created_at,
        started_at=index.started(i, t) if in_progress else None,
    )


def _deadline(task: TaskTimeline, history: History, t: datetime) -> tuple[date, str] | None:
    due = task.due.at(t)
    if due is not None:
        return due, "due"
    released = [
        history.version_dates[v] for v in task.fix_versions.at(t) if v in history.version_dates
    ]
    return (min(released), "fix_version") if released else None


def _moves(task: TaskTimeline, history: History, t: datetime) -> int:
    """Times a known deadline changed up to t (a due date moved, a fix version swapped)."""
    stamps = sorted(
        {at for at, _ in task.due.changes_until(t)}
        | {at for at, _ in task.fix_versions.changes_until(t)}
    )
    moves = 0
    previous = _deadline(task, history, task.created_at)
    for at in stamps:
        current = _deadline(task, history, at)
        if previous is not None and current != previous:
            moves += 1
        previous = current
    return moves


def _queue_positions(
    tasks: Sequence[TaskTimeline],
    open_rows: Sequence[int],
    deadlines: Mapping[int, tuple[date, str] | None],
    t: datetime,
) -> dict[int, int]:
    """Per open task, the owner's open tasks strictly before it (priority, deadline, age)."""
    by_owner: dict[str, list[tuple[tuple[int, date, datetime], int]]] = defaultdict(list)
    for i in open_rows:
        owner = tasks[i].owner.at(t)
        if owner is None:
            continue
        rank = tasks[i].priority_rank.at(t)
        deadline = deadlines[i]
        key = (
            rank if rank is not None else 99,
            deadline[0] if deadline else date.max,
            tasks[i].created_at,
        )
        by_owner[owner].append((key, i))
    ahead: dict[int, int] = {}
    for rows in by_owner.values():
        keys = sorted(key for key, _ in rows)
        for key, i in rows:
            ahead[i] = bisect_left(keys, key)
    return ahead


def _task_at(
    index: _Index, i: int, t: datetime, deadline: tuple[date, str] | None, ahead: int
) -> TaskAtMoment:
    history = index.history
    task = history.tasks[i]
    assert deadline is not None
    status = task.status.at(t)
    in_progress = history.is_in_progress(status)
    blockers = tuple(_open_item(index, j, t) for j in _open_blockers(index, task, t))
    subtasks = tuple(
        _open_item(index, j, t)
        for j in index.children.get(task.key, ())
        if history.tasks[j].parent.at(t) == task.key and _is_open(index, j, t)
    )
    return TaskAtMoment(
        key=task.key,
        owner=task.owner.at(t),
        team=task.team,
        status="blocked" if blockers else ("in_progress" if in_progress else "open"),
        created_at=task.created_at,
        started_at=index.started(i, t) if in_progress else None,
        deadline=deadline[0],
        deadline_source="due" if deadline[1] == "due" else "fix_version",
        priority_rank=task.priority_rank.at(t),
        estimate_hours=task.estimate_hours.at(t),
        logged_hours=task.logged_hours.at(t),
        blockers=blockers,
        open_subtasks=subtasks,
        deadline_moves=_moves(task, history, t),
        last_activity=task.last_activity(t),
        ahead=ahead,
    )


def _open_blockers(index: _Index, task: TaskTimeline, t: datetime) -> list[int]:
    rows = [index.by_key.get(key) for key in sorted(task.blocked_by.at(t))]
    return [j for j in rows if j is not None and _is_open(index, j, t)]


def _is_open(index: _Index, j: int, t: datetime) -> bool:
    other = index.history.tasks[j]
    return other.created_at <= t and not index.history.is_done(other.status.at(t))


def _open_item(index: _Index, j: int, t: datetime) -> OpenItem:
    other = index.history.tasks[j]
    started = index.started(j, t) if index.history.is_in_progress(other.status.at(t)) else None
    return OpenItem(other.key, other.created_at, started, other.owner.at(t))


def _missed(finished_at: datetime | None, deadline: date, latest: datetime) -> bool | None:
    closes = end_of_day(deadline)
    if finished_at is not None:
        return finished_at > closes
    return True if latest >= closes else None


# --- baselines -----------------------------------------------------------------------------


def _velocity_scores(
    tasks: Sequence[TaskTimeline],
    open_rows: Sequence[int],
    deadlines: Mapping[int, tuple[date, str] | None],
    finished: Sequence[FinishedWork],
    t: datetime,
) -> dict[int, float]:
    """Straight-line velocity: days between the deadline and the date the team's open work
    due no later than this one is done at its recent weekly throughput (positive: late)."""
    since = t - _VELOCITY_WINDOW
    rate: dict[str | None, float] = defaultdict(float)
    for work in finished:
        if work.finished_at > since:
            rate[work.team] += 1.0 / (_VELOCITY_WINDOW.days / 7)
    by_team: dict[str | None, list[date]] = defaultdict(list)
    for i in open_rows:
        deadline = deadlines[i]
        by_team[tasks[i].team].append(deadline[0] if deadline else date.max)
    for dates in by_team.values():
        dates.sort()
    scores: dict[int, float] = {}
    for i in open_rows:
        deadline = deadlines[i]
        if deadline is None:
            continue
        queue = bisect_right(by_team[tasks[i].team], deadline[0])
        weekly = rate.get(tasks[i].team, 0.0)
        finish_days = 7.0 * queue / weekly if weekly > 0 else 3650.0
        scores[i] = finish_days - (end_of_day(deadline[0]) - t).total_seconds() / 86400
    return scores


def _baseline_scores(
    moment: TaskAtMoment, t: datetime, history: History, task: TaskTimeline, velocity: float
) -> dict[str, float]:
    last = moment.last_activity or moment.created_at
    status = task.status.at(t).casefold()
    badge = (
        t - last > _BADGE_IDLE
        or bool(moment.blockers)
        or "block" in status
        or moment.deadline < t.date()
    )
    return {
        "base_rate": 0.0,
        "days_left": -float(working_days_between(t.date(), moment.deadline)),
        "badge": 1.0 if badge else 0.0,
        "velocity": velocity,
    }


# --- fitting -------------------------------------------------------------------------------


def fit_params(pairs: Sequence[Pair], base: ModelParams = DEFAULT_PARAMS) -> ModelParams:
    """Calibration weights, P85 spread and the flag threshold, from scored pairs only."""
    scored = [p for p in pairs if p.scored]
    if len(scored) < 30:
        return base
    x = np.array([p.features for p in scored])
    y = np.array([1.0 if p.missed else 0.0 for p in scored])
    weights = _logistic(x, y)
    probabilities = 1.0 / (1.0 + np.exp(-(x @ weights)))
    early = np.array([p.working_days_left >= base.min_lead for p in scored])
    threshold = _best_threshold(probabilities[early], y[early])
    spread = _p85_spread(scored)
    return replace(
        base,
        threshold=threshold,
        calibration=Calibration(weights=tuple(round(float(v), 4) for v in weights), spread=spread),
    )


def _logistic(x: FloatArray, y: FloatArray, ridge: float = 1.0) -> FloatArray:
    """Logistic regression by Newton's method, lightly ridged (the intercept is not)."""
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], ridge)
    penalty[0] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        gradient = x.T @ (p - y) + penalty * w
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if float(np.abs(step).max()) < 1e-8:
            break
    return w


def _best_threshold(p: FloatArray, y: FloatArray, precision_target: float = 0.8) -> float:
    """The lowest threshold whose flags reach `precision_target` (the most misses caught at
    that precision); when none does, the threshold with the best F1."""
    candidates = np.round(np.arange(0.05, 0.96, 0.01), 2)
    stats = []
    for threshold in candidates:
        flagged = p >= threshold
        tp = float((flagged & (y == 1)).sum())
        precision = tp / max(float(flagged.sum()), 1.0)
        recall = tp / max(float((y == 1).sum()), 1.0)
        stats.append((float(threshold), precision, recall, int(flagged.sum())))
    for threshold, precision, _, flagged_count in stats:
        if precision >= precision_target and flagged_count >= 10:
            return threshold
    f1 = [2 * pr * rc / (pr + rc) if pr + rc else 0.0 for _, pr, rc, _ in stats]
    return stats[int(np.argmax(f1))][0]


def _p85_spread(pairs: Sequence[Pair]) -> float:
    """How much to stretch the simulated remaining time so that 85% of the work that did
    finish had finished by P85. Work never finished is left out: stretching P85 past the end
    of the data would hide it rather than forecast it."""
    ratios = [
        (pair.finished_at - pair.as_of).total_seconds() / 86400 / max(pair.p85_days, 1e-3)
        for pair in pairs
        if pair.finished_at is not None
    ]
    if len(ratios) < 30:
        return 1.0
    return round(float(np.quantile(np.array(ratios), 0.85)), 3)


# --- running and scoring -------------------------------------------------------------------


def run_backtest(
    history: History,
    *,
    start: date | None = None,
    end: date | None = None,
    cut: date | None = None,
    fit: bool = False,
    purge: bool = False,
    params: ModelParams = DEFAULT_PARAMS,
    seed: int = 0,
    progress: Progress | None = None,
) -> BacktestResult:
    """Replays every origin; with `cut`, parameters (when `fit`) and the baselines'
    probability scales are chosen on origins before it, and metrics come from origins on or
    after it. Without `cut`, the baselines are scaled on the same pairs they are scored on
    (in their favour)."""
    origins = default_origins(history, start, end)
    pairs = replay(history, origins, params=params, seed=seed, progress=progress)
    cut_at = _midnight(cut) if cut is not None else None
    # The contract: fit on origins before the cut. `purge` keeps only the pairs whose outcome
    # was also decided by the cut (no label from after it; biased toward early decisions).
    train = [
        p for p in pairs if cut_at is None or (_known_by(p, cut_at) if purge else p.as_of < cut_at)
    ]
    test = [p for p in pairs if cut_at is None or p.as_of >= cut_at]
    if fit:
        params = fit_params(train, params)
        _refresh(pairs, params)
    metrics = _metrics(
        test,
        [p.forecast.p_miss or 0.0 for p in test],
        [
            would_flag(p.forecast, p.task.deadline, p.as_of, threshold=params.threshold)
            for p in test
        ],
    )
    metrics.update(
        {
            "eligible": len(test),
            "assessed": sum(1 for p in test if p.forecast.assessed),
            "origins": len([o for o in origins if cut_at is None or o >= cut_at]),
            "threshold": params.threshold,
            "cut": cut.isoformat() if cut else None,
            "fitted": fit,
            "purged": purge,
            "calibration": {
                "weights": list(params.calibration.weights),
                "spread": params.calibration.spread,
            },
        }
    )
    metrics.update(_coverage(test, history.latest))
    baselines = {name: _baseline_metrics(name, train, test, params) for name in BASELINES}
    return BacktestResult(
        pairs=pairs, params=params, metrics=metrics, baselines=baselines, cut=cut_at
    )


def _known_by(pair: Pair, moment: datetime) -> bool:
    decided = end_of_day(pair.task.deadline)
    if pair.finished_at is not None:
        decided = min(decided, pair.finished_at)
    return pair.as_of < moment and decided <= moment


def _refresh(pairs: Sequence[Pair], params: ModelParams) -> None:
    """Recompute forecasts from the stored draws under refitted parameters."""
    by_origin: dict[datetime, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_origin[pair.as_of].append(pair)
    for origin, group in by_origin.items():
        forecasts = from_simulation(
            [p.task for p in group], _stored_draws(group), group[0].evidence, origin, params
        )
        for pair, forecast in zip(group, forecasts, strict=True):
            pair.forecast = forecast


def _stored_draws(pairs: Sequence[Pair]) -> RawForecasts:
    return RawForecasts(
        keys=tuple(p.task.key for p in pairs),
        assessed=np.array([p.forecast.assessed for p in pairs]),
        p_sim=np.zeros(len(pairs)),
        features=np.array([p.features for p in pairs]),
        p50_days=np.array([p.p50_days for p in pairs]),
        p85_days=np.array([p.p85_days for p in pairs]),
        driver=tuple(p.driver for p in pairs),
        not_assessed=tuple(p.forecast.not_assessed_reason for p in pairs),
    )


def _baseline_metrics(
    name: str, train: Sequence[Pair], test: Sequence[Pair], params: ModelParams
) -> dict[str, Any]:
    train_scored = [p for p in train if p.scored]
    y_train = np.array([1.0 if p.missed else 0.0 for p in train_scored])
    rate = float(y_train.mean()) if y_train.size else 0.5
    if name == "base_rate":
        probabilities = [rate] * len(test)
        flags = [rate >= 0.5] * len(test)
    else:
        x_train = np.array([[1.0, _squash(p.scores[name])] for p in train_scored])
        w = (
            _logistic(x_train, y_train)
            if y_train.size and 0 < y_train.sum() < y_train.size
            else np.array([math.log(max(rate, 1e-3) / max(1 - rate, 1e-3)), 0.0])
        )
        probabilities = [
            float(1 / (1 + np.exp(-(w[0] + w[1] * _squash(p.scores[name]))))) for p in test
        ]
        if name == "badge" or name == "velocity":
            flags = [p.scores[name] > 0 for p in test]
        else:
            early_train = [p for p in train_scored if p.working_days_left >= params.min_lead]
            p_train = np.array(
                [
                    float(1 / (1 + np.exp(-(w[0] + w[1] * _squash(p.scores[name])))))
                    for p in early_train
                ]
            )
            y_early = np.array([1.0 if p.missed else 0.0 for p in early_train])
            threshold = _best_threshold(p_train, y_early) if y_early.size else 0.5
            flags = [prob >= threshold for prob in probabilities]
    flags = [f and p.working_days_left >= params.min_lead for f, p in zip(flags, test, strict=True)]
    return _metrics(test, probabilities, flags)


def _squash(score: float) -> float:
    """Signed log scale, so a few extreme scores do not swamp a one-feature fit."""
    return math.copysign(math.log1p(abs(score)), score)


def _metrics(
    pairs: Sequence[Pair], probabilities: Sequence[float], flags: Sequence[bool]
) -> dict[str, Any]:
    rows = [
        (p, prob, flag)
        for p, prob, flag in zip(pairs, probabilities, flags, strict=True)
        if p.scored
    ]
    y = np.array([1.0 if p.missed else 0.0 for p, _, _ in rows])
    prob = np.array([q for _, q, _ in rows])
    out: dict[str, Any] = {"scored": len(rows), "missed": int(y.sum())}
    if not rows:
        return out
    base = float(y.mean())
    brier = float(((prob - y) ** 2).mean())
    reference = float(((base - y) ** 2).mean())
    early = [(p, flag) for p, _, flag in rows if p.working_days_left >= 3]
    tp = sum(1 for p, flag in early if flag and p.missed)
    flagged = sum(1 for _, flag in early if flag)
    positives = sum(1 for p, _ in early if p.missed)
    out.update(
        {
            "base_rate": round(base, 4),
            "auc": _auc(prob, y),
            "brier": round(brier, 4),
            "brier_skill": round(1 - brier / reference, 4) if reference > 0 else None,
            "early_forecasts": len(early),
            "flagged_early": flagged,
            "precision": round(tp / flagged, 4) if flagged else None,
            "recall": round(tp / positives, 4) if positives else None,
            "reliability": _reliability(prob, y),
            "median_flag_lead_working_days": _median_lead(rows),
        }
    )
    return out


def _auc(p: FloatArray, y: FloatArray) -> float | None:
    """Mann-Whitney AUC with ties counted half."""
    positives, negatives = int(y.sum()), int((1 - y).sum())
    if not positives or not negatives:
        return None
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p))
    sorted_p = p[order]
    i = 0
    while i < len(p):
        j = i
        while j + 1 < len(p) and sorted_p[j + 1] == sorted_p[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    u = ranks[y == 1].sum() - positives * (positives + 1) / 2
    return round(float(u / (positives * negatives)), 4)


def _reliability(p: FloatArray, y: FloatArray) -> list[dict[str, Any]]:
    table = []
    bins = np.minimum((p * 10).astype(int), 9)
    for decile in range(10):
        inside = bins == decile
        count = int(inside.sum())
        table.append(
            {
                "bin": f"{decile / 10:.1f}-{(decile + 1) / 10:.1f}",
                "count": count,
                "mean_p": round(float(p[inside].mean()), 4) if count else None,
                "observed": round(float(y[inside].mean()), 4) if count else None,
            }
        )
    return table


def _median_lead(rows: Sequence[tuple[Pair, float, bool]]) -> float | None:
    """Median working days between the first flag and a missed deadline (per task and
    deadline), over missed deadlines that were flagged at all."""
    first: dict[tuple[str, date], datetime] = {}
    for pair, _, flag in rows:
        if flag and pair.missed:
            slot = (pair.task.key, pair.task.deadline)
            first[slot] = min(first.get(slot, pair.as_of), pair.as_of)
    leads = [working_days_between(at.date(), deadline) for (_, deadline), at in first.items()]
    return float(np.median(leads)) if leads else None


def _coverage(pairs: Sequence[Pair], latest: datetime) -> dict[str, float | int | None]:
    """P85 coverage two ways: over every pair whose answer is known (work still open at the
    end of the data counts as a miss once its P85 has passed), and over work that finished."""
    covered = total = finished_total = 0
    for pair in pairs:
        if not pair.scored or pair.forecast.p85 is None:
            continue
        if pair.finished_at is not None:
            total += 1
            finished_total += 1
            covered += pair.finished_at.date() <= pair.forecast.p85
        elif pair.forecast.p85 < latest.date():
            total += 1
    return {
        "p85_coverage": round(covered / total, 4) if total else None,
        "p85_coverage_finished": round(covered / finished_total, 4) if finished_total else None,
        "p85_pairs": total,
    }


# --- output --------------------------------------------------------------------------------


def _pair_json(pair: Pair, params: ModelParams) -> dict[str, Any]:
    forecast = pair.forecast
    return {
        "key": pair.task.key,
        "as_of": pair.as_of.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "deadline": pair.task.deadline.isoformat(),
        "deadline_source": pair.task.deadline_source,
        "p_miss": forecast.p_miss,
        "p50": forecast.p50.isoformat() if forecast.p50 else None,
        "p85": forecast.p85.isoformat() if forecast.p85 else None,
        "flag": would_flag(forecast, pair.task.deadline, pair.as_of, threshold=params.threshold),
        "reasons": list(forecast.reasons)
        or ([forecast.not_assessed_reason] if forecast.not_assessed_reason else []),
    }


def _midnight(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)
