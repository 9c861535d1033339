"""The simulation: seeded, batch-independent, and moving the right way with its evidence."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from syncd.forecast import (
    Calibration,
    Evidence,
    FinishedWork,
    ModelParams,
    OpenItem,
    OpenWork,
    Survival,
    TaskAtMoment,
    count_ahead,
    forecast,
    forecast_many,
    simulate,
    working_days_between,
    would_flag,
)

AS_OF = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
# Raw simulation: P(miss) is the share of draws after the deadline, P85 as drawn.
RAW = ModelParams(calibration=Calibration(), threshold=0.5)


def _finished(
    count: int, owner: str = "ana", days: float = 6.0, team: str = "T"
) -> list[FinishedWork]:
    """`count` tasks finished over the last weeks, each taking about `days`."""
    out = []
    for i in range(count):
        finished = AS_OF - timedelta(days=1 + i * 2)
        took = days * (0.5 + (i % 5) / 4)
        out.append(
            FinishedWork(
                key=f"T-{i}",
                owner=owner,
                team=team,
                created_at=finished - timedelta(days=took),
                started_at=finished - timedelta(days=took / 2),
                finished_at=finished,
                estimate_hours=8.0,
                logged_hours=8.0 * (1 + (i % 3) / 2),
            )
        )
    return out


def _task(**changes: object) -> TaskAtMoment:
    base = TaskAtMoment(
        key="T-100",
        owner="ana",
        team="T",
        status="open",
        created_at=AS_OF - timedelta(days=2),
        started_at=None,
        deadline=AS_OF.date() + timedelta(days=10),
        deadline_source="due",
        priority_rank=2,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
def evidence() -> Evidence:
    return Evidence.from_finished(_finished(40), AS_OF)


def _p_sim(task: TaskAtMoment, evidence: Evidence) -> float:
    return float(simulate([task], evidence, AS_OF, seed=7, params=RAW).p_sim[0])


def test_same_inputs_and_seed_give_the_same_forecast(evidence: Evidence) -> None:
    task = _task(ahead=4)
    assert forecast(task, evidence, AS_OF, seed=3) == forecast(task, evidence, AS_OF, seed=3)


def test_a_forecast_does_not_depend_on_the_batch_it_came_in(evidence: Evidence) -> None:
    task = _task(ahead=4)
    others = [_task(key=f"T-{200 + i}", ahead=i) for i in range(5)]
    batch = forecast_many([*others, task], evidence, AS_OF, seed=3)
    assert batch[-1] == forecast(task, evidence, AS_OF, seed=3)


def test_a_longer_queue_raises_the_risk(evidence: Evidence) -> None:
    risks = [_p_sim(_task(ahead=ahead), evidence) for ahead in (0, 3, 10, 30)]
    assert risks == sorted(risks)
    assert risks[-1] > risks[0] + 0.3


def test_a_later_deadline_lowers_the_risk(evidence: Evidence) -> None:
    risks = [
        _p_sim(_task(ahead=5, deadline=AS_OF.date() + timedelta(days=d)), evidence)
        for d in (3, 10, 30, 90)
    ]
    assert risks == sorted(risks, reverse=True)
    assert risks[0] > risks[-1]


def test_an_old_blocker_carries_the_task_past_its_deadline(evidence: Evidence) -> None:
    free = _p_sim(_task(), evidence)
    blocker = OpenItem("T-9", created_at=AS_OF - timedelta(days=300))
    blocked = _p_sim(_task(blockers=(blocker,)), evidence)
    assert blocked > free + 0.3


def test_open_subtasks_and_a_large_remaining_estimate_push_the_finish_later(
    evidence: Evidence,
) -> None:
    plain = _p_sim(_task(), evidence)
    subtasks = tuple(OpenItem(f"T-{i}", AS_OF - timedelta(days=60)) for i in range(3))
    assert _p_sim(_task(open_subtasks=subtasks), evidence) > plain
    assert _p_sim(_task(estimate_hours=200.0, logged_hours=10.0), evidence) > plain


def test_thin_team_history_is_not_assessed_and_says_why() -> None:
    thin = Evidence.from_finished(_finished(3), AS_OF)
    result = forecast(_task(), thin, AS_OF)
    assert not result.assessed and result.p_miss is None and result.p85 is None
    assert (
        result.not_assessed_reason is not None and "finished only 3" in result.not_assessed_reason
    )


def test_evidence_ignores_work_finished_after_as_of() -> None:
    later = [dataclasses.replace(w, finished_at=AS_OF + timedelta(days=1)) for w in _finished(40)]
    assert Evidence.from_finished(later, AS_OF).overall.finished == 0


def test_the_queue_reason_names_throughput_ahead_and_the_p85_finish(evidence: Evidence) -> None:
    result = forecast(_task(ahead=12), evidence, AS_OF, params=RAW)
    assert result.p85 is not None and result.p50 is not None and result.p50 <= result.p85
    lead = result.reasons[0]
    assert "tasks a week and has 12 ahead of this one" in lead
    assert f"P85 finish is {result.p85:%a} {result.p85.day} {result.p85:%b %Y}" in lead
    assert "after the deadline" in lead


def test_slips_and_silence_are_named_and_raise_the_calibrated_risk(evidence: Evidence) -> None:
    quiet = _task(
        created_at=AS_OF - timedelta(days=120),
        deadline_moves=2,
        last_activity=AS_OF - timedelta(days=40),
    )
    fresh = _task(created_at=AS_OF - timedelta(days=120), last_activity=AS_OF)
    slow, quick = forecast(quiet, evidence, AS_OF), forecast(fresh, evidence, AS_OF)
    assert "its deadline has already moved 2 times" in slow.reasons
    assert "no activity for 40 days" in slow.reasons
    assert slow.p_miss is not None and quick.p_miss is not None and slow.p_miss > quick.p_miss


def test_open_work_is_censored_not_forgotten() -> None:
    finished_only = Survival.estimate([1, 2, 3, 4], [])
    with_open = Survival.estimate([1, 2, 3, 4], [50, 60])
    days = np.array([3.5])
    assert float(finished_only.at(days)[0]) == pytest.approx(0.25)
    assert float(with_open.at(days)[0]) == pytest.approx(0.5)  # 5/6 * 4/5 * 3/4


def test_owners_queue_counts_more_urgent_then_earlier_work() -> None:
    def work(key: str, rank: int | None, due: date | None, owner: str = "ana") -> OpenWork:
        return OpenWork(key, owner, "T", rank, due, AS_OF - timedelta(days=int(key[2:])))

    me = work("T-5", 2, date(2024, 3, 20))
    others = [
        work("T-1", 1, None),  # more urgent
        work("T-2", 2, date(2024, 3, 10)),  # as urgent, due earlier
        work("T-3", 2, date(2024, 4, 1)),  # due later
        work("T-4", 3, date(2024, 3, 5)),  # less urgent
        work("T-6", 1, None, owner="bo"),  # someone else's
    ]
    assert count_ahead(me, [me, *others]) == 2


def test_working_days_and_the_rules_flag() -> None:
    monday = date(2024, 3, 4)
    assert working_days_between(monday, date(2024, 3, 8)) == 4
    assert working_days_between(monday, date(2024, 3, 11)) == 5
    assert working_days_between(date(2024, 3, 8), monday) == -4
    risky = forecast(_task(ahead=30), Evidence.from_finished(_finished(40), AS_OF), AS_OF)
    assert risky.p_miss is not None
    as_of = datetime.combine(monday, datetime.min.time(), tzinfo=UTC)
    assert would_flag(risky, date(2024, 3, 7), as_of, threshold=0.0)  # 3 working days ahead
    assert not would_flag(risky, date(2024, 3, 6), as_of, threshold=0.0)  # only 2: too late
    assert not would_flag(risky, date(2024, 3, 7), as_of, threshold=risky.p_miss + 0.01)
