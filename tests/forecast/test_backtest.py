"""The replay contract on hand-made issues, no peeking on a cut export, and the CLI."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from syncd.cli import app
from syncd.connectors.jira.history import history_from_issues, read_export
from syncd.forecast.backtest import Pair, default_origins, replay, run_backtest
from tests.forecast.jira_export import cut_export, issue, status_item

FIXTURE = Path(__file__).parent / "fixtures" / "duracloud-2011.jsonl.gz"


def at(day: str, clock: str = "10:00") -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}:00+00:00")


def due_item(before: str | None, after: str | None, *, old_style: bool = False) -> dict[str, Any]:
    """A due-date change; old Jira wrote the value only in fromString / toString."""
    return {
        "field": "duedate",
        "from": None if old_style else before,
        "fromString": f"{before} 00:00:00.0" if before else None,
        "to": None if old_style else after,
        "toString": f"{after} 00:00:00.0" if after else None,
    }


@pytest.fixture
def hand_made() -> list[dict[str, Any]]:
    released = {"id": "10", "name": "1.0", "releaseDate": "2020-03-27"}
    undated = {"id": "11", "name": "later"}
    return [
        issue(  # due set, then moved at exactly Monday 00:00; done after the first date
            "P-1",
            at("2020-01-01", "00:00"),
            status="Closed",
            resolution="Fixed",
            due="2020-04-10",
            histories=[
                (at("2020-03-03"), [due_item(None, "2020-03-20")]),
                (at("2020-03-16", "00:00"), [due_item("2020-03-20", "2020-04-10", old_style=True)]),
                (at("2020-03-25"), [status_item("Open", "Closed")]),
            ],
        ),
        issue(  # deadline from its fix version; closed as Won't Fix
            "P-2",
            at("2020-01-02"),
            status="Closed",
            resolution="Won't Fix",
            versions=[released, undated],
            histories=[
                (at("2020-02-10"), [_version_item("10", "1.0"), _version_item("11", "later")]),
                (at("2020-03-18"), [status_item("Open", "Closed")]),
            ],
        ),
        issue("P-3", at("2020-03-10"), due="2020-03-13"),  # created after 9 Mar, due before 16
        issue(  # open at the end of the data, deadline after it: outcome unknown
            "P-4",
            at("2020-01-03"),
            due="2020-12-31",
            histories=[
                (
                    at("2020-06-01"),
                    [{"field": "priority", "fromString": "Minor", "toString": "Major"}],
                )
            ],
        ),
        issue(  # resolved, reopened, resolved again before its due date
            "P-5",
            at("2020-01-01"),
            status="Resolved",
            due="2020-03-20",
            histories=[
                (at("2020-03-05"), [status_item("Open", "Resolved")]),
                (at("2020-03-12"), [status_item("Resolved", "Reopened")]),
                (at("2020-03-19"), [status_item("Reopened", "Resolved")]),
            ],
        ),
    ]


def _version_item(version_id: str, name: str) -> dict[str, Any]:
    return {
        "field": "Fix Version",
        "from": None,
        "fromString": None,
        "to": version_id,
        "toString": name,
    }


def _pairs(issues: list[dict[str, Any]]) -> dict[tuple[str, date], Pair]:
    history = history_from_issues(issues)
    origins = default_origins(history, date(2020, 3, 2), date(2020, 3, 30))
    return {(p.task.key, p.as_of.date()): p for p in replay(history, origins)}


def test_origins_are_mondays_from_90_days_after_the_first_issue(
    hand_made: list[dict[str, Any]],
) -> None:
    history = history_from_issues(hand_made)
    origins = default_origins(history)
    assert origins[0] == datetime(2020, 4, 6, tzinfo=UTC)  # 1 Jan + 90 days is Tue 31 Mar
    assert origins[-1] == datetime(2020, 6, 1, tzinfo=UTC)  # the latest change, a Monday
    assert all(o.weekday() == 0 and o.hour == 0 for o in origins)


def test_eligibility_deadlines_and_outcomes(hand_made: list[dict[str, Any]]) -> None:
    pairs = _pairs(hand_made)
    assert ("P-1", date(2020, 3, 2)) not in pairs  # no deadline known yet
    first = pairs[("P-1", date(2020, 3, 9))]
    assert (first.task.deadline, first.task.deadline_source) == (date(2020, 3, 20), "due")
    assert first.missed is True  # done on the 25th: the deadline known then was the 20th
    moved = pairs[("P-1", date(2020, 3, 16))]  # a change dated exactly t is known at t
    assert moved.task.deadline == date(2020, 4, 10) and moved.missed is False
    assert moved.task.deadline_moves == 1
    assert ("P-1", date(2020, 3, 30)) not in pairs  # done by then
    version = pairs[("P-2", date(2020, 3, 9))]
    assert (version.task.deadline, version.task.deadline_source) == (
        date(2020, 3, 27),
        "fix_version",
    )
    assert version.excluded and not version.scored  # Won't Fix: forecast, not scored
    assert not any(
        key == "P-3" for key, _ in pairs
    )  # created after one origin, past due by the next
    assert pairs[("P-4", date(2020, 3, 9))].missed is None  # the data ends before its deadline
    assert ("P-5", date(2020, 3, 9)) not in pairs  # resolved at the time
    reopened = pairs[("P-5", date(2020, 3, 16))]
    assert reopened.missed is False  # entered Resolved again on the 19th


def test_old_jira_due_dates_are_read_from_from_string(hand_made: list[dict[str, Any]]) -> None:
    task = history_from_issues(hand_made).tasks[0]
    assert task.due.at(at("2020-03-15", "23:59")) == date(2020, 3, 20)
    assert task.due.at(at("2020-03-16", "00:00")) == date(2020, 4, 10)
    assert task.due.at(at("2020-03-02")) is None


def test_a_forecast_does_not_change_when_the_export_is_cut() -> None:
    full = read_export(FIXTURE)
    cut_at = datetime(2011, 9, 6, 12, tzinfo=UTC)  # a Tuesday; Monday 5 Sep is before it
    shortened = cut_export(full, cut_at)
    assert len(shortened) == len(full)  # the fixture's issues are all older than the cut
    changes_after = sum(len(i["changelog"]["histories"]) for i in full) - sum(
        len(i["changelog"]["histories"]) for i in shortened
    )
    assert changes_after > 20  # the cut really removes history
    origins = default_origins(history_from_issues(full), end=cut_at.date())

    def forecasts(issues: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        pairs = replay(history_from_issues(issues), origins, seed=1)
        return [(p.task, p.as_of, p.forecast) for p in pairs]

    before, after = forecasts(full), forecasts(shortened)
    assert len(before) > 30 and sum(1 for _, _, f in before if f.assessed) > 15
    assert before == after


def test_the_cli_backtest_writes_the_json_contract(tmp_path: Path) -> None:
    out = tmp_path / "backtest.json"
    result = CliRunner().invoke(
        app,
        ["forecast", "backtest", "--jira-export", str(FIXTURE), "--format", "json", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert set(data) == {"forecasts", "metrics", "baselines"}
    history = history_from_issues(read_export(FIXTURE))
    expected = run_backtest(history)
    assert len(data["forecasts"]) == len(expected.pairs) > 50
    for entry in data["forecasts"]:
        assert set(entry) == {
            "key",
            "as_of",
            "deadline",
            "deadline_source",
            "p_miss",
            "p50",
            "p85",
            "flag",
            "reasons",
        }
        assert entry["as_of"].endswith("T00:00:00Z")
        assert datetime.fromisoformat(entry["as_of"]).weekday() == 0
        assert entry["deadline_source"] in {"due", "fix_version"}
        assert date.fromisoformat(entry["deadline"]) >= date.fromisoformat(entry["as_of"][:10])
        if entry["p_miss"] is None:
            assert entry["p85"] is None and not entry["flag"]
        else:
            assert 0 <= entry["p_miss"] <= 1 and entry["reasons"]
            assert date.fromisoformat(entry["p50"]) <= date.fromisoformat(entry["p85"])
    metrics = data["metrics"]
    assert metrics["eligible"] == len(data["forecasts"])
    assert metrics["assessed"] >= 0.8 * metrics["eligible"]
    for field in (
        "auc",
        "brier",
        "brier_skill",
        "precision",
        "recall",
        "reliability",
        "p85_coverage",
    ):
        assert field in metrics
    assert len(metrics["reliability"]) == 10
    assert set(data["baselines"]) == {"base_rate", "days_left", "badge", "velocity"}
    assert all(b["scored"] == metrics["scored"] for b in data["baselines"].values())


def test_the_cli_table_and_its_usage_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(
        app, ["forecast", "backtest", "--jira-export", str(FIXTURE), "--end", "2011-12-31"]
    )
    assert shown.exit_code == 0, shown.output
    assert "AUC" in shown.output and "velocity" in shown.output
    missing = runner.invoke(
        app, ["forecast", "backtest", "--jira-export", str(tmp_path / "none.jsonl")]
    )
    assert missing.exit_code == 2
    bad_day = runner.invoke(
        app, ["forecast", "backtest", "--jira-export", str(FIXTURE), "--start", "soon"]
    )
    assert bad_day.exit_code == 2
    gz = tmp_path / "plain.jsonl"
    with gzip.open(FIXTURE, "rt") as source:
        gz.write_text(source.read())
    plain = runner.invoke(
        app, ["forecast", "backtest", "--jira-export", str(gz), "--format", "json"]
    )
    assert plain.exit_code == 0 and json.loads(plain.stdout)["metrics"]["eligible"] > 50


def test_the_teams_deadline_record_holds_only_deadlines_decided_by_then(
    hand_made: list[dict[str, Any]],
) -> None:
    pairs = _pairs(hand_made)
    # P-5 met its 20 Mar deadline on 5 Mar (reopened later: still met then).
    assert pairs[("P-1", date(2020, 3, 9))].evidence.record("P") == (1, 0)
    # P-3's 13 Mar deadline passed open; P-1's 20 Mar moved before it came: no outcome.
    assert pairs[("P-1", date(2020, 3, 16))].evidence.record("P") == (1, 1)


def test_fix_versions_and_blocking_links_roll_back_through_the_changelog() -> None:
    blocked = issue(
        "P-7",
        at("2020-01-01"),
        versions=[{"id": "20", "name": "2.0", "releaseDate": "2020-05-01"}],
        histories=[
            (at("2020-02-01"), [_version_item("20", "2.0")]),
            (
                at("2020-03-01"),
                [
                    {
                        "field": "Link",
                        "from": None,
                        "fromString": None,
                        "to": "P-8",
                        "toString": "This issue depends on P-8",
                    }
                ],
            ),
        ],
    )
    blocked["fields"]["issuelinks"] = [
        {
            "type": {"name": "Dependency", "inward": "required by", "outward": "depends on"},
            "outwardIssue": {"key": "P-8"},
        },
        {
            "type": {"name": "Related", "inward": "relates to", "outward": "relates to"},
            "outwardIssue": {"key": "P-9"},
        },
    ]
    history = history_from_issues([blocked, issue("P-8", at("2020-01-05"))])
    task = history.tasks[0]
    assert task.fix_versions.at(at("2020-01-31")) == frozenset()
    assert task.fix_versions.at(at("2020-02-01")) == {"20"}
    assert history.version_dates["20"] == date(2020, 5, 1)
    assert task.blocked_by.at(at("2020-02-29")) == frozenset()
    assert task.blocked_by.at(at("2020-03-02")) == {"P-8"}  # related links do not block
    pairs = replay(history, default_origins(history, date(2020, 3, 2), date(2020, 3, 2)))
    (pair,) = [p for p in pairs if p.task.key == "P-7"]
    assert [b.key for b in pair.task.blockers] == ["P-8"] and pair.task.status == "blocked"


def test_done_statuses_come_from_categories_anywhere_in_the_export() -> None:
    linking = issue("P-1", at("2020-01-01"), status="Open")
    linking["fields"]["issuelinks"] = [
        {
            "type": {"name": "Related", "inward": "relates to", "outward": "relates to"},
            "outwardIssue": {
                "key": "X-1",
                "fields": {"status": {"name": "Shipped", "statusCategory": {"key": "done"}}},
            },
        }
    ]
    history = history_from_issues([linking])
    assert history.is_done("Shipped") and history.is_done("resolved") and history.is_done("Closed")
    assert not history.is_done("Open")
