"""`syncd forecast backtest -c`: the ledger's own history replays as the export does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncd.cli import app
from syncd.connectors.jira.history import history_from_issues, read_export
from syncd.connectors.jira.mapping import map_issue
from syncd.connectors.jira.settings import JiraSettings
from syncd.forecast.backtest import run_backtest
from syncd.forecast.ledger_history import history_from_ledger
from syncd.ledger.repository import Ledger
from syncd.people import PeopleDirectory

FIXTURE = Path(__file__).parent / "fixtures" / "duracloud-2011.jsonl.gz"
SYNCED = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
SETTINGS = JiraSettings(kind="jira", url="https://jira.example", token="t", jql="project = X")


@pytest.fixture
def synced(tmp_path: Path) -> Path:
    """A ledger filled by the Jira connector's mapping of the export, in two pages and
    two syncs (the second re-reads everything), and its config file."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    issues = read_export(FIXTURE)
    people = PeopleDirectory()
    tasks = [map_issue(i, source="jira", settings=SETTINGS, people=people) for i in issues]
    ledger = Ledger.open(url)
    half = len(tasks) // 2
    ledger.ingest_page("jira", tasks[:half], now=SYNCED)
    ledger.ingest_page("jira", tasks[half:], now=SYNCED)
    ledger.ingest_page("jira", tasks, now=SYNCED + timedelta(hours=1))
    ledger.close()
    config = tmp_path / "syncd.toml"
    config.write_text(f'[ledger]\nurl = "{url}"\n')
    return config


def test_the_ledger_replays_exactly_as_the_export(synced: Path) -> None:
    ledger = Ledger.open(f"sqlite:///{synced.parent / 'ledger.db'}")
    from_ledger = history_from_ledger(ledger)
    ledger.close()
    from_export = history_from_issues(read_export(FIXTURE))
    assert (from_ledger.earliest, from_ledger.latest) == (from_export.earliest, from_export.latest)
    by_key = {task.key: task for task in from_ledger.tasks}
    for task in from_export.tasks:
        mine = by_key[task.key]
        for field in ("status", "resolution", "due", "fix_versions", "priority_rank"):
            assert getattr(mine, field) == getattr(task, field), (task.key, field)
        assert mine.estimate_hours == task.estimate_hours and mine.activity == task.activity
    expected = run_backtest(from_export).to_json()
    got = run_backtest(from_ledger).to_json()
    assert len(got["forecasts"]) == len(expected["forecasts"]) > 50
    assert got == expected


def test_the_cli_replays_the_ledger_like_the_export(synced: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    outputs = {}
    for name, source in (
        ("ledger", ["-c", str(synced)]),
        ("export", ["--jira-export", str(FIXTURE)]),
    ):
        out = tmp_path / f"{name}.json"
        result = runner.invoke(
            app,
            [
                "forecast",
                "backtest",
                *source,
                "--start",
                "2011-06-06",
                "--format",
                "json",
                "-o",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        outputs[name] = json.loads(out.read_text())
    assert outputs["ledger"] == outputs["export"]
    assert outputs["ledger"]["forecasts"][0]["as_of"] == "2011-06-06T00:00:00Z"


def test_exactly_one_of_export_and_config(synced: Path) -> None:
    runner = CliRunner()
    both = runner.invoke(
        app, ["forecast", "backtest", "--jira-export", str(FIXTURE), "-c", str(synced)]
    )
    neither = runner.invoke(app, ["forecast", "backtest"])
    assert (both.exit_code, neither.exit_code) == (2, 2)
    assert "exactly one" in both.output


def test_an_empty_ledger_says_so(tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_text(f'[ledger]\nurl = "sqlite:///{tmp_path / "empty.db"}"\n')
    result = CliRunner().invoke(app, ["forecast", "backtest", "-c", str(config)])
    assert result.exit_code == 1
    assert "no tasks" in result.output
