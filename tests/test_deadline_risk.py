"""The deadline_risk rule kind over a ledger: flags, reasons, clearing, thin evidence, cache."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.forecast.ledger import board_for
from syncd.ledger.repository import Ledger
from syncd.model import Status, StatusChange, Task
from syncd.rules.engine import evaluate
from tests.test_rules import NOW, POLICY, open_violations, rules, store, task

RISK = {"id": "risk", "kind": "deadline_risk"}


def finished(i: int, *, missed: bool = True) -> Task:
    """Work of the team done over the last half year, 30 days from creation to done."""
    created = NOW - timedelta(days=170 - i * 10)
    done = created + timedelta(days=30)
    due = (created + timedelta(days=20 if missed else 40)).date()
    change = StatusChange(done, "Open", "Done", to_status=Status.DONE)
    return task(f"OPS-{100 + i}", status=Status.DONE, created_at=created, closed_at=done,
                due=due, status_changes=[change])  # fmt: skip


def heading_for_a_miss(**fields: Any) -> Task:
    """Open 150 days, idle 45, due in 6 working days, in a team that misses its deadlines."""
    base: dict[str, Any] = {
        "due": date(2026, 3, 12),
        "created_at": NOW - timedelta(days=150),
        "last_activity_at": NOW - timedelta(days=45),
    }
    return task("OPS-1", **{**base, **fields})


def fresh(**fields: Any) -> Task:
    base: dict[str, Any] = {"owners": ["bob"], "due": date(2026, 5, 4),
                            "created_at": NOW - timedelta(days=2)}  # fmt: skip
    return task("OPS-2", **{**base, **fields})


@pytest.fixture
def ledger(tmp_path: Path) -> Any:
    opened = Ledger.open(f"sqlite:///{tmp_path / 'risk.db'}")
    yield opened
    opened.close()


def test_flags_the_task_heading_for_a_miss_with_the_reason(ledger: Ledger) -> None:
    store(ledger, *[finished(i) for i in range(14)], heading_for_a_miss(), fresh())
    result = evaluate(ledger, rules(RISK), POLICY, NOW)
    found = open_violations(ledger)
    assert set(found) == {("risk", "OPS-1")}
    message = found[("risk", "OPS-1")]
    risk = board_for(ledger).cache[ledger.task_by_key("OPS-1").id]  # type: ignore[union-attr]
    assert risk.forecast.p_miss is not None and risk.forecast.p_miss >= 0.72
    assert message.startswith(f"{risk.forecast.p_miss:.0%} likely to miss its due date 2026-03-12")
    assert all(reason in message for reason in risk.forecast.reasons)
    assert "no activity for 45 days" in message
    assert result.rules["risk"].new == 1


def test_threshold_min_lead_and_horizon(ledger: Ledger) -> None:
    store(ledger, *[finished(i) for i in range(14)], heading_for_a_miss(), fresh())
    evaluate(ledger, rules({**RISK, "threshold": 0.99}), POLICY, NOW)
    assert open_violations(ledger) == {}
    evaluate(ledger, rules({**RISK, "min_lead": 7}), POLICY, NOW)  # 6 working days left
    assert open_violations(ledger) == {}
    evaluate(ledger, rules({**RISK, "horizon": 5}), POLICY, NOW)
    assert open_violations(ledger) == {}
    evaluate(ledger, rules({**RISK, "horizon": 6}), POLICY, NOW)
    assert set(open_violations(ledger)) == {("risk", "OPS-1")}


def test_clears_when_the_risk_drops(ledger: Ledger) -> None:
    store(ledger, *[finished(i) for i in range(14)], heading_for_a_miss(), fresh())
    evaluate(ledger, rules(RISK), POLICY, NOW)
    assert set(open_violations(ledger)) == {("risk", "OPS-1")}
    later = NOW + timedelta(hours=2)
    # Picked up again today and given a realistic date: the forecast drops below the threshold.
    moved = heading_for_a_miss(status=Status.IN_PROGRESS, last_activity_at=later,
                               due=date(2026, 9, 30), updated_at=later)  # fmt: skip
    store(ledger, moved, now=later)
    result = evaluate(ledger, rules(RISK), POLICY, later)
    assert not result.full
    assert open_violations(ledger) == {}
    assert result.rules["risk"].resolved == 1


def test_thin_evidence_is_not_assessed_and_not_flagged(ledger: Ledger) -> None:
    store(ledger, *[finished(i) for i in range(3)], heading_for_a_miss())
    evaluate(ledger, rules(RISK), POLICY, NOW)
    assert open_violations(ledger) == {}
    risk = board_for(ledger).cache[ledger.task_by_key("OPS-1").id]  # type: ignore[union-attr]
    assert not risk.forecast.assessed and risk.forecast.p_miss is None
    assert risk.forecast.not_assessed_reason


def test_only_changed_inputs_are_simulated_again(ledger: Ledger) -> None:
    others = [fresh(), replace(fresh(), key="OPS-3", external_id="id-OPS-3")]
    store(ledger, *[finished(i) for i in range(14)], heading_for_a_miss(), *others)
    board = board_for(ledger)
    evaluate(ledger, rules(RISK), POLICY, NOW)
    assert board.simulated == 3  # the three open tasks with a due date
    evaluate(ledger, rules(RISK), POLICY, NOW, full=True)
    assert board.simulated == 3  # same inputs, same day: every forecast from the cache
    later = NOW + timedelta(minutes=5)
    retitled = replace(fresh(), title="A new title", updated_at=later)
    store(ledger, retitled, now=later)
    evaluate(ledger, rules(RISK), POLICY, later)
    assert board.simulated == 3  # a title is no input of the forecast
    redated = replace(fresh(), due=date(2026, 4, 20), updated_at=later)
    store(ledger, redated, now=later)
    result = evaluate(ledger, rules(RISK), POLICY, later)
    assert result.evaluated == 1 and board.simulated == 4
    # Next day: the forecast's time threshold brings every forecast task back.
    tomorrow = datetime.combine(NOW.date() + timedelta(days=1), NOW.timetz())
    result = evaluate(ledger, rules(RISK), POLICY, tomorrow)
    assert result.came_due == 3 and board.simulated == 7


def test_a_cold_board_reads_the_ledger_once(ledger: Ledger) -> None:
    """A new process starting with an incremental evaluation (`syncd reconcile`)."""
    from syncd.forecast.ledger import forget_boards

    store(ledger, *[finished(i) for i in range(14)], heading_for_a_miss(), fresh())
    evaluate(ledger, rules(RISK), POLICY, NOW)
    forget_boards()
    later = NOW + timedelta(minutes=5)
    store(ledger, replace(fresh(), due=date(2026, 4, 20), updated_at=later), now=later)
    result = evaluate(ledger, rules(RISK), POLICY, later)
    assert not result.full and result.evaluated == 1
    assert set(open_violations(ledger)) == {("risk", "OPS-1")}
    assert board_for(ledger).loaded and board_for(ledger).simulated == 1


def test_deadline_moves_come_from_the_field_history(ledger: Ledger) -> None:
    store(ledger, *[finished(i) for i in range(14)], heading_for_a_miss(), fresh())
    board = board_for(ledger)
    evaluate(ledger, rules(RISK), POLICY, NOW)
    task_id = ledger.task_by_key("OPS-1").id  # type: ignore[union-attr]
    assert board.cache[task_id].moment.deadline_moves == 0
    later = NOW + timedelta(hours=1)
    store(ledger, heading_for_a_miss(due=date(2026, 3, 13), updated_at=later), now=later)
    evaluate(ledger, rules(RISK), POLICY, later)
    assert board.cache[task_id].moment.deadline_moves == 1
    assert board.cache[task_id].moment.deadline == date(2026, 3, 13)


def test_without_a_due_date_the_fix_version_date_is_the_deadline(ledger: Ledger) -> None:
    release = [{"id": "10001", "name": "2.4", "date": "2026-03-12"},
               {"id": "10002", "name": "3.0", "date": "2026-06-30"}]  # fmt: skip
    store(ledger, *[finished(i) for i in range(14)],
          heading_for_a_miss(due=None, fix_versions=release))  # fmt: skip
    evaluate(ledger, rules(RISK), POLICY, NOW)
    message = open_violations(ledger)[("risk", "OPS-1")]
    assert "likely to miss its fix version date 2026-03-12:" in message
    risk = board_for(ledger).cache[ledger.task_by_key("OPS-1").id]  # type: ignore[union-attr]
    assert risk.moment.deadline_source == "fix_version"
