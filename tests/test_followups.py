"""Follow-ups end to end: plan, cooldown, cap, escalation, dry run, exactly once."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from syncd.cli import app
from syncd.clock import FrozenClock
from syncd.config import load_config
from syncd.ledger.models import OutboxItem
from syncd.ledger.repository import Ledger
from syncd.reconcile import reconcile
from syncd.rules.engine import compile_rules
from syncd.sandbox import Sandbox, World
from syncd.writer.registry import writer_registry

TOKEN = "sandbox-github-token"
REPO = "acme/infra"


def story(issue_count: int = 3) -> World:
    issues: list[dict[str, Any]] = [
        {"number": n, "title": f"Unowned chore {n}", "user": "maria", "assignees": [],
         "created_at": "-3d", "updated_at": "-3d"}
        for n in range(1, issue_count + 1)
    ]  # fmt: skip
    issues.append({"number": issue_count + 1, "title": "Owned", "user": "maria",
                   "assignees": ["alice"], "created_at": "-3d", "updated_at": "-3d"})  # fmt: skip
    return World.from_dict({
        "tokens": {"github": TOKEN},
        "people": [{"id": "alice", "github": "alice-c"}, {"id": "maria", "github": "maria-l"}],
        "github": {"viewer": "syncd-bot", "repos": [{"full_name": REPO, "issues": issues}]},
    })  # fmt: skip


def write_config(tmp_path: Path, sandbox: Sandbox, followup: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
        f'[sources.gh]\nkind = "github"\nbase_url = "{sandbox.urls["github"]}"\n'
        f'token = "{TOKEN}"\nrepos = ["{REPO}"]\n\n'
        '[people.alice]\nname = "Alice"\ngithub = "alice-c"\n\n'
        '[people.maria]\nname = "Maria"\ngithub = "maria-l"\n\n'
        f'[[rules]]\nid = "owner"\nkind = "single_owner"\nfollowup = {followup}\n'
    )
    return path


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(story()) as served:
        yield served


def comments(sandbox: Sandbox) -> list[str]:
    with sandbox.world.lock:
        return [
            c.body
            for issue in sandbox.world.repo(REPO).issues.values()  # type: ignore[union-attr]
            for c in issue.comments
        ]


def run(config: Path, clock: FrozenClock, *, dry_run: bool = False) -> Any:
    settings = load_config(config)
    rules = compile_rules(settings.rules)
    ledger = Ledger.open(settings.ledger.url)
    try:
        with writer_registry(settings) as writer_for:
            return reconcile(
                settings, ledger, ["gh"], rules, clock, writer_for=writer_for, dry_run=dry_run
            )
    finally:
        ledger.close()


def test_cooldown_cap_and_escalation(tmp_path: Path, sandbox: Sandbox) -> None:
    config = write_config(
        tmp_path, sandbox, '{ via = "source", every = "2d", max = 2, escalate_to = "maria" }'
    )
    clock = FrozenClock(datetime.now(UTC))
    first = run(config, clock)
    assert first.delivery.sent == 3  # the three unowned issues
    assert all("@maria-l" in body and "<!-- syncd:owner:" in body for body in comments(sandbox))
    clock.advance(timedelta(hours=5))
    assert run(config, clock).delivery.sent == 0  # still within the cooldown
    clock.advance(timedelta(days=2))
    assert run(config, clock).delivery.sent == 3  # the second nudge
    clock.advance(timedelta(days=2))
    escalated = run(config, clock)
    assert escalated.delivery.sent == 3 and all(p.escalation for p in escalated.planned)
    clock.advance(timedelta(days=2))
    assert run(config, clock).delivery.sent == 0  # escalation happens once per episode
    assert len(comments(sandbox)) == 9


def test_dry_run_writes_nothing_anywhere(tmp_path: Path, sandbox: Sandbox) -> None:
    config = write_config(tmp_path, sandbox, '{ via = "source", every = "2d" }')
    result = CliRunner().invoke(
        app, ["reconcile", "-c", str(config), "--dry-run", "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    planned = json.loads(result.stdout)["followups"]["planned"]
    assert [p["task"] for p in planned] == [f"{REPO}#1", f"{REPO}#2", f"{REPO}#3"]
    assert planned[0]["channel"] == "github" and planned[0]["to"] == "maria"
    assert "needs exactly one owner" in planned[0]["what"]
    sandbox.writes.assert_none()
    ledger = Ledger.open(load_config(config).ledger.url)
    with ledger.sessions() as session:
        assert session.scalars(select(OutboxItem)).all() == []
    ledger.close()


def test_a_second_reconcile_posts_nothing_new(tmp_path: Path, sandbox: Sandbox) -> None:
    config = write_config(tmp_path, sandbox, '{ via = "source", every = "2d" }')
    first = CliRunner().invoke(app, ["reconcile", "-c", str(config), "--format", "json"])
    assert json.loads(first.stdout)["followups"]["sent"] == 3
    second = CliRunner().invoke(app, ["reconcile", "-c", str(config), "--format", "json"])
    assert json.loads(second.stdout)["followups"] == {
        "planned": 3, "sent": 0, "failed": 0, "skipped": 0, "unconfirmed": 0,
    }  # fmt: skip
    assert len(comments(sandbox)) == 3


def test_a_deleted_issue_fails_its_follow_up_and_not_the_others(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config = write_config(tmp_path, sandbox, '{ via = "source", every = "2d" }')
    clock = FrozenClock(datetime.now(UTC))
    run(config, clock, dry_run=True)  # the ledger knows the issues
    sandbox.world.delete_gh_issue(REPO, 2)
    report = run(config, clock)
    assert (report.delivery.sent, report.delivery.failed) == (2, 1)
    ledger = Ledger.open(load_config(config).ledger.url)
    with ledger.sessions() as session:
        states = sorted(row.state for row in session.scalars(select(OutboxItem)))
    ledger.close()
    assert states == ["failed", "sent", "sent"]


# --- crashes -----------------------------------------------------------------------------

DRAIN = textwrap.dedent(
    """
    import os, sys
    from datetime import UTC, datetime
    from syncd.config import load_config
    from syncd.ledger.repository import Ledger
    from syncd.writer.outbox import drain
    from syncd.writer.registry import writer_registry
    import syncd.writer.github as gh

    step = os.environ.get("CRASH_AT")
    real_post = gh.GitHubWriter.post
    def post(self, delivery):
        if step == "before_post":
            os.kill(os.getpid(), 9)
        remote = real_post(self, delivery)
        if step == "after_post":
            os.kill(os.getpid(), 9)
        return remote
    gh.GitHubWriter.post = post
    settings = load_config(sys.argv[1])
    ledger = Ledger.open(settings.ledger.url)
    with writer_registry(settings) as writer_for:
        drain(ledger, writer_for, datetime.now(UTC) + __import__("datetime").timedelta(minutes=int(sys.argv[2])))
    """
)


def enqueue_followups(config: Path) -> int:
    clock = FrozenClock(datetime.now(UTC))
    settings = load_config(config)
    ledger = Ledger.open(settings.ledger.url)
    try:
        report = reconcile(
            settings, ledger, ["gh"], compile_rules(settings.rules), clock, writer_for=None
        )
        from syncd.writer.outbox import enqueue

        return enqueue(ledger, report.planned, clock.now())
    finally:
        ledger.close()


def drain_process(
    config: Path, minutes_later: int, crash_at: str | None
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CRASH_AT": crash_at or ""}
    return subprocess.Popen(
        [sys.executable, "-c", DRAIN, str(config), str(minutes_later)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def assert_each_posted_once(sandbox: Sandbox, expected: int) -> None:
    markers = [body.split("<!-- syncd:")[1] for body in comments(sandbox)]
    assert len(markers) == len(set(markers)), "a follow-up was posted twice"
    assert len(markers) == expected, "a follow-up was dropped"


@pytest.mark.parametrize("crash_at", ["before_post", "after_post"])
def test_a_writer_killed_at_each_step_posts_nothing_twice(
    tmp_path: Path, sandbox: Sandbox, crash_at: str
) -> None:
    config = write_config(tmp_path, sandbox, '{ via = "source", every = "2d" }')
    assert enqueue_followups(config) == 3
    killed = drain_process(config, 0, crash_at)
    assert killed.wait(timeout=60) == -signal.SIGKILL
    # The row was claimed (`sending`); after the lease another drain takes it over.
    finished = drain_process(config, 10, None)
    assert finished.wait(timeout=60) == 0, finished.stderr.read() if finished.stderr else ""
    assert_each_posted_once(sandbox, 3)


# Dozens of process starts: about 2 minutes on a busy 2-core machine.
@pytest.mark.timeout(900)
def test_random_kills_mid_batch_never_post_twice_or_drop(tmp_path: Path, sandbox: Sandbox) -> None:
    config = write_config(tmp_path, sandbox, '{ via = "source", every = "2d" }')
    rng = random.Random(7)
    killed_mid_batch = 0
    for round_number in range(1, 26):
        for _ in range(3):  # three new unowned issues: three new follow-ups
            sandbox.world.add_gh_issue(REPO, f"Unowned, round {round_number}", user="maria")
        enqueue_followups(config)
        victim = drain_process(config, 0, None)
        time.sleep(rng.uniform(0.5, 1.3))  # start-up takes most of a second
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
            killed_mid_batch += 1
        victim.wait(timeout=60)
        finished = drain_process(config, 10, None)
        assert finished.wait(timeout=60) == 0
        assert_each_posted_once(sandbox, 3 + 3 * round_number)
    assert killed_mid_batch >= 10, killed_mid_batch


# --- noise control ----------------------------------------------------------------------


def test_nudges_wait_for_working_hours(tmp_path: Path, sandbox: Sandbox) -> None:
    config = write_config(tmp_path, sandbox, '{ via = "source", every = "2d" }')
    text = config.read_text().replace(
        '[people.maria]\nname = "Maria"',
        '[people.maria]\nname = "Maria"\ntimezone = "Asia/Tokyo"\nworking_hours = "09:00-17:00"\n'
        'working_days = ["mon", "tue", "wed", "thu", "fri"]',
    )
    config.write_text(text)
    saturday_night_tokyo = datetime(2026, 3, 7, 13, 0, tzinfo=UTC)  # 22:00 Saturday in Tokyo
    clock = FrozenClock(saturday_night_tokyo)
    held = run(config, clock)
    assert held.enqueued == 3 and held.delivery.sent == 0
    assert all(p.not_before == datetime(2026, 3, 9, 0, 0, tzinfo=UTC) for p in held.planned)
    clock.set(datetime(2026, 3, 9, 0, 30, tzinfo=UTC))  # Monday 09:30 in Tokyo
    assert run(config, clock).delivery.sent == 3


def test_snooze_label_exempt_list_and_global_pause(tmp_path: Path, sandbox: Sandbox) -> None:
    sandbox.world.edit_gh_issue(REPO, 1, labels=["syncd:snooze"])
    config = write_config(tmp_path, sandbox, '{ via = "source", every = "2d" }')
    config.write_text(config.read_text() + f'\n[policy]\nexempt = ["{REPO}#2"]\n')
    clock = FrozenClock(datetime.now(UTC))
    report = run(config, clock)
    assert [p.task_key for p in report.planned] == [f"{REPO}#3"] and report.skipped == 2
    config.write_text(
        config.read_text().replace("[policy]\n", "[policy]\npause_followups = true\n")
    )
    clock.advance(timedelta(days=3))
    assert run(config, clock).planned == []


def test_reminders_say_they_replace_the_last_one(tmp_path: Path, sandbox: Sandbox) -> None:
    config = write_config(tmp_path, sandbox, '{ via = "source", every = "1d" }')
    clock = FrozenClock(datetime.now(UTC))
    run(config, clock)
    clock.advance(timedelta(days=1, hours=1))
    second = run(config, clock)
    assert all(
        "Reminder 2; this replaces syncd's earlier note." in p.delivery.body for p in second.planned
    )


def test_a_daily_digest_instead_of_single_nudges(tmp_path: Path, sandbox: Sandbox) -> None:
    from aiosmtpd.controller import Controller

    from syncd.demo import CapturedMail, _free_port

    mail = CapturedMail()
    port = _free_port()
    smtp = Controller(mail, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        config = write_config(tmp_path, sandbox, '{ via = "source", every = "2d" }')
        config.write_text(
            config.read_text().replace(
                '[people.maria]\nname = "Maria"',
                '[people.maria]\nname = "Maria"\nemail = "maria@acme.example"\ndigest = true',
            )
            + f'\n[smtp]\nhost = "127.0.0.1"\nport = {port}\nfrom = "syncd <syncd@acme.example>"\n'
            "starttls = false\n"
        )
        clock = FrozenClock(datetime.now(UTC))
        first = run(config, clock)
        assert first.delivery.sent == 1 and comments(sandbox) == []
        [(_, recipients, content)] = mail.messages
        assert recipients == ["maria@acme.example"]
        assert (
            b"3 things need you today" in content and content.count(b"needs exactly one owner") == 3
        )
        clock.advance(timedelta(hours=2))
        assert run(config, clock).delivery.sent == 0  # one digest a day
        clock.advance(timedelta(days=2))
        assert run(config, clock).delivery.sent == 1  # the next window's nudges, gathered again
        assert len(mail.messages) == 2
    finally:
        smtp.stop()


def test_verification_loop_asks_the_verifier_and_can_reopen(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    sandbox.world.edit_gh_issue(REPO, 4, labels=[])
    sandbox.world.close_gh_issue(REPO, 4)  # done, nobody verified it
    config = write_config(tmp_path, sandbox, '{ via = "source", every = "2d" }')
    config.write_text(
        config.read_text()
        + '\n[[rules]]\nid = "verify"\nkind = "verify_before_close"\nverifier = "alice"\n'
        'reopen = true\nfollowup = { via = "source", every = "2d" }\n'
    )
    report = run(config, FrozenClock(datetime.now(UTC)))
    [ask] = [p for p in report.planned if p.rule_id == "verify"]
    assert ask.delivery.recipient == "alice" and ask.delivery.target["reopen"] is True
    issue = sandbox.world.gh_issue(REPO, 4)
    assert issue is not None and issue.state == "open"
    assert any("@alice-c" in c.body and "not verified" in c.body for c in issue.comments)


def test_jira_reopen_uses_a_transition_back_to_to_do() -> None:
    from syncd.connectors.jira.settings import JiraSettings
    from syncd.writer.base import Delivery
    from syncd.writer.jira import JiraWriter

    world = World.from_dict({
        "tokens": {"jira": "sandbox-jira-token"},
        "jira": {"projects": [{"key": "OPS", "id": "10000", "name": "Ops"}],
                 "issues": [{"key": "OPS-1", "summary": "Done, unverified", "status": "Done"}]},
    })  # fmt: skip
    with Sandbox(world) as served:
        settings = JiraSettings(kind="jira", url=served.urls["jira"], email="bot@acme.example",
                                token="sandbox-jira-token", jql="project = OPS")  # type: ignore[arg-type]  # fmt: skip
        writer = JiraWriter("ops", settings)
        delivery = Delivery("verify:1:1:0", "jira", {"source": "ops", "key": "OPS-1", "reopen": True},
                            body="Please verify")  # fmt: skip
        writer.post(delivery)
        writer.close()
        issue = served.world.jira_issue("OPS-1")
        assert issue is not None and issue.status == "To Do"


def test_a_zzz_reaction_snoozes_a_slack_task(tmp_path: Path) -> None:
    from syncd.ledger.models import TaskRow
    from syncd.writer.plan import _snoozed

    path = tmp_path / "syncd.toml"
    path.write_text(
        '[sources.chat]\nkind = "slack"\ntoken = "xoxb-x"\nchannels = ["C1"]\n\n'
        '[sources.gh]\nkind = "github"\ntoken = "t0ken"\nrepos = ["a/b"]\n'
    )
    settings = load_config(path)
    assert _snoozed(TaskRow(source="chat", key="C1/1.0", labels=["zzz"]), settings)
    assert not _snoozed(TaskRow(source="chat", key="C1/2.0", labels=["eyes"]), settings)
    assert not _snoozed(TaskRow(source="gh", key="a/b#1", labels=["zzz"]), settings)
    assert _snoozed(TaskRow(source="gh", key="a/b#2", labels=["syncd:snooze"]), settings)
