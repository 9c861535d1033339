"""Deadline-risk forecasting: a seeded Monte Carlo over a team's own finished work.

Source-neutral: it sees plain dataclasses, never a Jira or GitHub payload. The
caller (the ledger, the backtest) builds, as of a moment `as_of`:

- one `TaskAtMoment` per open task with a deadline, holding only what was known at
  `as_of` (owner, status, created / started, deadline and where it came from,
  priority rank, estimate and logged hours, its open blockers and subtasks as
  `OpenItem`s, how often its deadline moved, its last activity, and `ahead`: the
  owner's open work ahead of it, see `count_ahead`);
- one `Evidence` (`Evidence.from_finished(finished, as_of, params, still_open,
  outcomes)`) from the work finished before `as_of` (`FinishedWork`), the work still
  open then (`OpenWork`) and the team's deadlines decided by then (`DeadlineOutcome`);
  anything dated after `as_of` is dropped, so a caller cannot peek by mistake.

`forecast(task, evidence, as_of, seed=...)` -> `Forecast(p_miss, p50, p85, reasons,
assessed, not_assessed_reason)`; `forecast_many` does the same for a batch, vectorised
(a task's answer does not depend on the batch it came in: every task uses the same
seeded random draws, "common random numbers"). Same inputs and seed, same output.

How a finish date is drawn (calendar days from `as_of`, `samples` draws per task), the
latest of:
- the task's own remaining time: the owner's (else the team's) lead times, or cycle
  times once it is in progress, as a Kaplan-Meier survival curve (work still open is
  censored, not forgotten), conditioned on the time already spent; the mass beyond the
  longest finish follows a Lindy tail (open twice as long: twice as long to go);
- the owner's queue: `ahead + 1` completions at the owner's weekly throughput
  (shrunk toward the team's per-person rate), a Gamma waiting time;
- estimate minus logged hours, scaled by the owner's estimate accuracy (actual /
  estimate on finished work, as in Evidence-Based Scheduling), at 6 hours a working day;
- each open blocker's and subtask's own remaining time, drawn the same way.
P(miss) is the share of draws after the end of the deadline day, then calibrated by a
small logistic layer (`Calibration`, features in `FEATURES`) that also weighs slips
already seen, time without activity, time open, time left, whether work has started and
the team's recent deadline record; P50 / P85 are the draws' quantiles, stretched by
`Calibration.spread` so that P85 covers about 85% of the work that finishes. The shipped
calibration and default threshold (`FITTED_CALIBRATION`, `FITTED_THRESHOLD`) were fitted
by `syncd forecast backtest --fit` on origins before a cut (benchmarks/RESULTS.md).

`would_flag(forecast, deadline, as_of, threshold=, min_lead=, horizon=)` is the
`deadline_risk` rule's test. Cost: about 70 us a task in `forecast_many` (256 draws).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from statistics import NormalDist
from typing import Literal, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_PARAMS",
    "FEATURES",
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

FloatArray = npt.NDArray[np.float64]
W = TypeVar("W")
DeadlineSource = Literal["due", "fix_version", "milestone"]
TaskState = Literal["open", "in_progress", "blocked"]

_DAY = 86400.0
_HOURS_PER_WORKING_DAY = 6.0
_CALENDAR_PER_WORKING_DAY = 7.0 / 5.0
FEATURES = (
    "intercept",
    "simulated_logit",
    "deadline_moves",
    "idle_weeks",
    "weeks_left",
    "weeks_open",
    "simulated_p50_weeks",
    "in_progress",
    "team_miss_logit",
)
_CHUNK = 4096  # tasks simulated at once: bounds memory at chunk x samples floats


# --- inputs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenItem:
    """Another open task this one waits for (a blocker or a subtask), as known at as_of."""

    key: str
    created_at: datetime
    started_at: datetime | None = None
    owner: str | None = None


@dataclass(frozen=True, slots=True)
class TaskAtMoment:
    """One open task with a deadline, exactly as it stood at the forecast's `as_of`."""

    key: str
    owner: str | None
    team: str | None
    status: TaskState
    created_at: datetime
    started_at: datetime | None
    deadline: date
    deadline_source: DeadlineSource
    priority_rank: int | None = None  # 1 is the most urgent; None: not set
    estimate_hours: float | None = None
    logged_hours: float | None = None
    blockers: tuple[OpenItem, ...] = ()
    open_subtasks: tuple[OpenItem, ...] = ()
    deadline_moves: int = 0  # times the deadline moved later (or fix version changed) so far
    last_activity: datetime | None = None
    ahead: int = 0  # the owner's open work ahead of this one (see `count_ahead`)


@dataclass(frozen=True, slots=True)
class FinishedWork:
    """One finished task: the evidence a team's history is made of."""

    key: str
    owner: str | None
    team: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime
    estimate_hours: float | None = None
    logged_hours: float | None = None


@dataclass(frozen=True, slots=True)
class DeadlineOutcome:
    """A deadline that came to a decision: met (done by the end of its day, while it was
    still the deadline) or missed (its day ended with the work open). `decided_at` is when
    that became known; a deadline that moved before either is no outcome."""

    key: str
    team: str | None
    deadline: date
    decided_at: datetime
    missed: bool


@dataclass(frozen=True, slots=True)
class OpenWork:
    """Any open task of a person, deadline or not: what `count_ahead` ranks."""

    key: str
    owner: str | None
    team: str | None
    priority_rank: int | None
    deadline: date | None
    created_at: datetime
    started_at: datetime | None = None


@dataclass(frozen=True)
class Survival:
    """Kaplan-Meier survival of a duration (days): finished work is an event, work still
    open counts as censored at its age, so long-lived open work is not forgotten (a sample
    of finished work alone would say everything finishes fast)."""

    times: FloatArray  # distinct event times, ascending
    survival: FloatArray  # S(t) just after each event time, non-increasing
    events: int

    @classmethod
    def estimate(cls, finished: Sequence[float], still_open: Sequence[float]) -> Survival:
        done = np.asarray(finished, dtype=float)
        censored = np.asarray(still_open, dtype=float)
        if done.size == 0:
            return cls(np.zeros(0), np.zeros(0), 0)
        times, deaths = np.unique(np.maximum(done, 0.0), return_counts=True)
        everyone = np.sort(np.concatenate([np.maximum(done, 0.0), np.maximum(censored, 0.0)]))
        at_risk = everyone.size - np.searchsorted(everyone, times, side="left")
        survival: FloatArray = np.cumprod(1.0 - deaths / np.maximum(at_risk, 1)).astype(float)
        return cls(times, survival, int(done.size))

    def at(self, days: FloatArray) -> FloatArray:
        index = np.searchsorted(self.times, days, side="right") - 1
        values: FloatArray = np.where(index >= 0, self.survival[np.maximum(index, 0)], 1.0)
        return values


@dataclass(frozen=True)
class WorkStats:
    """What one person's or one team's work says (all durations in days)."""

    lead: Survival  # created -> finished
    cycle: Survival  # started -> finished (only work that was started)
    estimate_ratios: FloatArray  # logged / estimate, sorted (work with both)
    finished: int  # finished within the history window
    recent_finished: int  # finished within the throughput window
    window_weeks: float
    people: int  # distinct owners among the recent finished work

    @property
    def weekly_throughput(self) -> float:
        return self.recent_finished / self.window_weeks

    @classmethod
    def of(
        cls,
        work: Sequence[FinishedWork],
        still_open: Sequence[OpenWork],
        as_of: datetime,
        window_days: float,
    ) -> WorkStats:
        lead = Survival.estimate(
            [_days(w.finished_at - w.created_at) for w in work],
            [_days(as_of - o.created_at) for o in still_open],
        )
        cycle = Survival.estimate(
            [_days(w.finished_at - w.started_at) for w in work if w.started_at is not None],
            [_days(as_of - o.started_at) for o in still_open if o.started_at is not None],
        )
        ratios = np.sort(
            np.array(
                [
                    w.logged_hours / w.estimate_hours
                    for w in work
                    if w.estimate_hours and w.logged_hours
                ],
                dtype=float,
            )
        )
        since = as_of - timedelta(days=window_days)
        recent = [w for w in work if w.finished_at > since]
        owners = {w.owner for w in recent if w.owner is not None}
        return cls(
            lead=lead,
            cycle=cycle,
            estimate_ratios=ratios,
            finished=len(work),
            recent_finished=len(recent),
            window_weeks=window_days / 7.0,
            people=max(1, len(owners)),
        )


@dataclass(frozen=True)
class Evidence:
    """Work finished before `as_of` and work still open then, per team and per person."""

    as_of: datetime
    overall: WorkStats
    teams: Mapping[str, WorkStats]
    people: Mapping[str, WorkStats]
    # (met, missed) deadlines decided in the record window, per team and overall.
    records: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    overall_record: tuple[int, int] = (0, 0)

    def record(self, team: str | None) -> tuple[int, int]:
        if team is not None and team in self.records:
            return self.records[team]
        return self.overall_record

    @classmethod
    def from_finished(
        cls,
        finished: Iterable[FinishedWork],
        as_of: datetime,
        params: ModelParams | None = None,
        still_open: Iterable[OpenWork] = (),
        outcomes: Iterable[DeadlineOutcome] = (),
    ) -> Evidence:
        """Evidence from work finished at or before `as_of` (later work is ignored), the
        work still open at `as_of` (created at or before it) and the deadlines decided at or
        before `as_of`."""
        params = params or DEFAULT_PARAMS
        records, overall_record = _records(outcomes, as_of, params.record_days)
        history_since = as_of - timedelta(days=params.history_days)
        known = [w for w in finished if history_since < w.finished_at <= as_of]
        open_now = [o for o in still_open if o.created_at <= as_of]
        done_by: dict[str, dict[str, list[FinishedWork]]] = {
            "team": defaultdict(list),
            "person": defaultdict(list),
        }
        open_by: dict[str, dict[str, list[OpenWork]]] = {
            "team": defaultdict(list),
            "person": defaultdict(list),
        }
        for work in known:
            _file(done_by, work.team, work.owner, work)
        for item in open_now:
            _file(open_by, item.team, item.owner, item)
        window = params.throughput_days

        def stats(kind: str, name: str) -> WorkStats:
            return WorkStats.of(done_by[kind][name], open_by[kind].get(name, []), as_of, window)

        return cls(
            as_of=as_of,
            overall=WorkStats.of(known, open_now, as_of, window),
            teams={team: stats("team", team) for team in done_by["team"]},
            people={person: stats("person", person) for person in done_by["person"]},
            records=records,
            overall_record=overall_record,
        )


def _records(
    outcomes: Iterable[DeadlineOutcome], as_of: datetime, window_days: float
) -> tuple[dict[str, tuple[int, int]], tuple[int, int]]:
    since = as_of - timedelta(days=window_days)
    latest: dict[tuple[str, date], DeadlineOutcome] = {}
    for outcome in outcomes:
        if since < outcome.decided_at <= as_of:
            latest[(outcome.key, outcome.deadline)] = outcome
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    overall = [0, 0]
    for outcome in latest.values():
        overall[outcome.missed] += 1
        if outcome.team is not None:
            counts[outcome.team][outcome.missed] += 1
    return {team: (c[0], c[1]) for team, c in counts.items()}, (overall[0], overall[1])


def _file(
    by: Mapping[str, dict[str, list[W]]], team: str | None, owner: str | None, item: W
) -> None:
    if team is not None:
        by["team"][team].append(item)
    if owner is not None:
        by["person"][owner].append(item)


# --- parameters ------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """Logistic layer over the simulation: p = sigmoid(weights . features).

    Features, in order (`FEATURES`): 1, logit(simulated P(miss)), log1p(deadline moves),
    log1p(weeks without activity), log1p(weeks left), log1p(weeks open), log1p(simulated
    P50 remaining weeks). `spread` stretches the simulated remaining time for P50 / P85
    (1.0: as simulated). The default weights take the simulation as it is.
    """

    weights: tuple[float, ...] = (0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    spread: float = 1.0


# Fitted by `syncd forecast backtest --fit --cut 2012-01-02` on the DuraSpace export's
# origins before the cut only (see benchmarks/RESULTS.md); the figures reported there come
# from origins after it.
FITTED_CALIBRATION = Calibration(
    weights=(-0.6225, 0.0586, -0.0009, 0.5977, 0.0951, 0.2489, -0.1136, -1.4668, 0.061),
    spread=0.292,
)
FITTED_THRESHOLD = 0.72


@dataclass(frozen=True)
class ModelParams:
    samples: int = 256
    history_days: float = 730.0  # finished work older than this is not evidence
    throughput_days: float = 84.0  # weekly throughput over the last 12 weeks
    record_days: float = 182.0  # the team's deadline record over the last 26 weeks
    min_team_finished: int = 8  # fewer finished tasks in the team's history: not assessed
    min_person_finished: int = 20  # fewer: the person's figures borrow the team's
    prior_weeks: float = 4.0  # shrinks a person's throughput toward the team's per-person rate
    lindy_alpha: float = 1.0  # tail of the residual time for work older than any finished
    threshold: float = FITTED_THRESHOLD  # default `deadline_risk` threshold
    min_lead: int = 3  # working days: flags closer to the deadline are due_soon's job
    calibration: Calibration = FITTED_CALIBRATION


DEFAULT_PARAMS = ModelParams()


# --- outputs ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Forecast:
    key: str
    assessed: bool
    p_miss: float | None
    p50: date | None
    p85: date | None
    reasons: tuple[str, ...] = ()
    not_assessed_reason: str | None = None


@dataclass(frozen=True)
class RawForecasts:
    """The simulation before calibration, for a batch: what `Calibration` is fitted on."""

    keys: tuple[str, ...]
    assessed: npt.NDArray[np.bool_]
    p_sim: FloatArray  # share of draws after the deadline
    features: FloatArray  # (n, len(FEATURES)): see `Calibration`
    p50_days: FloatArray  # simulated P50 finish, calendar days from as_of (before `spread`)
    p85_days: FloatArray  # simulated P85 finish, likewise
    driver: tuple[str, ...]  # what sets the P85 draw: own / queue / estimate / blocker / subtask
    not_assessed: tuple[str | None, ...]


# --- public functions ------------------------------------------------------------------


def forecast(
    task: TaskAtMoment,
    evidence: Evidence,
    as_of: datetime,
    *,
    seed: int = 0,
    params: ModelParams = DEFAULT_PARAMS,
) -> Forecast:
    """One task's forecast; the same as its entry in `forecast_many`."""
    return forecast_many([task], evidence, as_of, seed=seed, params=params)[0]


def forecast_many(
    tasks: Sequence[TaskAtMoment],
    evidence: Evidence,
    as_of: datetime,
    *,
    seed: int = 0,
    params: ModelParams = DEFAULT_PARAMS,
) -> list[Forecast]:
    raw = simulate(tasks, evidence, as_of, seed=seed, params=params)
    return from_simulation(tasks, raw, evidence, as_of, params)


def from_simulation(
    tasks: Sequence[TaskAtMoment],
    raw: RawForecasts,
    evidence: Evidence,
    as_of: datetime,
    params: ModelParams = DEFAULT_PARAMS,
) -> list[Forecast]:
    """Calibrated forecasts from `simulate`'s draws (refitting a calibration needs no
    second simulation)."""
    cal = params.calibration
    p = np.round(_sigmoid(raw.features @ np.array(cal.weights, dtype=float)), 4).tolist()
    day = as_of.date()
    # Whole days from as_of, the same for every task: a date, not a time, is forecast.
    p50s = np.floor(_days(as_of - _midnight(as_of)) + raw.p50_days * cal.spread).tolist()
    p85s = np.floor(_days(as_of - _midnight(as_of)) + raw.p85_days * cal.spread).tolist()
    out: list[Forecast] = []
    for i, task in enumerate(tasks):
        if not raw.assessed[i]:
            out.append(Forecast(task.key, False, None, None, None, (), raw.not_assessed[i]))
            continue
        p50 = day + timedelta(days=int(p50s[i]))
        p85 = day + timedelta(days=int(p85s[i]))
        reasons = _reasons(task, evidence, as_of, raw.driver[i], p85, params)
        out.append(Forecast(task.key, True, float(p[i]), p50, p85, reasons, None))
    return out


def _midnight(moment: datetime) -> datetime:
    return datetime.combine(moment.date(), time(0), tzinfo=moment.tzinfo)


def would_flag(
    forecast: Forecast,
    deadline: date,
    as_of: datetime,
    *,
    threshold: float | None = None,
    min_lead: int | None = None,
    horizon: int | None = None,
) -> bool:
    """The `deadline_risk` rule's test: assessed, risky enough, and early enough to act.

    `min_lead`: working days that must remain before the deadline (closer than that it is
    `due_soon`'s job); `horizon`: working days ahead beyond which nothing is flagged.
    """
    threshold = DEFAULT_PARAMS.threshold if threshold is None else threshold
    min_lead = DEFAULT_PARAMS.min_lead if min_lead is None else min_lead
    if not forecast.assessed or forecast.p_miss is None or forecast.p_miss < threshold:
        return False
    left = working_days_between(as_of.date(), deadline)
    return left >= min_lead and (horizon is None or left <= horizon)


def count_ahead(task: TaskAtMoment | OpenWork, open_work: Iterable[OpenWork]) -> int:
    """The owner's open work that comes before this task: more urgent, or as urgent and due
    earlier (work without a deadline counts as due last; ties broken by age)."""
    if task.owner is None:
        return 0
    mine = _rank_key(task.priority_rank, task.deadline, task.created_at)
    return sum(
        1
        for other in open_work
        if other.owner == task.owner
        and other.key != task.key
        and _rank_key(other.priority_rank, other.deadline, other.created_at) < mine
    )


def end_of_day(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)


def working_days_between(start: date, end: date) -> int:
    """Monday-to-Friday days after `start` up to and including `end` (negative if before)."""
    if end < start:
        return -working_days_between(end, start)
    weeks, extra = divmod((end - start).days, 7)
    count = weeks * 5
    weekday = start.weekday()
    for step in range(1, extra + 1):
        if (weekday + step) % 7 < 5:
            count += 1
    return count


# --- simulation ------------------------------------------------------------------------


def simulate(
    tasks: Sequence[TaskAtMoment],
    evidence: Evidence,
    as_of: datetime,
    *,
    seed: int = 0,
    params: ModelParams = DEFAULT_PARAMS,
) -> RawForecasts:
    """Draw each task's finish time; vectorised in chunks, common random numbers."""
    draws = _Draws.make(seed, params.samples)
    n = len(tasks)
    p50, p85, p_sim = np.zeros(n), np.zeros(n), np.zeros(n)
    features = np.zeros((n, len(FEATURES)))
    assessed = np.zeros(n, dtype=bool)
    drivers: list[str] = []
    not_assessed: list[str | None] = []
    for start in range(0, n, _CHUNK):
        chunk = tasks[start : start + _CHUNK]
        part = _simulate_chunk(chunk, evidence, as_of, draws, params)
        stop = start + len(chunk)
        p50[start:stop], p85[start:stop], p_sim[start:stop], features[start:stop] = part[:4]
        assessed[start:stop] = part[4]
        drivers.extend(part[5])
        not_assessed.extend(part[6])
    return RawForecasts(
        keys=tuple(t.key for t in tasks),
        assessed=assessed,
        p_sim=p_sim,
        features=features,
        p50_days=p50,
        p85_days=p85,
        driver=tuple(drivers),
        not_assessed=tuple(not_assessed),
    )


@dataclass(frozen=True)
class _Draws:
    own: FloatArray
    queue_z: FloatArray
    estimate: FloatArray
    waits: FloatArray

    @classmethod
    def make(cls, seed: int, samples: int) -> _Draws:
        rng = np.random.default_rng(seed)
        u = rng.random((4, samples))
        u = np.clip(u, 1e-6, 1 - 1e-6)
        z = np.array([NormalDist().inv_cdf(float(x)) for x in u[1]])
        return cls(own=u[0], queue_z=z, estimate=u[2], waits=u[3])


_Chunk = tuple[
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
    npt.NDArray[np.bool_],
    list[str],
    list[str | None],
]


def _simulate_chunk(
    tasks: Sequence[TaskAtMoment],
    evidence: Evidence,
    as_of: datetime,
    draws: _Draws,
    params: ModelParams,
) -> _Chunk:
    n, s = len(tasks), params.samples
    own = np.zeros((n, s))
    assessed = np.ones(n, dtype=bool)
    not_assessed: list[str | None] = [None] * n
    queue_k = np.zeros(n)  # completions to wait for (0: no queue)
    queue_rate = np.ones(n)  # tasks a day
    # Rare evidence (estimates, blockers, subtasks): drawn per task, kept sparse.
    extra: dict[str, dict[int, FloatArray]] = {"estimate": {}, "blocker": {}, "subtask": {}}
    # Group tasks by the distribution they draw from, so each group is one vector op.
    own_groups: dict[int, tuple[Survival, list[int], list[float]]] = {}
    for i, task in enumerate(tasks):
        team = _team_stats(task.team, evidence)
        if team.finished < params.min_team_finished:
            assessed[i] = False
            not_assessed[i] = (
                f"the team finished only {team.finished} tasks in the last "
                f"{params.history_days / 365:.0f} years; at least "
                f"{params.min_team_finished} are needed to forecast"
            )
            continue
        person = evidence.people.get(task.owner) if task.owner else None
        dist, elapsed = _distribution(task, as_of, person, team, params)
        entry = own_groups.setdefault(id(dist), (dist, [], []))
        entry[1].append(i)
        entry[2].append(elapsed)
        if task.owner is not None and task.ahead > 0:
            queue_k[i] = task.ahead + 1
            queue_rate[i] = _person_rate(person, team, params) / 7.0
        if task.estimate_hours:
            extra["estimate"][i] = _estimate_days(
                task, person, team, evidence.overall, draws.estimate
            )
        # The task waits for the latest of its blockers, and of its subtasks.
        for kind, items in (("blocker", task.blockers), ("subtask", task.open_subtasks)):
            if items:
                extra[kind][i] = _latest_wait(items, as_of, evidence, team, draws.waits, params)
    for dist, rows, spent in own_groups.values():
        own[rows] = _residual(dist, np.array(spent), draws.own, params.lindy_alpha)
    queue = _queue_days(queue_k, queue_rate, draws.queue_z)
    finish = np.maximum(own, queue)
    for by_row in extra.values():
        for i, days in by_row.items():
            np.maximum(finish[i], days, out=finish[i])
    mid, high = s // 2, min(s - 1, math.ceil(0.85 * s) - 1)
    p85_sample = np.argpartition(finish, high, axis=1)[:, high]
    drivers = _drivers(own, queue, extra, p85_sample)
    ordered = np.partition(finish, (mid, high), axis=1)
    days_left = np.array([_days(end_of_day(t.deadline) - as_of) for t in tasks])
    p_sim = (finish > days_left[:, None]).mean(axis=1)
    p50, p85 = ordered[:, mid], ordered[:, high]
    features = _features(tasks, evidence, as_of, p_sim, days_left, p50)
    return p50, p85, p_sim, features, assessed, drivers, not_assessed


def _drivers(
    own: FloatArray,
    queue: FloatArray,
    extra: Mapping[str, Mapping[int, FloatArray]],
    sample: npt.NDArray[np.intp],
) -> list[str]:
    """Which part of the draw sets the P85 finish, per task."""
    rows = np.arange(own.shape[0])
    drivers = np.where(queue[rows, sample] > own[rows, sample], "queue", "own").tolist()
    best = np.maximum(own[rows, sample], queue[rows, sample])
    for kind, by_row in extra.items():
        for i, days in by_row.items():
            if days[sample[i]] > best[i]:
                drivers[i], best[i] = kind, days[sample[i]]
    return [str(d) for d in drivers]


def _latest_wait(
    items: Sequence[OpenItem],
    as_of: datetime,
    evidence: Evidence,
    team: WorkStats,
    u: FloatArray,
    params: ModelParams,
) -> FloatArray:
    latest = np.zeros_like(u)
    for item in items:
        person = evidence.people.get(item.owner) if item.owner else None
        dist, elapsed = _distribution(item, as_of, person, team, params)
        residual = _residual(dist, np.array([elapsed]), u, params.lindy_alpha)[0]
        np.maximum(latest, residual, out=latest)
    return latest


def _team_stats(team: str | None, evidence: Evidence) -> WorkStats:
    if team is not None and team in evidence.teams:
        return evidence.teams[team]
    return evidence.overall


def _distribution(
    work: TaskAtMoment | OpenItem,
    as_of: datetime,
    person: WorkStats | None,
    team: WorkStats,
    params: ModelParams,
) -> tuple[Survival, float]:
    """The durations the remaining time is drawn from (the owner's when there are enough,
    else the team's; cycle times once started), and the time already spent."""
    enough = person is not None and person.lead.events >= params.min_person_finished
    source = person if enough and person is not None else team
    if work.started_at is not None and source.cycle.events >= params.min_person_finished:
        return source.cycle, max(0.0, _days(as_of - work.started_at))
    return source.lead, max(0.0, _days(as_of - work.created_at))


def _residual(dist: Survival, elapsed: FloatArray, u: FloatArray, alpha: float) -> FloatArray:
    """Remaining days given `elapsed` already spent, drawn by inverting the conditional
    survival S(x) / S(elapsed) at `u`; the mass left beyond the last finish follows a
    Lindy (Pareto) tail from there: the longer open, the longer still to go."""
    alive = dist.at(elapsed)  # S(elapsed), per task
    target = alive[:, None] * (1.0 - u[None, :])
    # The first event time whose survival falls to the target.
    index = np.searchsorted(-dist.survival, -target, side="left")
    in_range = index < dist.times.size
    finish = np.where(in_range, dist.times[np.minimum(index, max(dist.times.size - 1, 0))], 0.0)
    last = float(dist.times[-1]) if dist.times.size else 0.0
    floor = float(dist.survival[-1]) if dist.survival.size else 1.0
    # Past the last finish (or older than all of it): P(T > x | T > start) = start / x.
    start = np.maximum(elapsed, max(last, 1.0))[:, None]
    share = np.clip(target / np.maximum(np.minimum(floor, alive), 1e-9)[:, None], 1e-3, 1.0)
    older = (alive <= 1e-9) | (elapsed >= last)
    share = np.where(older[:, None], np.clip(1.0 - u[None, :], 1e-3, 1.0), share)
    tail = start * share ** (-1.0 / alpha)
    value = np.where(in_range & ~older[:, None], finish, tail) - elapsed[:, None]
    return np.maximum(value, 0.0)


def _person_rate(person: WorkStats | None, team: WorkStats, params: ModelParams) -> float:
    """Tasks a week, shrunk toward the team's per-person rate (few weeks: mostly the team's)."""
    team_rate = team.weekly_throughput / team.people
    prior = max(team_rate, 0.1)
    if person is None:
        return prior
    count = person.recent_finished + prior * params.prior_weeks
    return count / (person.window_weeks + params.prior_weeks)


def _queue_days(k: FloatArray, rate_per_day: FloatArray, z: FloatArray) -> FloatArray:
    """Days until `k` completions at `rate_per_day`: a Gamma(k, 1/rate) waiting time by the
    Wilson-Hilferty approximation, per task (k = 0: no queue)."""
    safe_k = np.maximum(k, 1.0)[:, None]
    cube = 1.0 - 1.0 / (9.0 * safe_k) + z[None, :] * np.sqrt(1.0 / (9.0 * safe_k))
    days = safe_k / rate_per_day[:, None] * np.maximum(cube, 0.0) ** 3
    result: FloatArray = np.where(k[:, None] > 0, days, 0.0)
    return result


def _estimate_days(
    task: TaskAtMoment,
    person: WorkStats | None,
    team: WorkStats,
    overall: WorkStats,
    u: FloatArray,
) -> FloatArray:
    """Remaining work from estimate and logged hours, corrected by estimate accuracy."""
    if not task.estimate_hours:
        return np.zeros_like(u)
    ratios = _estimate_ratios(person, team, overall)
    factor = np.quantile(ratios, u) if ratios.size else np.ones_like(u)
    total = task.estimate_hours * factor
    remaining = np.maximum(total - (task.logged_hours or 0.0), 0.1 * task.estimate_hours)
    return remaining / _HOURS_PER_WORKING_DAY * _CALENDAR_PER_WORKING_DAY


def _estimate_ratios(person: WorkStats | None, team: WorkStats, overall: WorkStats) -> FloatArray:
    for stats in (person, team, overall):
        if stats is not None and stats.estimate_ratios.size >= 3:
            return stats.estimate_ratios
    return np.zeros(0)


def _features(
    tasks: Sequence[TaskAtMoment],
    evidence: Evidence,
    as_of: datetime,
    p_sim: FloatArray,
    days_left: FloatArray,
    p50_days: FloatArray,
) -> FloatArray:
    clipped = np.clip(p_sim, 0.01, 0.99)
    moves = np.array([t.deadline_moves for t in tasks], dtype=float)
    idle = np.array([_idle_days(t, as_of) for t in tasks])
    age = np.array([max(0.0, _days(as_of - t.created_at)) for t in tasks])
    return np.column_stack(
        [
            np.ones(len(tasks)),
            np.log(clipped / (1 - clipped)),
            np.log1p(moves),
            np.log1p(idle / 7.0),
            np.log1p(np.maximum(days_left, 0.0) / 7.0),
            np.log1p(age / 7.0),
            np.log1p(np.maximum(p50_days, 0.0) / 7.0),
            np.array([1.0 if t.status == "in_progress" else 0.0 for t in tasks]),
            np.array([_miss_logit(evidence.record(t.team)) for t in tasks]),
        ]
    )


def _miss_logit(record: tuple[int, int]) -> float:
    met, missed = record
    return math.log((missed + 1) / (met + 1))


def _idle_days(task: TaskAtMoment, as_of: datetime) -> float:
    last = task.last_activity or task.created_at
    return max(0.0, _days(as_of - last))


def _sigmoid(x: FloatArray) -> FloatArray:
    result: FloatArray = 1.0 / (1.0 + np.exp(-np.clip(x, -30, 30)))
    return result


def _days(delta: timedelta) -> float:
    return delta.total_seconds() / _DAY


def _rank_key(
    priority: int | None, deadline: date | None, created: datetime
) -> tuple[int, date, datetime]:
    return (priority if priority is not None else 99, deadline or date.max, created)


# --- reasons ---------------------------------------------------------------------------


def _reasons(
    task: TaskAtMoment,
    evidence: Evidence,
    as_of: datetime,
    driver: str,
    p85: date,
    params: ModelParams,
) -> tuple[str, ...]:
    team = _team_stats(task.team, evidence)
    person = evidence.people.get(task.owner) if task.owner else None
    lead = _driver_sentence(task, driver, person, team, as_of, params)
    if working_days_between(task.deadline, p85) > 260:
        # Work this old and quiet often never finishes: a date years out reads as noise.
        finish = "P85 finish is more than a year after the deadline"
    else:
        finish = f"P85 finish is {_when(p85)}, {_versus(p85, task.deadline)}"
    reasons = [f"{lead}; {finish}"]
    if task.deadline_moves:
        times = "once" if task.deadline_moves == 1 else f"{task.deadline_moves} times"
        reasons.append(f"its deadline has already moved {times}")
    idle = _idle_days(task, as_of)
    if idle >= 14:
        reasons.append(f"no activity for {idle:.0f} days")
    met, missed = evidence.record(task.team)
    if met + missed >= 5 and missed >= met:
        reasons.append(f"the team missed {missed} of its last {met + missed} deadlines")
    if task.open_subtasks and driver != "subtask":
        reasons.append(f"{len(task.open_subtasks)} subtask(s) still open")
    return tuple(reasons)


def _driver_sentence(
    task: TaskAtMoment,
    driver: str,
    person: WorkStats | None,
    team: WorkStats,
    as_of: datetime,
    params: ModelParams,
) -> str:
    if driver == "queue":
        rate = _person_rate(person, team, params)
        return f"its owner finishes {rate:.1f} tasks a week and has {task.ahead} ahead of this one"
    if driver == "estimate":
        return (
            f"{task.logged_hours or 0:.0f} h logged against a {task.estimate_hours:.0f} h "
            "estimate, and its owner's work usually runs past estimates"
        )
    if driver == "blocker":
        keys = ", ".join(b.key for b in task.blockers[:3])
        return f"it waits on {keys}, likely to finish late"
    if driver == "subtask":
        return f"{len(task.open_subtasks)} subtask(s) are still open"
    if task.started_at is not None:
        days = _days(as_of - task.started_at)
        return f"it has been in progress {days:.0f} days; work this old usually takes longer still"
    days = _days(as_of - task.created_at)
    if task.owner is None:
        return f"it has been open {days:.0f} days with no owner"
    return f"it has been open {days:.0f} days and is not started"


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _when(day: date) -> str:
    """'Wed 12 Mar 2025', whatever the locale (strftime's names follow it, and are slow)."""
    return f"{_WEEKDAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def _versus(finish: date, deadline: date) -> str:
    gap = working_days_between(deadline, finish)
    if gap > 0:
        return f"{gap} working day{'s' if gap != 1 else ''} after the deadline"
    if gap < 0:
        return f"{-gap} working day{'s' if gap != -1 else ''} before the deadline"
    return "on the deadline"
