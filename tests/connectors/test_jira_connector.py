"""The Jira connector end to end: the real `jira` library against the sandbox's Jira."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from structlog.testing import capture_logs
from typer.testing import CliRunner

from syncd.cli import app
from syncd.config import PolicySettings
from syncd.connector import Connector, ConnectorContext, Listing, Page
from syncd.connectors.jira import JiraConnector, JiraSettings
from syncd.connectors.jira.connector import advance_cursor, changed_since_jql, listing_due
from syncd.ledger.repository import Ledger
from syncd.logs import get_logger
from syncd.people import PeopleDirectory, Person
from syncd.retry import RetryPolicy
from syncd.sandbox import Sandbox, World
from syncd.sandbox.generate import generate_world
from syncd.sync import SourceSummary, pull_source

TOKEN = "sandbox-jira-token"
SEARCH = "GET /rest/api/{version}/search/jql"
FAST = RetryPolicy(attempts=3, max_total_seconds=10, base_seconds=0.01, max_wait_seconds=5)


class ShiftedClock:
    """Real time moved by `offset`: the listing schedule travels, world stamps stay real."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


def settings(sandbox: Sandbox, **overrides: Any) -> JiraSettings:
    values: dict[str, Any] = {
        "kind": "jira",
        "url": sandbox.urls["jira"],
        "email": "bot@acme.example",
        "token": TOKEN,
        "jql": "project in (OPS, DEV)",
        "acceptance_field": "Acceptance Criteria",
        "team_field": "Team",
        "timeout": 5,
        **overrides,
    }
    return JiraSettings.model_validate(values)


def people(world: World) -> PeopleDirectory:
    return PeopleDirectory(
        Person(id=p.id, name=p.name, handles={"jira": p.jira})
        for p in world.people.values()
        if p.jira
    )


class Harness:
    """One sandbox and one ledger; `sync()` runs the connector once, like reconcile does."""

    def __init__(self, sandbox: Sandbox, ledger: Ledger) -> None:
        self.sandbox, self.ledger = sandbox, ledger
        self.clock = ShiftedClock()
        self.overrides: dict[str, Any] = {}

    def sync(self, **overrides: Any) -> SourceSummary:
        context = ConnectorContext(
            source="ops",
            people=people(self.sandbox.world),
            policy=PolicySettings(),
            clock=self.clock,
            log=get_logger("test.jira", source="ops"),
            read_cursor=lambda stream: self.ledger.cursor("ops", stream),
        )
        connector = JiraConnector(
            settings(self.sandbox, **{**self.overrides, **overrides}), context, retry=FAST
        )
        return pull_source(connector, "ops", self.ledger, self.clock)

    def task(self, key: str) -> Any:
        row = self.ledger.task_by_key(key, "ops")
        assert row is not None, f"{key} is not in the ledger"
        return row

    def searches(self) -> list[str]:
        """The JQL of every search request since the last reset."""
        return [
            parse_qs(e.query)["jql"][0]
            for e in self.sandbox.request_log.entries("jira")
            if e.route == SEARCH
        ]

    def routes(self) -> list[str]:
        return [e.route for e in self.sandbox.request_log.entries("jira")]


@pytest.fixture
def world() -> World:
    return World.default()


@pytest.fixture
def harness(world: World, sqlite_url: str) -> Iterator[Harness]:
    ledger = Ledger.open(sqlite_url)
    with Sandbox(world) as sandbox:
        yield Harness(sandbox, ledger)
    ledger.close()


def big_world(n: int) -> World:
    return World.from_dict(generate_world(github_issues=0, jira_issues=n, slack_messages=0, seed=7))


# --- pure decisions -------------------------------------------------------------------------


def test_incremental_jql_floors_to_minutes_in_the_account_zone() -> None:
    from zoneinfo import ZoneInfo

    cursor = {"updated": "2025-03-10T12:34:56+00:00"}
    jql = changed_since_jql("project = OPS", cursor, timedelta(minutes=10), ZoneInfo("Asia/Tokyo"))
    assert jql == '(project = OPS) AND updated >= "2025-03-10 21:24" ORDER BY updated ASC, key ASC'
    assert changed_since_jql("project = OPS", None, timedelta(minutes=10), UTC) == (
        "(project = OPS) ORDER BY updated ASC, key ASC"
    )


def test_cursor_never_moves_backwards_and_listing_schedule() -> None:
    later = {"updated": "2025-03-10T12:00:00+00:00"}
    assert advance_cursor(later, []) == later
    now = datetime(2025, 3, 10, tzinfo=UTC)
    assert listing_due(None, now, timedelta(hours=24))
    assert not listing_due(
        {"completed_at": now.isoformat()}, now + timedelta(hours=1), timedelta(hours=24)
    )
    assert listing_due(
        {"completed_at": now.isoformat()}, now + timedelta(hours=24), timedelta(hours=24)
    )


# --- syncing ----------------------------------------------------------------------------------


def test_first_sync_maps_every_field(harness: Harness) -> None:
    summary = harness.sync()
    assert not summary.failed, summary.error
    assert (summary.fetched, summary.new, summary.quarantined) == (5, 5, 0)

    ops1 = harness.task("OPS-1")
    assert ops1.owners == ["alice"] and ops1.reporter == "bob"
    assert (ops1.priority, ops1.priority_raw) == ("high", "High")
    assert ops1.status == "in_progress" and ops1.due == date.today() + timedelta(days=2)
    assert ops1.children == ["OPS-2"] and ops1.team == "Platform"
    assert ops1.acceptance_criteria == "All endpoints serve the new cert"
    assert (ops1.estimate_hours, ops1.logged_hours) == (8.0, 4.0)  # 1d = 8h; 4h logged
    history = harness.ledger.status_history(ops1.id)
    assert [(h.from_raw, h.to_raw) for h in history] == [("To Do", "In Progress")]

    assert harness.task("OPS-2").parent == "OPS-1"
    assert harness.task("OPS-3").status == "blocked" and harness.task("OPS-3").owners == []
    assert harness.task("OPS-4").blocked_by == ["OPS-3"]
    assert harness.task("DEV-1").status == "done" and harness.task("DEV-1").priority == "low"
    assert harness.task("OPS-1").url.endswith("/browse/OPS-1")


def test_verified_status_is_configurable(harness: Harness) -> None:
    harness.sync(verified_statuses=["Done"])
    assert harness.task("DEV-1").status == "verified"


def test_rerun_is_incremental_and_changes_nothing(harness: Harness) -> None:
    harness.sync()
    first = harness.ledger.cursor("ops", "issues")
    harness.sandbox.request_log.reset()

    summary = harness.sync()

    assert (summary.new, summary.updated, summary.failed) == (0, 0, False)
    jqls = harness.searches()
    assert len(jqls) == 1 and 'AND updated >= "' in jqls[0]
    # Site facts are cached from the first run: a quiet poll is one search.
    assert sorted(harness.routes()) == sorted(
        [
            SEARCH,
        ]
    )
    assert harness.ledger.cursor("ops", "issues") == first


def test_edit_reassign_close_reopen(harness: Harness) -> None:
    harness.sync()
    world = harness.sandbox.world
    world.edit_jira_issue("OPS-2", "bob", summary="Renew staging cert now", priority="Highest")
    world.reassign_jira_issue("OPS-4", "carol")
    world.close_jira_issue("OPS-3", "carol")

    summary = harness.sync()
    # OPS-1 is re-read in the look-back window; its payload embeds subtask OPS-2 and changed too.
    assert (summary.new, summary.updated) == (0, 4)
    assert harness.task("OPS-2").title == "Renew staging cert now"
    assert harness.task("OPS-2").priority == "high"
    assert harness.task("OPS-4").owners == ["carol"]
    assert harness.task("OPS-3").status == "done"

    world.reopen_jira_issue("OPS-3", "carol")
    assert harness.sync().updated == 2  # OPS-3, and OPS-4 whose link embeds OPS-3's status
    ops3 = harness.task("OPS-3")
    assert ops3.status == "open"
    raws = [h.to_raw for h in harness.ledger.status_history(ops3.id)]
    assert raws[-2:] == ["Done", "To Do"]


@pytest.mark.parametrize("deployment", ["Cloud", "Server"])
def test_pagination_across_page_boundaries(sqlite_url: str, deployment: str) -> None:
    world = big_world(23)
    world.jira_deployment = deployment
    ledger = Ledger.open(sqlite_url)
    with Sandbox(world) as sandbox:
        harness = Harness(sandbox, ledger)
        summary = harness.sync(page_size=5, acceptance_field=None, team_field=None)
        assert not summary.failed, summary.error
        assert summary.new == 23 == len(list(ledger.tasks(sources=["ops"])))
        route = SEARCH if deployment == "Cloud" else "GET /rest/api/{version}/search"
        assert harness.routes().count(route) == 5  # ceil(23 / 5)
        assert "GET /rest/api/{version}/field" not in harness.routes()
    ledger.close()


def test_project_move_keeps_identity_and_history(harness: Harness) -> None:
    harness.sync()
    before = harness.task("OPS-1")
    moved = harness.sandbox.world.move_jira_issue("OPS-1", "DEV")

    assert harness.sync().updated == 1
    after = harness.task(moved.key)
    assert after.id == before.id and after.external_id == before.external_id
    assert harness.ledger.task_by_key("OPS-1", "ops") is None
    assert [h.to_raw for h in harness.ledger.status_history(after.id)] == ["In Progress"]


def test_moved_out_of_jql_and_deleted_are_gone_only_after_a_listing(harness: Harness) -> None:
    harness.overrides = {"jql": "project = OPS"}
    harness.sync()
    world = harness.sandbox.world
    world.delete_jira_issue("OPS-2")
    world.move_jira_issue("OPS-4", "DEV")

    summary = harness.sync()  # not due yet: nothing may disappear
    assert summary.gone == 0 and harness.task("OPS-2") is not None
    assert not any("ORDER BY key" in jql for jql in harness.searches())

    harness.clock.offset = timedelta(hours=25)
    summary = harness.sync()
    assert summary.gone == 2, summary
    live = {row.key for row in harness.ledger.tasks(sources=["ops"])}
    assert live == {"OPS-1", "OPS-3"}


def test_listing_failure_closes_nothing(harness: Harness) -> None:
    harness.sync()
    harness.sandbox.world.delete_jira_issue("OPS-2")
    harness.clock.offset = timedelta(hours=25)
    harness.sandbox.faults.error("jira", 500)  # every request fails, retries included

    summary = harness.sync()
    assert summary.failed and summary.gone == 0
    assert len(list(harness.ledger.tasks(sources=["ops"]))) == 5


def test_unmappable_issue_is_quarantined_and_the_rest_stored(harness: Harness) -> None:
    broken = harness.sandbox.world.jira_issue("OPS-3")
    assert broken is not None
    broken.labels = [42]  # type: ignore[list-item]  # the server sends what the mapper refuses
    summary = harness.sync()
    assert (summary.new, summary.quarantined) == (4, 1)
    [item] = harness.ledger.quarantine("ops")
    assert item.external_ref == "OPS-3" and "labels" in item.reason
    assert '"key": "OPS-3"' in item.payload


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "inject",
    [
        pytest.param(lambda f: f.error("jira", 500, "*/search/jql", times=1), id="500"),
        pytest.param(lambda f: f.error("jira", 502, "*/search/jql", times=1), id="502"),
        pytest.param(lambda f: f.error("jira", 503, "*/search/jql", times=2), id="503"),
        pytest.param(lambda f: f.delay("jira", 1.5, "*/search/jql", times=1), id="slow"),
        pytest.param(lambda f: f.malformed_json("jira", "*/search/jql", times=1), id="malformed"),
        pytest.param(lambda f: f.truncated_page("jira", "*/search/jql", times=1), id="truncated"),
        # The first use lands on the first page (nothing to repeat yet), the second repeats it.
        pytest.param(lambda f: f.repeat_page("jira", "*/search/jql", times=2), id="repeat"),
    ],
)
def test_transient_faults_recover_by_retry(sqlite_url: str, inject: Any) -> None:
    ledger = Ledger.open(sqlite_url)
    with Sandbox(big_world(12)) as sandbox:
        harness = Harness(sandbox, ledger)
        inject(sandbox.faults)
        with capture_logs() as logs:
            summary = harness.sync(page_size=5, timeout=0.5, acceptance_field=None, team_field=None)
        assert not summary.failed, summary.error
        assert summary.new == 12 == len(list(ledger.tasks(sources=["ops"])))
        assert any(e["event"] == "retrying" for e in logs)
    ledger.close()


def test_rate_limit_honours_retry_after(harness: Harness) -> None:
    harness.sandbox.faults.rate_limit("jira", "*/search/jql", retry_after=1, times=1)
    with capture_logs() as logs:
        summary = harness.sync()
    assert not summary.failed and summary.new == 5
    [retry] = [e for e in logs if e["event"] == "retrying"]
    assert retry["wait_seconds"] == 1.0 and "429" in retry["error"]


@pytest.mark.parametrize("kind", ["error", "malformed_json", "truncated_page", "delay"])
def test_persistent_fault_fails_cleanly_with_cursor_unchanged(harness: Harness, kind: str) -> None:
    harness.sync()
    cursor = harness.ledger.cursor("ops", "issues")
    harness.sandbox.world.close_jira_issue("OPS-4")
    harness.sandbox.faults.add("jira", kind, "*/search/jql", seconds=1.0)

    summary = harness.sync(timeout=0.5)

    assert summary.failed and summary.error and TOKEN not in summary.error
    assert harness.ledger.cursor("ops", "issues") == cursor
    assert harness.task("OPS-4").status == "open"
    assert len(list(harness.ledger.tasks(sources=["ops"]))) == 5  # nothing closed


class CrashAfter:
    """A connector that dies after `pages` committed pages, as a killed process would."""

    def __init__(self, inner: Connector, pages: int) -> None:
        self.inner, self.pages = inner, pages

    def pull(self) -> Iterator[Page | Listing]:
        for n, item in enumerate(self.inner.pull()):
            if n == self.pages:
                raise KeyboardInterrupt  # not an error the driver would handle
            yield item

    def close(self) -> None:
        self.inner.close()


def test_crash_mid_run_resumes_from_last_page(harness: Harness) -> None:
    harness.sandbox.world.settings["jira_max_results"] = 2
    make = harness.sync
    context = ConnectorContext(
        source="ops",
        people=people(harness.sandbox.world),
        policy=PolicySettings(),
        clock=harness.clock,
        log=get_logger("test.jira"),
        read_cursor=lambda stream: harness.ledger.cursor("ops", stream),
    )
    # The first page records the site facts; then two pages of issues.
    crashing = CrashAfter(JiraConnector(settings(harness.sandbox), context, retry=FAST), 3)
    with pytest.raises(KeyboardInterrupt):
        pull_source(crashing, "ops", harness.ledger, harness.clock)  # type: ignore[arg-type]
    assert len(list(harness.ledger.tasks(sources=["ops"]))) == 4
    cursor = harness.ledger.cursor("ops", "issues")
    assert cursor is not None and harness.ledger.cursor("ops", "listing") is None
    harness.sandbox.request_log.reset()

    summary = make()
    assert not summary.failed and summary.new == 1
    assert 'AND updated >= "' in harness.searches()[0]  # resumed, not restarted
    keys = sorted(row.key for row in harness.ledger.tasks(sources=["ops"]))
    assert keys == ["DEV-1", "OPS-1", "OPS-2", "OPS-3", "OPS-4"]


# --- command line -----------------------------------------------------------------------------


def write_config(tmp_path: Path, sandbox: Sandbox, token: str) -> Path:
    config = tmp_path / "syncd.toml"
    config.write_text(
        f"""
[ledger]
url = "sqlite:///{tmp_path / "cli.db"}"

[sources.ops]
kind = "jira"
url = "{sandbox.urls["jira"]}"
email = "bot@acme.example"
token = "{token}"
jql = "project in (OPS, DEV)"
acceptance_field = "Acceptance Criteria"

[people.alice]
jira = "712020:0f1e2d3c-4b5a-4c6d-8e7f-000000000001"
""",
        encoding="utf-8",
    )
    return config


def test_reconcile_command_prints_the_jira_source(tmp_path: Path) -> None:
    with Sandbox(World.default()) as sandbox:
        result = CliRunner().invoke(
            app,
            ["reconcile", "-c", str(write_config(tmp_path, sandbox, TOKEN)), "--format", "json"],
        )
    assert result.exit_code == 0, result.output
    assert '"ops"' in result.output and '"new": 5' in result.output


def test_bad_token_exits_1_in_plain_words(tmp_path: Path) -> None:
    with Sandbox(World.default()) as sandbox:
        result = CliRunner().invoke(
            app, ["reconcile", "-c", str(write_config(tmp_path, sandbox, "wrong-token"))]
        )
    assert result.exit_code == 1
    assert "Jira rejected the credentials for source ops (401)" in result.output
    assert "wrong-token" not in result.output
