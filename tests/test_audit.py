"""`syncd audit`: the three reports on hand-built ledgers, every format, and the
HTML page in a real headless Chromium (no console errors, no network)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from syncd.cli import app
from syncd.config import PolicySettings, RuleSettings
from syncd.ledger.repository import Ledger
from syncd.model import Priority, Status, Task
from syncd.reports import build_report, render
from syncd.reports.rows import rows
from syncd.rules.engine import CompiledRule, compile_rules, evaluate

NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
POLICY = PolicySettings()
CHROMIUM = "/usr/bin/chromium"
OUTPUT = Path(__file__).resolve().parent.parent / "test-output"
RULES = [
    {"id": "owner", "kind": "single_owner", "severity": "error"},
    {"id": "due", "kind": "due_date", "severity": "warning"},
]


def task(key: str, **fields: Any) -> Task:
    source = fields.pop("source", "gh" if "#" in key else "ops")
    base: dict[str, Any] = {
        "title": f"Work on {key}",
        "url": f"https://example.test/{key}",
        "owners": ["alice"],
        "due": date(2026, 3, 20),
        "priority": Priority.MEDIUM,
        "status": Status.OPEN,
        "created_at": NOW - timedelta(days=20),
    }
    base.update(fields)
    return Task(source=source, external_id=f"id-{key}", key=key, **base)


def store(ledger: Ledger, *tasks: Task, now: datetime = NOW) -> None:
    for source in sorted({t.source for t in tasks}):
        ledger.ingest_page(source, [t for t in tasks if t.source == source], now=now)
    ledger.resolve_links()


def compiled(specs: list[dict[str, Any]] = RULES) -> list[CompiledRule]:
    return compile_rules([RuleSettings.model_validate(spec) for spec in specs])


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    opened = Ledger.open(f"sqlite:///{tmp_path / 'audit.db'}")
    yield opened
    opened.close()


@pytest.fixture
def ownership_ledger(ledger: Ledger) -> Ledger:
    """Every way of not having exactly one owner, each with different evidence."""
    store(
        ledger,
        task("OPS-1", reporter="dave"),
        task(
            "OPS-2",
            owners=[],
            reporter="dave",
            participants=["dave", "bob", "carol"],
            created_at=NOW - timedelta(days=30),
        ),
        task("OPS-3", owners=[], team="Platform", reporter="erin"),
        task("OPS-4", owners=["frank"], reporter="erin"),
        task("OPS-9", owners=[], status=Status.DONE),
        task("acme/api#5", owners=["alice", "github:bob-o"], participants=["github:bob-o"]),
        task("acme/api#6", owners=["github:team"], links=["OPS-1"]),
        task("acme/api#7", owners=["email:support@acme.example"]),
        task("acme/api#8", owners=["gina"]),
        task("C01/1700000000.000100", source="chat", owners=[], created_at=None),
    )
    return ledger


@pytest.fixture
def history_ledger(ledger: Ledger) -> Ledger:
    """Violations over three days: four found on 1 March, one resolved on 3 March."""
    first = NOW - timedelta(days=3)
    store(
        ledger,
        task("OPS-1"),
        task("OPS-2", owners=[]),
        task("OPS-3", due=None),
        task("acme/api#1"),
        task("acme/api#2", owners=[], due=None),
        now=first,
    )
    evaluate(ledger, compiled(), POLICY, first)
    store(ledger, task("OPS-3"), now=NOW - timedelta(days=1))
    evaluate(ledger, compiled(), POLICY, NOW - timedelta(days=1))
    evaluate(ledger, compiled(), POLICY, NOW)
    return ledger


# --- ownerless ---------------------------------------------------------------------------


def test_ownerless_lists_each_problem_with_a_suggested_owner(ownership_ledger: Ledger) -> None:
    report = build_report(ownership_ledger, "ownerless", now=NOW)
    found = {
        t["key"]: (t["problem"], t["problem_text"], t["suggested_owner"], t["suggestion_reason"])
        for t in report["tasks"]
    }
    assert found == {
        "OPS-2": (
            "none",
            "no owner",
            "carol",
            "carol joined it most recently of the 2 people active on it",
        ),
        "OPS-3": (
            "team_only",
            "no owner (team Platform only)",
            "frank",
            "frank owns 1 of the 1 other tasks erin raised",
        ),
        "acme/api#5": (
            "several",
            "2 owners: alice, github:bob-o",
            "github:bob-o",
            "github:bob-o is one of the 2 owners and the latest of them to take part in it",
        ),
        "acme/api#6": (
            "team",
            "owned by a team, not a person: github:team",
            "alice",
            "alice owns the same work in ops (OPS-1)",
        ),
        "acme/api#7": (
            "team",
            "owned by a team, not a person: email:support@acme.example",
            "gina",
            "gina owns 1 of the 3 other open tasks in acme/api",
        ),
        "C01/1700000000.000100": (
            "none",
            "no owner",
            None,
            "nobody is active on it yet and its project has no usual owner",
        ),
    }
    # Grouped by source and project, the oldest first; age, reporter and link kept.
    assert [(t["source"], t["project"], t["key"]) for t in report["tasks"]] == [
        ("chat", "C01", "C01/1700000000.000100"),
        ("gh", "acme/api", "acme/api#5"),
        ("gh", "acme/api", "acme/api#6"),
        ("gh", "acme/api", "acme/api#7"),
        ("ops", "OPS", "OPS-2"),
        ("ops", "OPS", "OPS-3"),
    ]
    ops2 = next(t for t in report["tasks"] if t["key"] == "OPS-2")
    assert (ops2["age_days"], ops2["reporter"], ops2["url"]) == (
        30,
        "dave",
        "https://example.test/OPS-2",
    )
    assert report["groups"][0] == {"source": "chat", "project": "C01", "count": 1}
    assert report["summary"]["ownerless"] == 6


def test_ownerless_needs_no_rules_or_evaluation(ownership_ledger: Ledger) -> None:
    report = build_report(ownership_ledger, "ownerless", now=NOW)
    assert report["summary"]["open_violations"] == 0
    assert report["summary"]["compliance_percent"] is None
    assert len(report["tasks"]) == 6


def test_team_aliases_come_from_the_policy(ledger: Ledger) -> None:
    store(ledger, task("OPS-1", owners=["platform-oncall"]))
    assert build_report(ledger, "ownerless", now=NOW)["tasks"] == []
    policy = PolicySettings(team_aliases=["platform-oncall"])
    [row] = build_report(ledger, "ownerless", policy=policy, now=NOW)["tasks"]
    assert row["problem"] == "team"


# --- violations and compliance ------------------------------------------------------------


def test_violations_report_joins_open_violations_with_their_tasks(
    history_ledger: Ledger,
) -> None:
    report = build_report(history_ledger, "violations", rules=compiled(), now=NOW)
    assert report["report"] == "violations"
    assert [(v["severity"], v["rule"], v["task"]["key"]) for v in report["violations"]] == [
        ("error", "owner", "acme/api#2"),
        ("error", "owner", "OPS-2"),
        ("warning", "due", "acme/api#2"),
    ]
    first = report["violations"][0]
    assert set(first) == {"rule", "kind", "severity", "message", "first_seen", "task"}
    assert first["kind"] == "single_owner" and first["message"] == "no owner"
    assert first["first_seen"] == (NOW - timedelta(days=3)).isoformat()
    assert {"source", "key", "url", "title", "status", "owners", "due", "priority"} <= set(
        first["task"]
    )


def test_compliance_percentages_and_trend(history_ledger: Ledger) -> None:
    report = build_report(history_ledger, "compliance", rules=compiled(), now=NOW)
    assert report["overall"] == {"tasks": 5, "compliant": 3, "percent": 60.0}
    assert {r["rule"]: (r["tasks"], r["compliant"], r["percent"]) for r in report["rules"]} == {
        "owner": (5, 3, 60.0),
        "due": (5, 4, 80.0),
    }
    assert {s["source"]: s["percent"] for s in report["sources"]} == {"gh": 50.0, "ops": 66.7}
    assert next(s for s in report["sources"] if s["source"] == "gh")["rules"] == {
        "due": 50.0,
        "owner": 50.0,
    }
    assert report["projects"] == [
        {"source": "gh", "project": "acme/api", "tasks": 2, "compliant": 1, "percent": 50.0},
        {"source": "ops", "project": "OPS", "tasks": 3, "compliant": 2, "percent": 66.7},
    ]
    trend = report["trend"]
    assert len(trend) == 14 and trend[-1]["date"] == "2026-03-04"
    assert [(p["date"][5:], p["open"], p["new"], p["resolved"]) for p in trend[-5:]] == [
        ("02-28", 0, 0, 0),
        ("03-01", 4, 4, 0),
        ("03-02", 4, 0, 0),
        ("03-03", 3, 0, 1),
        ("03-04", 3, 0, 0),
    ]


# --- formats ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ownerless", "violations", "compliance"])
def test_json_and_csv_hold_the_same_rows(ownership_ledger: Ledger, name: str) -> None:
    rules = compiled()
    evaluate(ownership_ledger, rules, POLICY, NOW)
    report = build_report(ownership_ledger, name, rules=rules, now=NOW)
    parsed = json.loads(render(report, "json"))
    assert parsed["report"] == name and parsed["generated_at"] == NOW.isoformat()
    from_csv = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    from_json = rows(parsed)
    assert len(from_csv) == len(from_json) > 0
    for csv_row, json_row in zip(from_csv, from_json, strict=True):
        assert csv_row == {k: "" if v is None else str(v) for k, v in json_row.items()}


def test_markdown_and_table_render(ownership_ledger: Ledger) -> None:
    report = build_report(ownership_ledger, "ownerless", now=NOW)
    markdown = render(report, "md")
    lines = markdown.splitlines()
    assert lines[0] == "# Ownerless tasks"
    header = next(i for i, line in enumerate(lines) if line.startswith("| source"))
    assert lines[header + 1].startswith("|---|")
    assert len([line for line in lines[header + 2 :] if line.startswith("| ")]) == 6
    assert "carol joined it most recently" in markdown
    table = render(report, "table")
    assert "ops · OPS" in table and "suggested owner" in table


def test_audit_command(history_ledger: Ledger, tmp_path: Path) -> None:
    url = history_ledger.engine.url.render_as_string(hide_password=False)
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[ledger]\nurl = "{url}"\n\n'
        '[[rules]]\nid = "owner"\nkind = "single_owner"\nseverity = "error"\n\n'
        '[[rules]]\nid = "due"\nkind = "due_date"\n'
    )
    runner = CliRunner()
    result = runner.invoke(app, ["audit", "-c", str(config), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["report"] == "ownerless"  # the default report
    assert [t["key"] for t in report["tasks"]] == ["acme/api#2", "OPS-2"]
    target = tmp_path / "audit.html"
    result = runner.invoke(
        app, ["audit", "-c", str(config), "-r", "compliance", "-f", "html", "-o", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert target.read_text().startswith("<!DOCTYPE html>")
    result = runner.invoke(app, ["audit", "-c", str(config), "--report", "owners"])
    assert result.exit_code == 2 and "--report must be one of" in result.output
    result = runner.invoke(app, ["audit", "-c", str(config), "--format", "xml"])
    assert result.exit_code == 2


# --- HTML in a real browser ---------------------------------------------------------------


def _chromium() -> str:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    reason = f"Debian's chromium is not installed ({CHROMIUM}); apt-get install chromium"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def test_html_report_renders_offline_in_chromium(history_ledger: Ledger, tmp_path: Path) -> None:
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api")
    store(history_ledger, task("OPS-7", owners=[], participants=["bob"]), now=NOW)
    pages = {}
    for name in ("ownerless", "violations", "compliance"):
        report = build_report(history_ledger, name, rules=compiled(), now=NOW)
        pages[name] = tmp_path / f"{name}.html"
        pages[name].write_text(render(report, "html"), encoding="utf-8")
    OUTPUT.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox", "--headless", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync",
            ],  # launch() gives the browser a fresh temporary profile of its own
        )  # fmt: skip
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            requests: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("request", lambda r: requests.append(r.url))
            for name, path in pages.items():
                page.goto(path.as_uri())
                assert page.locator("h1").inner_text() in {
                    "Ownerless tasks",
                    "Open violations",
                    "Compliance",
                }
                chart = page.locator("svg.chart").first
                assert chart.is_visible()
                box = chart.bounding_box()
                assert box is not None and box["width"] > 200 and box["height"] > 50
                assert page.locator("table").count() >= 1
                page.screenshot(path=str(OUTPUT / f"audit-{name}.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert [url for url in requests if not url.startswith("file://")] == []
    assert len(requests) == len(pages)  # the page itself, nothing else
    shutil.copy(pages["ownerless"], OUTPUT / "audit-ownerless.html")
