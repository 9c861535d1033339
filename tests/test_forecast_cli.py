"""`syncd forecast`: table, JSON and the HTML page (in Chromium too), --owner, --as-of."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from syncd.cli import app
from syncd.ledger.repository import Ledger
from syncd.model import Status, StatusChange, Task

OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
CHROMIUM = "/usr/bin/chromium"
HOSTILE = '<img src=x onerror=alert(1)> "Q3" </svg><script>alert(2)</script>'


def world(now: datetime) -> list[Task]:
    """A team that misses its deadlines; one task idle for 45 days, due in 6 working days."""

    def make(key: str, **fields: Any) -> Task:
        base: dict[str, Any] = {"title": f"Work on {key}", "owners": ["alice"],
                                "status": Status.OPEN, "created_at": now - timedelta(days=20),
                                "last_activity_at": now - timedelta(days=1)}  # fmt: skip
        return Task(source="ops", external_id=f"id-{key}", key=key, **{**base, **fields})

    tasks = []
    for i in range(14):
        created = now - timedelta(days=170 - i * 10)
        done = created + timedelta(days=30)
        change = StatusChange(done, "Open", "Done", to_status=Status.DONE)
        tasks.append(make(f"OPS-{100 + i}", status=Status.DONE, created_at=created,
                          closed_at=done, due=(created + timedelta(days=20)).date(),
                          status_changes=[change], owners=["alice" if i % 2 else "bob"]))  # fmt: skip
    tasks.append(make("OPS-1", title=HOSTILE, due=_working_days_after(now.date(), 6),
                      created_at=now - timedelta(days=150),
                      last_activity_at=now - timedelta(days=45)))  # fmt: skip
    tasks.append(make("OPS-2", owners=["bob"], due=now.date() + timedelta(days=60),
                      created_at=now - timedelta(days=2)))  # fmt: skip
    return tasks


def _working_days_after(day: date, count: int) -> date:
    while count:
        day += timedelta(days=1)
        count -= day.weekday() < 5
    return day


def config_for(tmp_path: Path, now: datetime, extra: str = "") -> Path:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger.open(url)
    ledger.ingest_page("ops", world(now), now=now)
    ledger.close()
    path = tmp_path / "syncd.toml"
    path.write_text(f'[ledger]\nurl = "{url}"\n{extra}')
    return path


def forecast(*args: str) -> Any:
    result = CliRunner().invoke(app, ["forecast", *args])
    assert result.exit_code == 0, result.output
    return result


def test_json_lists_the_task_at_risk_first_with_its_reasons(tmp_path: Path) -> None:
    config = config_for(tmp_path, datetime.now(UTC))
    out = json.loads(forecast("-c", str(config), "--format", "json").stdout)
    assert [t["key"] for t in out["at_risk"]] == ["OPS-1"]
    risky = out["at_risk"][0]
    assert risky["flag"] and risky["p_miss"] >= out["threshold"] == 0.72
    assert risky["title"] == HOSTILE  # data stays data in JSON
    assert any("no activity for 45 days" in r for r in risky["reasons"])
    assert date.fromisoformat(risky["p85"]) > date.fromisoformat(risky["deadline"])
    p_misses = [t["p_miss"] for t in out["forecasts"]]
    assert p_misses == sorted(p_misses, reverse=True) and len(p_misses) == 2
    people = {row["owner"]: row for row in out["people"]}
    assert people["alice"]["open"] == 1 and people["alice"]["at_risk"] == 1
    assert people["bob"]["at_risk"] == 0 and people["bob"]["weekly_throughput"] > 0


def test_owner_filter_and_the_rule_parameters_from_the_config(tmp_path: Path) -> None:
    strict = '[[rules]]\nid = "risk"\nkind = "deadline_risk"\nthreshold = 0.99\n'
    config = config_for(tmp_path, datetime.now(UTC), strict)
    out = json.loads(forecast("-c", str(config), "-f", "json", "--owner", "bob").stdout)
    assert [t["key"] for t in out["forecasts"]] == ["OPS-2"]
    assert [row["owner"] for row in out["people"]] == ["bob"]
    out = json.loads(forecast("-c", str(config), "-f", "json").stdout)
    assert out["threshold"] == 0.99 and out["at_risk"] == []


def test_as_of_forecasts_from_what_was_finished_and_created_by_then(tmp_path: Path) -> None:
    now = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    config = config_for(tmp_path, now)
    out = json.loads(forecast("-c", str(config), "-f", "json", "--as-of", "2026-03-04").stdout)
    assert out["as_of"] == "2026-03-04T00:00:00+00:00"
    assert [t["key"] for t in out["at_risk"]] == ["OPS-1"]
    # Before OPS-2 existed, and with half the team's history: OPS-2 is not forecast.
    early = json.loads(forecast("-c", str(config), "-f", "json", "--as-of", "2026-02-01").stdout)
    assert [t["key"] for t in early["forecasts"] + early["not_assessed"]] == ["OPS-1"]
    # Before the team had finished enough work: not assessed, with the reason.
    earliest = json.loads(forecast("-c", str(config), "-f", "json", "--as-of", "2025-11-01").stdout)
    assert earliest["forecasts"] == [] and earliest["not_assessed"][0]["not_assessed_reason"]
    result = CliRunner().invoke(app, ["forecast", "-c", str(config), "--as-of", "March"])
    assert result.exit_code == 2 and "--as-of must be a date" in result.output


def test_table_shows_risk_reason_and_load(tmp_path: Path) -> None:
    config = config_for(tmp_path, datetime.now(UTC))
    text = forecast("-c", str(config), "--format", "table", "-o", str(tmp_path / "t.txt"))
    assert "wrote" in text.output
    table = (tmp_path / "t.txt").read_text()
    assert "1 at risk of 2 forecast" in table and "OPS-1" in table
    assert "no activity for 45 days" in table and "load against throughput" in table
    assert re.search(r"alice\s+│\s+1\s+│\s+1\s+│\s+1", table)


def test_html_escapes_source_text_and_allows_nothing_else(tmp_path: Path) -> None:
    config = config_for(tmp_path, datetime.now(UTC))
    page = forecast("-c", str(config), "--format", "html").stdout
    assert "<img" not in page and "<script" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "default-src &#39;none&#39;" in page and 'data-tasks="1"' in page
    assert page.count('class="range"') == 1 and page.count('class="deadline"') == 1


def test_backtest_is_still_a_subcommand() -> None:
    result = CliRunner().invoke(app, ["forecast", "backtest", "--help"])
    assert result.exit_code == 0 and "--jira-export" in result.output


def test_html_chart_renders_in_chromium_without_csp_violations(tmp_path: Path) -> None:
    if not os.path.exists(CHROMIUM):
        reason = f"Debian's chromium is not installed ({CHROMIUM}); apt-get install chromium"
        pytest.fail(reason) if os.environ.get("CI") else pytest.skip(reason)
    sync_api = pytest.importorskip("playwright.sync_api")
    config = config_for(tmp_path, datetime.now(UTC))
    path = tmp_path / "forecast.html"
    forecast("-c", str(config), "--format", "html", "-o", str(path))
    OUTPUT.mkdir(exist_ok=True)
    problems: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"],
        )  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri())
            assert page.locator("h1").inner_text() == "Deadline risk"
            chart = page.locator("svg.finish")
            assert chart.is_visible()
            box = chart.bounding_box()
            assert box is not None and box["width"] > 400 and box["height"] > 40
            bar = page.locator("svg.finish rect.range").bounding_box()
            assert bar is not None and bar["width"] > 2
            # The stylesheet applied (the CSP hash matched): the late part is red.
            late = page.locator("svg.finish rect.late")
            assert late.evaluate("e => getComputedStyle(e).fill") == "rgb(220, 38, 38)"
            assert page.locator("#at-risk tbody tr").count() == 1
            assert page.evaluate("() => window.__xss === undefined")
            page.screenshot(path=str(OUTPUT / "forecast.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []  # a CSP violation is a console error
    assert [url for url in requests if not url.startswith("file://")] == []
