"""The Slack connector through httpx against the sandbox's Slack simulator (and respx)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from typer.testing import CliRunner

from syncd.cli import app
from syncd.clock import SystemClock
from syncd.config import Settings, load_config
from syncd.ledger.repository import Ledger
from syncd.sandbox import Sandbox, World
from syncd.sandbox.slack import SlackError
from syncd.sync import SourceSummary, pull_all

TOKEN = "xoxb-test"
OPS, RANDOM = "C0000OPS1", "C0000RND1"
HISTORY = "GET /api/conversations.history"
REPLIES = "GET /api/conversations.replies"


def small_world() -> World:
    """Three people (dave is mapped only by email); requests of every kind in #ops."""
    messages: list[dict[str, Any]] = [
        {"user": "bob", "ts": "-5h", "reactions": {"ticket": ["alice"]},
         "text": "The VPN is down again, <@U01ALICE> can you look? urgent",
         "replies": [{"user": "alice", "text": "On it", "ts": "-4h"}]},
        {"user": "carol", "ts": "-4h", "text": "Reminder: OPS-1 is due Friday",
         "replies": [{"user": "alice", "text": "I'll take a look", "ts": "-3h"}]},
        {"user": "alice", "ts": "-3h",
         "text": "Can someone review https://github.com/example-org/api/issues/1 please?"},
        {"user": "bob", "ts": "-2h", "text": "<!subteam^S0OPS|@ops> please rotate the certs by Friday"},
        {"user": "carol", "ts": "-90m",
         "text": "<@U01ALICE> and <@U01BOB> can you both check the backups? P2"},
        {"user": "carol", "ts": "-80m", "text": "<@U0SYNCDBOT> <@U0DAVE> please renew the domain"},
        {"user": "bob", "ts": "-70m", "text": "Restart the mail relay",
         "reactions": {"white_check_mark": ["alice"]}},
        {"user": "bob", "ts": "-60m", "text": "Rebuild the CI cache",
         "replies": [{"user": "alice", "text": "Done, cache rebuilt", "ts": "-50m"},
                     {"user": "bob", "text": "Confirmed, works now. Thanks!", "ts": "-40m"}]},
        {"user": "bob", "ts": "-30m", "text": "Reset my password",
         "reactions": {"white_check_mark": ["alice", "bob"]}},
        {"user": "U0SYNCDBOT", "bot_id": "B0SYNCDBOT", "ts": "-20m",
         "text": "Reminder: the VPN request has no due date",
         "metadata": {"event_type": "syncd_followup", "event_payload": {"task": "x"}}},
    ]  # fmt: skip
    return World.from_dict({
        "tokens": {"slack": TOKEN},
        "people": [
            {"id": "alice", "name": "Alice Chen", "email": "alice@acme.example", "slack": "U01ALICE"},
            {"id": "bob", "name": "Bob Okafor", "email": "bob@acme.example", "slack": "U01BOB"},
            {"id": "carol", "name": "Carol Diaz", "email": "carol@acme.example", "slack": "U01CAROL"},
        ],
        "slack": {
            "team": {"id": "T0ACME", "name": "Acme", "domain": "acme"},
            "users": [{"id": "U0DAVE", "name": "dave", "real_name": "Dave Kim",
                       "email": "Dave@Acme.example"}],
            "channels": [{"id": OPS, "name": "ops", "messages": messages},
                         {"id": RANDOM, "name": "random", "messages": [
                             {"user": "bob", "text": "lunch?", "ts": "-2h"}]}],
        },
        "github": {"repos": [{"full_name": "example-org/api", "issues": [
            {"number": 1, "title": "Review me", "user": "alice", "created_at": "-2d",
             "updated_at": "-2d"}]}]},
    })  # fmt: skip


@pytest.fixture
def world() -> World:
    return small_world()


@pytest.fixture
def sandbox(world: World) -> Iterator[Sandbox]:
    with Sandbox(world) as served:
        yield served


def write_config(tmp_path: Path, sandbox: Sandbox, *, github: bool = False, **chat: Any) -> Path:
    options = {"channels": [OPS], "token": TOKEN, **chat}
    lines = [f"{key} = {json.dumps(value)}" for key, value in options.items()]
    text = (
        f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
        f'[sources.chat]\nkind = "slack"\nbase_url = "{sandbox.urls["slack"]}"\n'
        + "\n".join(lines)
        + "\n"
    )
    if github:
        text += (
            f'\n[sources.gh]\nkind = "github"\nbase_url = "{sandbox.urls["github"]}"\n'
            'token = "sandbox-github-token"\nrepos = ["example-org/api"]\n'
        )
    text += (
        '\n[people.alice]\nname = "Alice Chen"\nslack = "U01ALICE"\n'
        '\n[people.bob]\nname = "Bob Okafor"\nslack = "U01BOB"\n'
        '\n[people.carol]\nslack = "U01CAROL"\n'
        '\n[people.dave]\nemail = "dave@acme.example"\n'
        '\n[policy]\nteam_aliases = ["ops"]\n'
    )
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return path


@pytest.fixture
def settings(tmp_path: Path, sandbox: Sandbox) -> Settings:
    return load_config(write_config(tmp_path, sandbox))


def reconcile(settings: Settings, *names: str) -> SourceSummary:
    ledger = Ledger.open(settings.ledger.url)
    try:
        summaries, _ = pull_all(settings, ledger, list(names or ["chat"]), SystemClock())
    finally:
        ledger.close()
    return summaries["chat"]


def ledger_of(settings: Settings) -> Ledger:
    return Ledger.open(settings.ledger.url)


def stored_tasks(settings: Settings) -> dict[str, Any]:
    ledger = ledger_of(settings)
    try:
        return {row.title: row for row in ledger.tasks(sources=["chat"])}
    finally:
        ledger.close()


def cursor_of(settings: Settings, channel: str = OPS) -> dict[str, Any] | None:
    ledger = ledger_of(settings)
    try:
        return ledger.cursor("chat", channel)
    finally:
        ledger.close()


def test_first_sync_turns_requests_into_tasks(settings: Settings) -> None:
    summary = reconcile(settings)
    assert not summary.failed, summary.error
    tasks = stored_tasks(settings)
    # Seven requests; the two linking messages and syncd's own post are not tasks.
    assert summary.new == 7 and len(tasks) == 7
    vpn = tasks["The VPN is down again, @Alice Chen can you look? urgent"]
    assert vpn.owners == ["alice"] and vpn.reporter == "bob"
    assert vpn.priority == "high" and vpn.priority_raw == "urgent"
    assert vpn.status == "in_progress", "the owner replied"
    assert vpn.participants == ["bob", "alice"]
    assert vpn.url.startswith(f"https://acme.slack.com/archives/{OPS}/p")
    assert vpn.key == vpn.external_id and vpn.key.startswith(f"{OPS}/")


def test_owner_team_and_two_owners(settings: Settings) -> None:
    reconcile(settings)
    tasks = stored_tasks(settings)
    certs = tasks["@ops please rotate the certs by Friday"]
    assert certs.owners == [] and certs.team == "ops" and certs.due is not None
    both = tasks["@Alice Chen and @Bob Okafor can you both check the backups? P2"]
    assert both.owners == ["alice", "bob"] and both.priority == "medium"


def test_bot_mention_is_not_the_owner_and_users_resolve_by_email(settings: Settings) -> None:
    reconcile(settings)
    domain = stored_tasks(settings)["@syncd @dave please renew the domain"]
    assert domain.owners == ["dave"], "dave has no slack id in the config, only his email"


def test_done_and_verified(settings: Settings) -> None:
    reconcile(settings)
    tasks = stored_tasks(settings)
    relay = tasks["Restart the mail relay"]
    assert (relay.status, relay.status_raw) == ("done", "done (:white_check_mark:)")
    cache = tasks["Rebuild the CI cache"]
    assert (cache.status, cache.verified_by) == ("verified", "requester:bob")
    password = tasks["Reset my password"]
    assert password.status == "verified", "the requester's reaction after alice's"


def test_references_link_instead_of_duplicating(tmp_path: Path, sandbox: Sandbox) -> None:
    settings = load_config(write_config(tmp_path, sandbox, github=True))
    ledger = ledger_of(settings)
    try:
        summaries, _ = pull_all(settings, ledger, ["gh", "chat"], SystemClock())
        assert not summaries["chat"].failed, summaries["chat"].error
        issue = ledger.task_by_key("example-org/api#1", "gh")
        assert issue is not None and "alice" in issue.participants
        assert issue.last_activity_at.timestamp() > sandbox.world.now.timestamp() - 4 * 3600
        keys = {row.key for row in ledger.tasks(sources=["chat"])}
    finally:
        ledger.close()
    texts = {m.ts: m.text for m in sandbox.world.channels[OPS].messages.values()}
    assert not any("OPS-1" in texts[key.split("/")[1]] for key in keys)
    assert not any("example-org/api" in texts[key.split("/")[1]] for key in keys)


def test_capture_by_reaction(tmp_path: Path, sandbox: Sandbox) -> None:
    settings = load_config(write_config(tmp_path, sandbox, capture="reaction"))
    assert reconcile(settings).new == 1
    assert list(stored_tasks(settings)) == [
        "The VPN is down again, @Alice Chen can you look? urgent"
    ]


def test_capture_by_mention(tmp_path: Path, sandbox: Sandbox) -> None:
    settings = load_config(write_config(tmp_path, sandbox, capture="mention"))
    assert reconcile(settings).new == 1
    assert list(stored_tasks(settings)) == ["@syncd @dave please renew the domain"]


def test_rerun_makes_only_the_minimal_requests(settings: Settings, sandbox: Sandbox) -> None:
    reconcile(settings)
    sandbox.request_log.reset()
    quiet = reconcile(settings)
    assert (quiet.new, quiet.updated, quiet.fetched) == (0, 0, 0)
    # Within the look-back cadence: who the token is, then one history read.
    assert sandbox.request_log.counts("slack") == {"GET /api/auth.test": 1, HISTORY: 1}
    sandbox.world.add_slack_message(OPS, "Please renew the TLS cert for api", user="carol")
    sandbox.request_log.reset()
    fresh = reconcile(settings)
    assert (fresh.new, fresh.updated, fresh.fetched) == (1, 0, 1)
    assert sandbox.request_log.counts("slack") == {"GET /api/auth.test": 1, HISTORY: 1}


def test_lookback_catches_late_reactions_and_replies(tmp_path: Path, sandbox: Sandbox) -> None:
    settings = load_config(write_config(tmp_path, sandbox, lookback_every="0s"))
    reconcile(settings)
    ops = sandbox.world.channels[OPS]
    relay = next(m for m in ops.messages.values() if m.text == "Restart the mail relay")
    vpn = next(m for m in ops.messages.values() if m.text.startswith("The VPN"))
    sandbox.world.add_slack_reaction(OPS, relay.ts, "white_check_mark", user="bob")
    sandbox.world.add_slack_reply(OPS, vpn.ts, "Fixed, the tunnel is back", user="alice")
    sandbox.request_log.reset()
    summary = reconcile(settings)
    assert (summary.new, summary.updated) == (0, 2)
    # Only the thread that moved is asked for its replies.
    assert sandbox.request_log.count("slack", REPLIES) == 1
    tasks = stored_tasks(settings)
    assert tasks["Restart the mail relay"].status == "verified"
    assert tasks["The VPN is down again, @Alice Chen can you look? urgent"].status == "done"
    sandbox.request_log.reset()
    again = reconcile(settings)
    assert (again.new, again.updated) == (0, 0)
    assert sandbox.request_log.count("slack", REPLIES) == 0


def test_syncd_posts_in_a_thread_are_not_activity(tmp_path: Path, sandbox: Sandbox) -> None:
    settings = load_config(write_config(tmp_path, sandbox, lookback_every="0s"))
    reconcile(settings)
    title = "Restart the mail relay"
    before = stored_tasks(settings)[title]
    relay = next(m for m in sandbox.world.channels[OPS].messages.values() if m.text == title)
    sandbox.world.add_slack_message(OPS, "Is this done? Please confirm.", thread_ts=relay.ts,
                                    metadata={"event_type": "syncd_followup"}, bot=True)  # fmt: skip
    reconcile(settings)
    after = stored_tasks(settings)[title]
    assert after.last_activity_at == before.last_activity_at
    assert after.participants == before.participants == ["bob"]
    sandbox.world.add_slack_reply(OPS, relay.ts, "yes, all good now", user="alice")
    reconcile(settings)
    assert stored_tasks(settings)[title].participants == ["bob", "alice"]


def test_pagination(tmp_path: Path, sandbox: Sandbox) -> None:
    for n in range(23):
        sandbox.world.add_slack_message(RANDOM, f"Please archive report {n}", user="bob")
    settings = load_config(write_config(tmp_path, sandbox, channels=[RANDOM], page_size=5))
    summary = reconcile(settings)
    assert summary.new == 24 and summary.fetched == 24
    assert sandbox.request_log.count("slack", HISTORY) == 5  # ceil(24 / 5)
    cursor = cursor_of(settings, RANDOM)
    newest = max(sandbox.world.channels[RANDOM].top_ts, key=float)
    assert cursor is not None and cursor["oldest"] == newest


def test_rate_limit_with_retry_after_recovers(settings: Settings, sandbox: Sandbox) -> None:
    sandbox.faults.rate_limit("slack", "/api/conversations.history", retry_after=1, times=1)
    summary = reconcile(settings)
    assert not summary.failed, summary.error
    assert summary.new == 7


@pytest.mark.parametrize(
    "inject",
    [
        lambda f: f.error("slack", 503, "/api/conversations.history", times=1),
        lambda f: f.malformed_json("slack", "/api/conversations.history", times=1),
        lambda f: f.delay("slack", 3.0, "/api/auth.test", times=1),
    ],
    ids=["503", "malformed", "timeout"],
)
def test_transient_faults_are_retried(tmp_path: Path, sandbox: Sandbox, inject: Any) -> None:
    settings = load_config(write_config(tmp_path, sandbox, timeout=1.0))
    inject(sandbox.faults)
    summary = reconcile(settings)
    assert not summary.failed, summary.error
    assert summary.new == 7


def test_invalid_auth_fails_in_plain_words_and_keeps_the_cursor(
    tmp_path: Path, settings: Settings, sandbox: Sandbox
) -> None:
    reconcile(settings)
    before = cursor_of(settings)
    sandbox.world.add_slack_message(OPS, "Please add a DNS record", user="bob")
    bad = load_config(write_config(tmp_path, sandbox, token="xoxb-wrong"))
    summary = reconcile(bad)
    assert summary.failed
    assert summary.error == "Slack rejected the token for source chat (invalid_auth)"
    assert cursor_of(settings) == before


def test_a_crash_mid_listing_resumes_without_gaps(tmp_path: Path, sandbox: Sandbox) -> None:
    for n in range(12):
        sandbox.world.add_slack_message(RANDOM, f"Please rotate key {n}", user="bob")
    settings = load_config(write_config(tmp_path, sandbox, channels=[RANDOM], page_size=5))
    # The second history page fails for good: the first page's tasks stay, `oldest` does not move.
    calls = {"n": 0}
    original = sandbox.world.channel

    def failing_after_first(channel_id: str) -> Any:
        calls["n"] += 1
        if calls["n"] > 1:
            raise SlackError("channel_not_found")
        return original(channel_id)

    sandbox.world.channel = failing_after_first  # type: ignore[method-assign]
    crashed = reconcile(settings)
    sandbox.world.channel = original  # type: ignore[method-assign]
    assert crashed.failed and crashed.new == 5
    cursor = cursor_of(settings, RANDOM)
    assert cursor is not None and cursor["oldest"] is None
    resumed = reconcile(settings)
    assert not resumed.failed, resumed.error
    assert (resumed.new, resumed.unchanged) == (8, 5)


def test_cli_reconcile_shows_the_slack_source(tmp_path: Path, sandbox: Sandbox) -> None:
    path = write_config(tmp_path, sandbox)
    result = CliRunner().invoke(app, ["reconcile", "-c", str(path), "--format", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["sources"]["chat"]
    assert (report["new"], report["failed"], report["error"]) == (7, False, None)
    table = CliRunner().invoke(app, ["reconcile", "-c", str(path)])
    assert table.exit_code == 0 and "chat" in table.output


def test_cli_reports_a_rejected_token(tmp_path: Path, sandbox: Sandbox) -> None:
    path = write_config(tmp_path, sandbox, token="xoxb-wrong")
    result = CliRunner().invoke(app, ["reconcile", "-c", str(path)])
    assert result.exit_code == 1
    assert "Slack rejected the token for source chat (invalid_auth)" in result.output
    assert "xoxb-wrong" not in result.output


# --- error bodies the simulator does not produce, through respx -------------------------

BASE = "https://slack.test/api/"


def respx_settings(tmp_path: Path) -> Settings:
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
        f'[sources.chat]\nkind = "slack"\nbase_url = "{BASE}"\ntoken = "{TOKEN}"\n'
        f'channels = ["{OPS}"]\n'
    )
    return load_config(path)


def auth_ok(router: respx.MockRouter) -> None:
    router.get(BASE + "auth.test").respond(
        json={"ok": True, "url": "https://acme.slack.com/", "user_id": "U0BOT"}
    )


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (httpx.Response(200, json={"ok": False, "error": "channel_not_found"}),
         "Slack says channel C0000OPS1 does not exist or the token cannot see it"),
        (httpx.Response(200, json={"ok": False, "error": "not_in_channel"}),
         "the bot is not a member of channel C0000OPS1; invite it there"),
        (httpx.Response(200, json={"ok": False, "error": "missing_scope", "needed": "channels:history"},
                        headers={"x-accepted-oauth-scopes": "channels:history"}),
         "lacks a scope (missing_scope; needs channels:history)"),
        (httpx.Response(429, json={"ok": False, "error": "ratelimited"},
                        headers={"Retry-After": "3600"}),
         "the next run resumes where this one stopped"),
        (httpx.Response(200, json={"ok": False, "error": "invalid_cursor"}),
         "Slack refused conversations.history for source chat (invalid_cursor)"),
    ],
    ids=["channel_not_found", "not_in_channel", "missing_scope", "long-429", "invalid_cursor"],
)  # fmt: skip
def test_error_bodies_fail_in_plain_words(
    tmp_path: Path, answer: httpx.Response, expected: str
) -> None:
    settings = respx_settings(tmp_path)
    with respx.mock(assert_all_called=False) as router:
        auth_ok(router)
        route = router.get(BASE + "conversations.history").mock(return_value=answer)
        summary = reconcile(settings)
    assert summary.failed and expected in (summary.error or ""), summary.error
    assert route.call_count == 1, "configuration and permanent errors are not retried"


def test_ok_false_internal_error_is_retried(tmp_path: Path) -> None:
    settings = respx_settings(tmp_path)
    message = {"type": "message", "user": "U1", "text": "Please fix it", "ts": "1700000000.000100"}
    with respx.mock() as router:
        auth_ok(router)
        router.get(BASE + "users.list").respond(json={"ok": True, "members": []})
        router.get(BASE + "conversations.history").mock(
            side_effect=[
                httpx.Response(200, json={"ok": False, "error": "internal_error"}),
                httpx.Response(503, text="<html>unavailable</html>"),
                httpx.Response(200, json={"ok": True, "messages": [message],
                                          "response_metadata": {"next_cursor": ""}}),
            ]
        )  # fmt: skip
        summary = reconcile(settings)
    assert not summary.failed, summary.error
    assert summary.new == 1


def test_a_looping_cursor_is_not_followed_forever(tmp_path: Path) -> None:
    settings = respx_settings(tmp_path)
    page = {"ok": True, "messages": [], "response_metadata": {"next_cursor": "same"}}
    with respx.mock() as router:
        auth_ok(router)
        route = router.get(BASE + "conversations.history").respond(json=page)
        summary = reconcile(settings)
    assert summary.failed and "looped" in (summary.error or "")
    assert route.call_count < 20


# --- the ledger side of linking ---------------------------------------------------------


def test_record_activity_is_forward_only_idempotent_and_skips_unknown_keys(
    ledger: Ledger,
) -> None:
    from datetime import UTC, datetime, timedelta

    from syncd.model import Activity, Task

    now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    task = Task(source="ops", external_id="1", key="OPS-1", title="t",
                last_activity_at=now - timedelta(days=3), participants=["bob"])  # fmt: skip
    ledger.ingest_page("ops", [task], now=now)
    earlier = Activity("OPS-1", now - timedelta(days=5), "carol")
    later = Activity("OPS-1", now - timedelta(hours=1), "alice")
    result = ledger.ingest_page(
        "chat", [], now=now, stream="C1", activity=[earlier, later, Activity("NOPE-9", now)]
    )
    assert result.linked == 1
    row = ledger.task_by_key("OPS-1")
    assert row is not None
    assert row.last_activity_at == now - timedelta(hours=1)
    assert row.participants == ["bob", "carol", "alice"]
    assert ledger.record_activity([later], now=now) == [], "a re-read credits nothing new"
