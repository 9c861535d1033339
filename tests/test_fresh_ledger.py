"""The target remembers what was sent: a ledger that starts empty posts nothing twice.

A real reconcile posts follow-ups into the GitHub, Jira and Slack simulators (and
mails them, with a copy in a real Dovecot's Sent folder); the ledger is then
replaced by an empty one, as a restore gone wrong or a new volume would, and the
next reconcile must find every follow-up already at the target instead of
posting it again. Email without a Sent folder is the one known gap: shown here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from syncd.clock import FrozenClock
from syncd.config import load_config
from syncd.demo import CapturedMail
from syncd.ledger.models import OutboxItem
from syncd.ledger.repository import Ledger
from syncd.reconcile import ReconcileReport, reconcile
from syncd.rules.engine import compile_rules
from syncd.sandbox import Sandbox, World
from syncd.writer.base import Delivery
from syncd.writer.outbox import KNOWN_BEFORE
from syncd.writer.registry import writer_registry

sys.path.insert(0, str(Path(__file__).parent / "connectors"))
from dovecot import DovecotServer, dovecot_available, free_port  # type: ignore[import-not-found]

MARIA_JIRA = "712020:0f1e2d3c-4b5a-4c6d-8e7f-00000000000a"
CHANNEL = "C0123ABCD"


def world() -> World:
    """Five requests nobody owns, all from Maria: two issues, two Jira issues, one message."""
    return World.from_dict({
        "tokens": {"github": "sandbox-github-token", "jira": "sandbox-jira-token",
                   "slack": "xoxb-sandbox"},
        "people": [
            {"id": "alice", "name": "Alice", "github": "alice-c", "slack": "U01ALICE",
             "jira": "712020:0f1e2d3c-4b5a-4c6d-8e7f-000000000001"},
            {"id": "maria", "name": "Maria", "github": "maria-l", "slack": "U01MARIA",
             "jira": MARIA_JIRA, "email": "maria@acme.example"},
        ],
        "github": {"viewer": "syncd-bot", "repos": [{"full_name": "acme/infra", "issues": [
            {"number": 1, "title": "Renew the wildcard certificate", "user": "maria",
             "created_at": "-3d", "updated_at": "-3d"},
            {"number": 2, "title": "Move backups to the new bucket", "user": "maria",
             "created_at": "-3d", "updated_at": "-3d"},
            {"number": 3, "title": "Owned", "user": "maria", "assignees": ["alice"],
             "created_at": "-3d", "updated_at": "-3d"},
        ]}]},
        "jira": {"projects": [{"key": "OPS", "id": "10000", "name": "Ops"}], "issues": [
            {"key": "OPS-1", "summary": "Printer queue stuck", "status": "To Do",
             "reporter": "maria", "created": "-3d", "updated": "-3d"},
            {"key": "OPS-2", "summary": "New laptop for Sam", "status": "To Do",
             "reporter": "maria", "created": "-3d", "updated": "-3d"},
        ]},
        "slack": {"channels": [{"id": CHANNEL, "name": "ops", "messages": [
            {"user": "maria", "text": "The office wifi drops every hour", "ts": "-5h"}]}]},
    })  # fmt: skip


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(world()) as served:
        yield served


PEOPLE = (
    '[people.alice]\nname = "Alice"\ngithub = "alice-c"\nslack = "U01ALICE"\n'
    'jira = "712020:0f1e2d3c-4b5a-4c6d-8e7f-000000000001"\n\n'
    f'[people.maria]\nname = "Maria"\ngithub = "maria-l"\nslack = "U01MARIA"\n'
    f'jira = "{MARIA_JIRA}"\nemail = "maria@acme.example"\n\n'
)


def write_config(tmp_path: Path, sandbox: Sandbox, *, via: str = "source", extra: str = "") -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
        f'[sources.gh]\nkind = "github"\nbase_url = "{sandbox.urls["github"]}"\n'
        'token = "sandbox-github-token"\nrepos = ["acme/infra"]\n\n'
        f'[sources.ops]\nkind = "jira"\nurl = "{sandbox.urls["jira"]}"\n'
        'email = "bot@acme.example"\ntoken = "sandbox-jira-token"\njql = "project = OPS"\n\n'
        f'[sources.chat]\nkind = "slack"\nbase_url = "{sandbox.urls["slack"]}"\n'
        f'token = "xoxb-sandbox"\nchannels = ["{CHANNEL}"]\n\n'
        f"{PEOPLE}{extra}"
        f'[[rules]]\nid = "single-owner"\nkind = "single_owner"\n'
        f'followup = {{ via = "{via}", every = "2d" }}\n'
    )
    return path


def run(config: Path, clock: FrozenClock, names: list[str] | None = None) -> ReconcileReport:
    settings = load_config(config)
    ledger = Ledger.open(settings.ledger.url)
    try:
        with writer_registry(settings) as writer_for:
            return reconcile(
                settings, ledger, names or list(settings.sources), compile_rules(settings.rules),
                clock, writer_for=writer_for,
            )  # fmt: skip
    finally:
        ledger.close()


def empty_the_ledger(tmp_path: Path) -> None:
    """The ledger file is gone (a new volume): the next run starts from nothing."""
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"ledger.db{suffix}").unlink(missing_ok=True)


def outbox(config: Path) -> list[OutboxItem]:
    ledger = Ledger.open(load_config(config).ledger.url)
    try:
        with ledger.sessions() as session:
            return list(session.scalars(select(OutboxItem).order_by(OutboxItem.id)))
    finally:
        ledger.close()


def posts(sandbox: Sandbox) -> list[Any]:
    return [w for w in sandbox.writes.list() if "comment" in w.kind or "postMessage" in w.kind]


def test_a_fresh_ledger_posts_none_of_the_follow_ups_the_targets_hold(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config = write_config(tmp_path, sandbox)
    clock = FrozenClock(datetime.now(UTC))
    first = run(config, clock)
    assert first.delivery.sent == 5
    before = posts(sandbox)
    assert sorted(w.service for w in before) == ["github", "github", "jira", "jira", "slack"]
    remote_ids = {row.remote_id for row in outbox(config)}

    empty_the_ledger(tmp_path)
    clock.advance(timedelta(hours=3))
    second = run(config, clock)

    assert posts(sandbox) == before, "nothing posted again"
    assert (second.delivery.sent, second.delivery.known_to_target) == (0, 5)
    rows = outbox(config)
    assert [row.state for row in rows] == ["sent"] * 5
    assert all(row.error and row.error.startswith(KNOWN_BEFORE) for row in rows)
    assert {row.remote_id for row in rows} == remote_ids, "each points at the earlier post"

    # Not swallowed for good: once the cooldown has passed, the reminders go out.
    clock.advance(timedelta(days=2, hours=1))
    third = run(config, clock)
    assert third.delivery.sent == 5 and len(posts(sandbox)) == 10


def test_a_fresh_ledger_after_the_cooldown_sends_the_reminder_that_is_due(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Markers older than `every` are earlier nudges, not this one: each target's own
    timestamp (comment created, message ts) says how old they are."""
    config = write_config(tmp_path, sandbox)
    clock = FrozenClock(datetime.now(UTC))
    assert run(config, clock).delivery.sent == 5
    empty_the_ledger(tmp_path)
    clock.advance(timedelta(days=2, hours=1))
    later = run(config, clock)
    assert (later.delivery.sent, later.delivery.known_to_target) == (5, 0)
    assert len(posts(sandbox)) == 10


def test_without_the_empty_ledger_nothing_changes(tmp_path: Path, sandbox: Sandbox) -> None:
    """The ledger's own earlier nudges never hold back the next window's reminder."""
    config = write_config(tmp_path, sandbox)
    clock = FrozenClock(datetime.now(UTC))
    assert run(config, clock).delivery.sent == 5
    clock.advance(timedelta(days=2, minutes=1))
    second = run(config, clock)
    assert (second.delivery.sent, second.delivery.known_to_target) == (5, 0)


def test_an_outbox_from_before_the_key_change_is_not_planned_again(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """Older syncd keyed follow-ups `<rule>:<task row>:<violation row>:<window>`."""
    config = write_config(tmp_path, sandbox)
    clock = FrozenClock(datetime.now(UTC))
    assert run(config, clock).delivery.sent == 5
    ledger = Ledger.open(load_config(config).ledger.url)
    try:
        with ledger.sessions.begin() as session:
            for row in session.scalars(select(OutboxItem)):
                row.idempotency_key = f"{row.rule_id}:{row.task_id}:{row.violation_id}:0"
    finally:
        ledger.close()
    clock.advance(timedelta(hours=3))
    again = run(config, clock)
    assert (again.enqueued, again.delivery.sent) == (0, 0)
    assert len(outbox(config)) == 5 and len(posts(sandbox)) == 5


# --- email -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    if not dovecot_available():
        reason = "dovecot-imapd is not installed (apt-get install dovecot-imapd)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = DovecotServer()
    server.start(users=4)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mail() -> Iterator[tuple[CapturedMail, int]]:
    captured, port = CapturedMail(), free_port()
    controller = Controller(captured, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield captured, port
    finally:
        controller.stop()


def email_config(tmp_path: Path, sandbox: Sandbox, smtp_port: int, imap: str = "") -> Path:
    smtp = (
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\n'
        'from = "syncd <support@acme.example>"\nstarttls = false\n\n'
    )
    return write_config(tmp_path, sandbox, via="email", extra=smtp + imap)


def test_email_with_a_sent_folder_is_not_sent_again(
    tmp_path: Path, sandbox: Sandbox, dovecot: DovecotServer, mail: tuple[CapturedMail, int]
) -> None:
    captured, port = mail
    user = dovecot.add_user()
    mailbox = (
        f'[sources.support]\nkind = "imap"\nhost = "127.0.0.1"\nport = {dovecot.port}\n'
        f'ssl = false\nusername = "{user}"\npassword = "secret"\nsent_folder = "Sent"\n\n'
    )
    config = email_config(tmp_path, sandbox, port, mailbox)
    clock = FrozenClock(datetime.now(UTC))
    assert run(config, clock, ["gh", "ops", "chat"]).delivery.sent == 5
    assert len(captured.messages) == 5

    empty_the_ledger(tmp_path)
    clock.advance(timedelta(hours=3))
    second = run(config, clock, ["gh", "ops", "chat"])

    assert len(captured.messages) == 5, "no reply mailed twice"
    assert second.delivery.known_to_target == 5
    rows = outbox(config)
    assert [row.state for row in rows] == ["sent"] * 5
    assert all(row.error and row.error.startswith(KNOWN_BEFORE) for row in rows)


def test_email_without_a_sent_folder_is_the_known_gap(
    tmp_path: Path, sandbox: Sandbox, mail: tuple[CapturedMail, int]
) -> None:
    """README, "Known gap": SMTP cannot say what was sent, so an empty ledger mails again."""
    captured, port = mail
    config = email_config(tmp_path, sandbox, port)
    clock = FrozenClock(datetime.now(UTC))
    assert run(config, clock).delivery.sent == 5
    empty_the_ledger(tmp_path)
    clock.advance(timedelta(hours=3))
    second = run(config, clock)
    assert (second.delivery.sent, second.delivery.known_to_target) == (5, 0)
    assert len(captured.messages) == 10


# --- the writers' side: markers of one series, read from the target --------------------


@pytest.mark.parametrize("name", ["github", "jira", "slack"])
def test_each_writer_reads_the_markers_of_a_series_from_the_target(
    name: str, request: pytest.FixtureRequest
) -> None:
    from tests.test_writers import CHANNELS, delivery_for

    channel = CHANNELS[name]
    series = f"single-owner:gh/{request.node.name.replace(':', '%3A')}"
    with Sandbox(World.default()) as served:
        writer = channel.make_writer(served)
        try:
            earlier = delivery_for(channel, served, f"{series}:3.1700000000:0")
            posted = writer.post(earlier)
            # The next window, planned by a ledger that never saw the first post.
            later = delivery_for(channel, served, f"{series}:1.1800000000:1")
            later = Delivery(**{**later.__dict__, "target": earlier.target})
            [found] = writer.markers(later)
            other_series = delivery_for(channel, served, f"{series}x:3.1700000000:0")
            other_series = Delivery(**{**other_series.__dict__, "target": earlier.target})
            assert writer.markers(other_series) == []
            assert [m.exact for m in writer.markers(earlier)] == [True]
        finally:
            writer.close()
    assert (found.remote_id, found.exact, found.key) == (posted, False, earlier.idempotency_key)
    assert found.at is not None and abs(datetime.now(UTC) - found.at) < timedelta(minutes=5)


def test_the_sent_folder_gives_the_markers_of_a_series(
    dovecot: DovecotServer, mail: tuple[CapturedMail, int]
) -> None:
    from syncd.config import SmtpSettings
    from syncd.connectors.imap.settings import ImapSettings
    from syncd.writer.email import EmailWriter

    _, port = mail
    smtp = SmtpSettings.model_validate({"host": "127.0.0.1", "port": port, "starttls": False,
                                        "from": "syncd <support@acme.example>"})  # fmt: skip
    user = dovecot.add_user()
    imap = ImapSettings.model_validate({"kind": "imap", "host": "127.0.0.1", "port": dovecot.port,
                                        "ssl": False, "username": user, "password": "secret"})  # fmt: skip
    writer = EmailWriter(smtp, imap)
    target = {"to": "maria@acme.example", "subject": "[syncd] acme/infra#1: Renew"}
    earlier = Delivery("single-owner:gh/1:3.1700000000:0", "email", target, body="Who owns it?")
    posted = writer.post(earlier)
    later = Delivery("single-owner:gh/1:1.1800000000:1", "email", target, body="Who owns it?")
    [found] = writer.markers(later)
    assert (found.remote_id, found.exact) == (posted, False)
    assert found.at is not None and abs(datetime.now(UTC) - found.at) < timedelta(minutes=5)
    assert [m.exact for m in writer.markers(earlier)] == [True]
    assert writer.markers(Delivery("single-owner:gh/2:3.1700000000:0", "email", target)) == []
    assert EmailWriter(smtp).markers(later) == [], "no Sent folder: nothing to look in"
