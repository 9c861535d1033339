"""The GitHub connector through PyGithub against the sandbox's GitHub simulator."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from syncd.cli import app
from syncd.clock import SystemClock
from syncd.config import Settings, load_config
from syncd.ledger.repository import Ledger
from syncd.sandbox import Sandbox, World
from syncd.sync import SourceSummary, pull_all

TOKEN = "sandbox-github-token"
ISSUES = "GET /repos/{owner}/{repo}/issues"


def small_world(issue_count: int = 5) -> World:
    """Two people, one repo; issue 1 is blocked by 2 and has 3 as a sub-issue."""
    issues: list[dict[str, Any]] = [
        {
            "number": 1,
            "title": "Migrate DNS records for client A",
            "body": "Move the zone.\n\n## Acceptance criteria\n- records resolve\n\nDue: 2026-12-01",
            "user": "bob",
            "assignees": ["alice"],
            "labels": ["P1", "in progress"],
            "created_at": "-10d",
            "updated_at": "-2d",
            "comments": [{"user": "alice", "body": "Started", "created_at": "-2d"}],
            "blocked_by": [2],
            "sub_issues": [3],
        },
        {
            "number": 2,
            "title": "Firewall access request",
            "user": "alice",
            "assignees": ["bob"],
            "labels": ["priority: low"],
            "created_at": "-9d",
            "updated_at": "-3d",
        },
        {
            "number": 3,
            "title": "Export the zone file",
            "user": "alice",
            "assignees": ["alice", "bob"],
            "created_at": "-8d",
            "updated_at": "-4d",
        },
    ]
    for number in range(4, issue_count + 1):
        issues.append(
            {
                "number": number,
                "title": f"Chore {number}",
                "user": "bob",
                "created_at": f"-{number}d",
                "updated_at": f"-{number}h",
            }
        )
    return World.from_dict({
        "tokens": {"github": TOKEN},
        "people": [
            {"id": "alice", "name": "Alice", "github": "alice-c"},
            {"id": "bob", "name": "Bob", "github": "bob-o"},
        ],
        "github": {"viewer": "syncd-bot", "repos": [
            {"full_name": "acme/infra", "labels": ["P1", "priority: low", "in progress"],
             "issues": issues},
            {"full_name": "acme/other", "issues": []},
        ]},
    })  # fmt: skip


@pytest.fixture
def world() -> World:
    return small_world()


@pytest.fixture
def sandbox(world: World) -> Iterator[Sandbox]:
    with Sandbox(world) as served:
        yield served


def write_config(tmp_path: Path, sandbox: Sandbox, **github: Any) -> Path:
    options = {"repos": ["acme/infra"], "token": TOKEN, **github}
    lines = [f"{key} = {value!r}".replace("'", '"') for key, value in options.items()]
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
        f'[sources.gh]\nkind = "github"\nbase_url = "{sandbox.urls["github"]}"\n'
        + "\n".join(lines)
        + '\n\n[people.alice]\ngithub = "alice-c"\n\n[people.bob]\ngithub = "bob-o"\n'
    )
    return path


@pytest.fixture
def settings(tmp_path: Path, sandbox: Sandbox) -> Settings:
    return load_config(write_config(tmp_path, sandbox))


def reconcile(settings: Settings) -> SourceSummary:
    ledger = Ledger.open(settings.ledger.url)
    try:
        summaries, _ = pull_all(settings, ledger, ["gh"], SystemClock())
    finally:
        ledger.close()
    return summaries["gh"]


def stored(settings: Settings, key: str) -> Any:
    ledger = Ledger.open(settings.ledger.url)
    try:
        return ledger.task_by_key(key, "gh")
    finally:
        ledger.close()


def test_first_sync_maps_every_issue(settings: Settings) -> None:
    summary = reconcile(settings)
    assert not summary.failed, summary.error
    assert (summary.new, summary.updated, summary.quarantined) == (5, 0, 0)
    dns = stored(settings, "acme/infra#1")
    assert dns.owners == ["alice"] and dns.reporter == "bob"
    assert dns.priority == "high" and dns.status == "in_progress"
    assert dns.due.isoformat() == "2026-12-01"
    assert dns.blocked_by == ["acme/infra#2"] and dns.children == ["acme/infra#3"]
    assert dns.acceptance_criteria and "records resolve" in dns.acceptance_criteria
    assert dns.participants == ["alice"]
    assert stored(settings, "acme/infra#2").priority == "low"
    assert stored(settings, "acme/infra#3").owners == ["alice", "bob"]


def test_rerun_is_incremental_and_a_quiet_poll_costs_one_request(
    settings: Settings, sandbox: Sandbox
) -> None:
    reconcile(settings)
    sandbox.request_log.reset()
    quiet = reconcile(settings)
    assert (quiet.fetched, quiet.new, quiet.updated) == (0, 0, 0)
    entries = sandbox.request_log.entries("github")
    assert [(e.route, e.status) for e in entries] == [(ISSUES, 304)]
    sandbox.world.edit_gh_issue("acme/infra", 4, title="Chore four, renamed")
    sandbox.request_log.reset()
    changed = reconcile(settings)
    assert (changed.new, changed.updated) == (0, 1)
    assert sandbox.request_log.counts("github") == {
        ISSUES: 2,  # the probe, then the listing since the cursor
        "GET /repos/{owner}/{repo}/issues/comments": 1,
        "GET /repos/{owner}/{repo}/issues/events": 1,
    }


def test_edits_reassignments_closes_and_reopens_arrive(
    settings: Settings, sandbox: Sandbox
) -> None:
    reconcile(settings)
    sandbox.world.reassign_gh_issue("acme/infra", 2, ["alice"], actor="bob")
    sandbox.world.edit_gh_issue("acme/infra", 4, title="Chore four, renamed")
    sandbox.world.close_gh_issue("acme/infra", 5, state_reason="not_planned")
    summary = reconcile(settings)
    assert (summary.new, summary.updated) == (0, 3)
    assert stored(settings, "acme/infra#2").owners == ["alice"]
    assert stored(settings, "acme/infra#4").title == "Chore four, renamed"
    assert stored(settings, "acme/infra#5").status == "cancelled"
    sandbox.world.reopen_gh_issue("acme/infra", 5)
    assert reconcile(settings).updated == 1
    assert stored(settings, "acme/infra#5").status == "open"


def test_new_comment_from_a_person_is_activity_but_a_bots_is_not(
    settings: Settings, sandbox: Sandbox
) -> None:
    reconcile(settings)
    before = stored(settings, "acme/infra#2").last_activity_at
    sandbox.world.add_gh_comment("acme/infra", 2, "ci passed", user="ci-helper[bot]")
    reconcile(settings)
    assert stored(settings, "acme/infra#2").last_activity_at == before
    sandbox.world.add_gh_comment("acme/infra", 2, "opened the port", user="bob")
    reconcile(settings)
    assert stored(settings, "acme/infra#2").last_activity_at > before


@pytest.mark.parametrize("world", [small_world(23)])
def test_pagination_across_page_boundaries(tmp_path: Path, sandbox: Sandbox) -> None:
    settings = load_config(write_config(tmp_path, sandbox, per_page=5))
    summary = reconcile(settings)
    assert summary.new == 23
    assert sandbox.request_log.count("github", ISSUES) == 1 + 5  # the probe, ceil(23 / 5)
    ledger = Ledger.open(settings.ledger.url)
    assert sorted(int(t.key.split("#")[1]) for t in ledger.tasks()) == list(range(1, 24))
    ledger.close()


def test_transfer_keeps_identity_and_history(tmp_path: Path, sandbox: Sandbox) -> None:
    settings = load_config(write_config(tmp_path, sandbox, repos=["acme/infra", "acme/other"]))
    reconcile(settings)
    before = stored(settings, "acme/infra#2")
    moved = sandbox.world.transfer_gh_issue("acme/infra", 2, "acme/other")
    summary = reconcile(settings)
    assert summary.updated >= 1 and summary.new == 0
    after = stored(settings, f"acme/other#{moved.number}")
    assert after.id == before.id and after.external_id == before.external_id
    assert stored(settings, "acme/infra#2") is None


@pytest.mark.parametrize("pr_first", [True, False])
def test_a_merged_pr_that_closes_an_issue_links_to_it(
    settings: Settings, sandbox: Sandbox, pr_first: bool
) -> None:
    reconcile(settings)
    sandbox.world.close_gh_issue("acme/infra", 2)
    pr = {"title": "Open port 443", "body": "Fixes #2", "user": "bob",
          "pull_request": {"merged_at": "-1m"}, "state": "closed"}  # fmt: skip
    if pr_first:  # the PR sorts before the issue in the listing
        sandbox.world.add_gh_issue("acme/infra", **pr)
        sandbox.world.edit_gh_issue("acme/infra", 2, title="Firewall access request (done)")
    else:
        sandbox.world.add_gh_issue("acme/infra", **pr)
    summary = reconcile(settings)
    assert summary.new == 0, "a pull request must not become a task"
    issue = stored(settings, "acme/infra#2")
    assert issue.status == "done"
    assert "acme/infra#6" in issue.links


def test_deleted_issue_is_marked_gone_only_by_a_complete_listing(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    settings = load_config(write_config(tmp_path, sandbox, full_listing_every="1h"))
    reconcile(settings)
    sandbox.world.delete_gh_issue("acme/infra", 4)
    assert reconcile(settings).gone == 0  # incremental: cannot see a deletion
    assert stored(settings, "acme/infra#4").gone_at is None
    forced = load_config(write_config(tmp_path, sandbox, full_listing_every="0s"))
    assert reconcile(forced).gone == 1
    assert stored(settings, "acme/infra#4").gone_at is not None


@pytest.mark.parametrize(
    "inject",
    [
        lambda f: f.rate_limit("github", "/repos/*/issues", retry_after=1, times=1),
        lambda f: f.error("github", 500, "/repos/*/issues", times=1),
        lambda f: f.error("github", 502, "/repos/*/issues", times=2),
        lambda f: f.error("github", 503, "/repos/*/issues/comments", times=1),
        lambda f: f.malformed_json("github", "/repos/*/issues", times=1),
        lambda f: f.truncated_page("github", "/repos/*/issues", times=1),
        lambda f: f.delay("github", 3.0, "/repos/*/issues", times=1),
    ],
    ids=["429", "500", "502-twice", "503-comments", "malformed", "truncated", "timeout"],
)
def test_transient_faults_are_retried(tmp_path: Path, sandbox: Sandbox, inject: Any) -> None:
    settings = load_config(write_config(tmp_path, sandbox, timeout=1.0))
    inject(sandbox.faults)
    summary = reconcile(settings)
    assert not summary.failed, summary.error
    assert summary.new == 5


@pytest.mark.parametrize("world", [small_world(12)])
def test_repeated_and_short_pages_are_refetched(tmp_path: Path, sandbox: Sandbox) -> None:
    settings = load_config(write_config(tmp_path, sandbox, per_page=5))
    sandbox.faults.repeat_page("github", "/repos/*/issues", times=2)
    sandbox.faults.short_page("github", "/repos/*/issues", times=1)
    summary = reconcile(settings)
    assert not summary.failed, summary.error
    assert summary.new == 12


def test_a_failing_source_keeps_its_cursor_and_its_tasks(
    settings: Settings, sandbox: Sandbox
) -> None:
    reconcile(settings)
    ledger = Ledger.open(settings.ledger.url)
    cursor_before = ledger.cursor("gh", "acme/infra")
    ledger.close()
    sandbox.world.edit_gh_issue("acme/infra", 3, title="changed meanwhile")
    sandbox.faults.error("github", 502, "/repos/*/issues")
    summary = reconcile(settings)
    assert summary.failed and "502" in (summary.error or "")
    ledger = Ledger.open(settings.ledger.url)
    assert ledger.cursor("gh", "acme/infra") == cursor_before
    assert sum(1 for _ in ledger.tasks()) == 5
    ledger.close()
    sandbox.faults.clear()
    assert reconcile(settings).updated == 1
    assert stored(settings, "acme/infra#3").title == "changed meanwhile"


def test_exhausted_rate_limit_fails_cleanly(settings: Settings, sandbox: Sandbox) -> None:
    sandbox.set_github_remaining(0)
    summary = reconcile(settings)
    assert summary.failed and "rate limit" in (summary.error or "")


def test_cli_reports_a_rejected_token_in_plain_words(tmp_path: Path, sandbox: Sandbox) -> None:
    path = write_config(tmp_path, sandbox, token="wrong-token")
    result = CliRunner().invoke(app, ["reconcile", "-c", str(path)])
    assert result.exit_code == 1
    assert "GitHub rejected the token for source gh (401)" in result.output
    assert "wrong-token" not in result.output


def test_cli_json_summary(tmp_path: Path, sandbox: Sandbox) -> None:
    path = write_config(tmp_path, sandbox)
    result = CliRunner().invoke(app, ["reconcile", "-c", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    import json

    report = json.loads(result.stdout)
    assert report["sources"]["gh"].pop("seconds") > 0
    assert report["sources"]["gh"] == {
        "fetched": 5, "new": 5, "updated": 0, "unchanged": 0, "quarantined": 0,
        "gone": 0, "failed": False, "error": None,
    }  # fmt: skip
    listed = CliRunner().invoke(app, ["tasks", "-c", str(path), "--format", "json"])
    tasks = json.loads(listed.stdout)["tasks"]
    assert {t["key"] for t in tasks} == {f"acme/infra#{n}" for n in range(1, 6)}
    assert all({"owners", "due", "priority", "blocked_by", "url"} <= set(t) for t in tasks)


def test_cursor_never_moves_backwards(settings: Settings, sandbox: Sandbox) -> None:
    reconcile(settings)
    ledger = Ledger.open(settings.ledger.url)
    first = ledger.cursor("gh", "acme/infra")
    ledger.close()
    sandbox.world.edit_gh_issue("acme/infra", 2, title="x")
    reconcile(settings)
    ledger = Ledger.open(settings.ledger.url)
    second = ledger.cursor("gh", "acme/infra")
    ledger.close()
    assert first is not None and second is not None
    assert datetime.fromisoformat(second["since"]) >= datetime.fromisoformat(first["since"])
    assert datetime.fromisoformat(second["since"]) <= datetime.now(UTC)
