"""The four channel writers against their real peers.

GitHub, Jira and Slack run against the sandbox through the real client libraries
(PyGithub, jira, httpx); email goes to an in-process aiosmtpd server, and its Sent
folder is a private Dovecot. Every channel passes the same contract: the post
carries a marker, `find` sees it (also from a fresh writer, as after a crash
between posting and recording), a vanished target is a permanent failure, and a
failed POST is never repeated by any layer.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from imapclient import IMAPClient
from pydantic import SecretStr

from syncd.config import SmtpSettings
from syncd.connectors.github.settings import GitHubSettings
from syncd.connectors.imap.settings import ImapSettings
from syncd.connectors.jira.settings import JiraSettings
from syncd.connectors.slack.settings import SlackSettings
from syncd.sandbox import Sandbox, World
from syncd.writer.base import ChannelWriter, Delivery, UnconfirmableDelivery, WriteError
from syncd.writer.email import UNCONFIRMED, EmailWriter, build_reply, message_id
from syncd.writer.github import GitHubWriter, marker
from syncd.writer.jira import JiraWriter
from syncd.writer.slack import EVENT_TYPE, SlackWriter

# The Dovecot helper lives beside the connector tests, in a folder without __init__.py.
sys.path.insert(0, str(Path(__file__).parent / "connectors"))
from dovecot import DovecotServer, dovecot_available, free_port  # type: ignore[import-not-found]

ALICE_JIRA = "712020:0f1e2d3c-4b5a-4c6d-8e7f-000000000001"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(World.default()) as sb:
        yield sb


@pytest.fixture(autouse=True)
def _clean_sandbox(sandbox: Sandbox) -> Iterator[None]:
    sandbox.request_log.reset()
    yield
    sandbox.faults.clear()


# --- one contract for the three HTTP channels ------------------------------------------


@dataclass
class Channel:
    """What the shared contract needs to know about one channel."""

    name: str
    make_writer: Callable[[Sandbox], ChannelWriter]
    target: dict[str, Any]  # a live target
    gone_target: Callable[[Sandbox], dict[str, Any]]  # a target that vanished
    post_route: str  # the POST path, as a fault glob
    mention: str


def github_writer(sb: Sandbox) -> ChannelWriter:
    settings = GitHubSettings(
        kind="github",
        base_url=sb.urls["github"],
        token=SecretStr(sb.world.tokens["github"][0]),
        repos=["example-org/api"],
        timeout=5,
    )
    return GitHubWriter("gh", settings)


def jira_writer(sb: Sandbox) -> ChannelWriter:
    settings = JiraSettings(
        kind="jira",
        url=sb.urls["jira"],
        email="bot@acme.example",
        token=SecretStr(sb.world.tokens["jira"][0]),
        jql="project = OPS",
        timeout=5,
    )
    return JiraWriter("ops", settings)


def slack_writer(sb: Sandbox) -> ChannelWriter:
    settings = SlackSettings(
        kind="slack",
        base_url=sb.urls["slack"],
        token=SecretStr(sb.world.tokens["slack"][0]),
        channels=["C0123ABCD"],
        timeout=5,
    )
    return SlackWriter("chat", settings)


def _deleted_github_issue(sb: Sandbox) -> dict[str, Any]:
    issue = sb.world.add_gh_issue("example-org/web", "Short-lived")
    sb.world.delete_gh_issue("example-org/web", issue.number)
    return {"source": "gh", "repo": "example-org/web", "number": issue.number}


def _deleted_jira_issue(sb: Sandbox) -> dict[str, Any]:
    sb.world.delete_jira_issue("OPS-3")
    return {"source": "ops", "key": "OPS-3"}


def _slack_thread(sb: Sandbox) -> dict[str, Any]:
    channel = sb.world.channel("C0123ABCD")
    assert channel is not None
    return {"source": "chat", "channel": "C0123ABCD", "thread_ts": channel.top_ts[0]}


CHANNELS = {
    "github": Channel(
        "github",
        github_writer,
        {"source": "gh", "repo": "example-org/api", "number": 1},
        _deleted_github_issue,
        "/repos/*/issues/*/comments",
        "alice-c",
    ),
    "jira": Channel(
        "jira",
        jira_writer,
        {"source": "ops", "key": "OPS-1"},
        _deleted_jira_issue,
        "/rest/api/2/issue/*/comment",
        ALICE_JIRA,
    ),
    "slack": Channel(
        "slack",
        slack_writer,
        {"source": "chat", "channel": "C0123ABCD"},  # the thread is added per test
        lambda sb: {"source": "chat", "channel": "C0GONE", "thread_ts": "1.000001"},
        "/api/chat.postMessage",
        "U01ALICE",
    ),
}


@pytest.fixture(params=sorted(CHANNELS))
def channel(request: pytest.FixtureRequest) -> Channel:
    return CHANNELS[str(request.param)]


def delivery_for(
    channel: Channel, sb: Sandbox, key: str, target: dict[str, Any] | None = None
) -> Delivery:
    where = _slack_thread(sb) if channel.name == "slack" else dict(channel.target)
    where.update(target or {})
    return Delivery(
        idempotency_key=key,
        channel=channel.name,
        target=where,
        recipient="alice",
        mention=channel.mention,
        body="Who owns this? Please assign exactly one person.",
    )


@pytest.fixture
def writer(channel: Channel, sandbox: Sandbox) -> Iterator[ChannelWriter]:
    built = channel.make_writer(sandbox)
    try:
        yield built
    finally:
        built.close()


def _posts(sb: Sandbox, channel: Channel) -> int:
    return sum(
        1
        for entry in sb.request_log.entries(channel.name)
        if entry.method == "POST" and fnmatch.fnmatchcase(entry.path, channel.post_route)
    )


def test_find_is_empty_before_and_finds_the_post_after(
    channel: Channel, sandbox: Sandbox, writer: ChannelWriter, request: pytest.FixtureRequest
) -> None:
    delivery = delivery_for(channel, sandbox, f"single-owner:{request.node.name}:1")
    assert writer.find(delivery) is None

    remote_id = writer.post(delivery)

    assert remote_id
    assert writer.find(delivery) == remote_id
    assert writer.find(delivery_for(channel, sandbox, delivery.idempotency_key + "0")) is None


def test_a_fresh_writer_finds_a_post_it_did_not_record(
    channel: Channel, sandbox: Sandbox, writer: ChannelWriter, request: pytest.FixtureRequest
) -> None:
    """A crash between posting and recording: the next drain's writer finds the marker."""
    delivery = delivery_for(channel, sandbox, f"crash:{request.node.name}")
    remote_id = writer.post(delivery)
    writer.close()  # the process died here; its writer is gone

    after_restart = channel.make_writer(sandbox)
    try:
        assert after_restart.find(delivery) == remote_id
    finally:
        after_restart.close()
    assert _posts(sandbox, channel) == 1


def test_a_vanished_target_is_a_permanent_failure(
    channel: Channel, sandbox: Sandbox, writer: ChannelWriter
) -> None:
    delivery = delivery_for(channel, sandbox, "gone:1", channel.gone_target(sandbox))

    with pytest.raises(WriteError) as posting:
        writer.post(delivery)
    with pytest.raises(WriteError) as finding:
        writer.find(delivery)

    assert posting.value.permanent and finding.value.permanent


def test_a_failed_post_reaches_the_server_once_and_raises(
    channel: Channel, sandbox: Sandbox, writer: ChannelWriter
) -> None:
    sandbox.faults.error(channel.name, 502, channel.post_route, times=1)
    delivery = delivery_for(channel, sandbox, "flaky:1")

    with pytest.raises(WriteError) as failed:
        writer.post(delivery)

    assert not failed.value.permanent
    assert _posts(sandbox, channel) == 1
    assert writer.find(delivery) is None  # nothing landed: the drain may post again


def test_secrets_stay_out_of_error_messages(
    channel: Channel, sandbox: Sandbox, writer: ChannelWriter
) -> None:
    sandbox.faults.error(channel.name, 502, channel.post_route, times=1)
    with pytest.raises(WriteError) as failed:
        writer.post(delivery_for(channel, sandbox, "secret:1"))
    for token in sandbox.world.tokens[channel.name]:
        assert token not in str(failed.value)


# --- what each channel's marker looks like ----------------------------------------------


def test_github_comment_mentions_and_ends_with_the_html_marker(sandbox: Sandbox) -> None:
    writer = github_writer(sandbox)
    delivery = delivery_for(CHANNELS["github"], sandbox, "due-date:example-org/api#2:1")
    try:
        comment_id = writer.post(delivery)
    finally:
        writer.close()

    issue = sandbox.world.gh_issue("example-org/api", 1)
    assert issue is not None
    body = next(c.body for c in issue.comments if str(c.id) == comment_id)
    assert body.startswith("@alice-c Who owns this?")
    assert body.endswith("<!-- syncd:due-date:example-org/api#2:1 -->")
    assert sandbox.writes.list("github", "issue_comment")[-1].payload["body"] == body


def test_github_marker_cannot_close_the_html_comment_early() -> None:
    assert marker("a-->b") == "<!-- syncd:a--%3Eb -->"
    assert marker("a") not in marker("ab")


def test_jira_comment_mentions_by_account_id_and_carries_the_property(sandbox: Sandbox) -> None:
    writer = jira_writer(sandbox)
    delivery = delivery_for(CHANNELS["jira"], sandbox, "priority:OPS-2:1", {"key": "OPS-2"})
    try:
        writer.post(delivery)
    finally:
        writer.close()

    write = sandbox.writes.list("jira", "comment")[-1]
    assert write.target == "OPS-2"
    assert write.payload["body"].startswith(f"[~accountid:{ALICE_JIRA}] Who owns this?")
    assert write.payload["properties"] == [
        {"key": "syncd", "value": {"idempotency_key": "priority:OPS-2:1"}}
    ]


def test_slack_reply_is_in_the_thread_with_metadata(sandbox: Sandbox) -> None:
    writer = slack_writer(sandbox)
    delivery = delivery_for(CHANNELS["slack"], sandbox, "stale:C0123ABCD/1:1")
    try:
        ts = writer.post(delivery)
    finally:
        writer.close()

    posted = sandbox.world.channels["C0123ABCD"].messages[ts]
    assert posted.thread_ts == delivery.target["thread_ts"]
    assert posted.text.startswith("<@U01ALICE> ")
    assert posted.metadata == {
        "event_type": EVENT_TYPE,
        "event_payload": {"idempotency_key": "stale:C0123ABCD/1:1"},
    }


def test_slack_direct_message_is_found_in_the_dm_history(sandbox: Sandbox) -> None:
    writer = slack_writer(sandbox)
    delivery = Delivery("dm:alice:1", "slack", {"source": "chat", "user": "U01ALICE"}, body="Hi")
    try:
        assert writer.find(delivery) is None
        ts = writer.post(delivery)
        assert writer.find(delivery) == ts
    finally:
        writer.close()
    assert sandbox.writes.list("slack", "chat.postMessage")[-1].target.startswith("D")


def test_slack_archived_like_errors_are_permanent_and_rate_limits_are_not(
    sandbox: Sandbox,
) -> None:
    writer = slack_writer(sandbox)
    thread = {"source": "chat", "channel": "C0123ABCD", "thread_ts": "1.000001"}
    try:
        with pytest.raises(WriteError) as no_thread:
            writer.post(Delivery("t:1", "slack", thread, body="x"))
        sandbox.faults.rate_limit("slack", "/api/chat.postMessage", times=1)
        with pytest.raises(WriteError) as limited:
            writer.post(delivery_for(CHANNELS["slack"], sandbox, "t:2"))
    finally:
        writer.close()
    assert no_thread.value.permanent and "thread_not_found" in str(no_thread.value)
    assert not limited.value.permanent and "ratelimited" in str(limited.value)


# --- email: aiosmtpd for SMTP, Dovecot for the Sent folder --------------------------------


class Inbox:
    """An aiosmtpd handler keeping every message; `refuse` answers DATA with that reply."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refuse: str | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse:
            return self.refuse
        content = envelope.original_content or b""
        self.messages.append(message_from_bytes(content, policy=default_policy))
        return "250 OK"


@pytest.fixture(scope="module")
def smtp_server() -> Iterator[tuple[Controller, Inbox]]:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


@pytest.fixture
def inbox(smtp_server: tuple[Controller, Inbox]) -> Inbox:
    _, inbox = smtp_server
    inbox.messages.clear()
    inbox.refuse = None
    return inbox


@pytest.fixture
def smtp(smtp_server: tuple[Controller, Inbox]) -> SmtpSettings:
    controller, _ = smtp_server
    return SmtpSettings.model_validate(
        {"host": "127.0.0.1", "port": controller.port, "from": "syncd <support@acme.example>",
         "starttls": False, "timeout": 5}
    )  # fmt: skip


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    if not dovecot_available():
        reason = "dovecot-imapd is not installed (apt-get install dovecot-imapd)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = DovecotServer()
    server.start(users=10)
    try:
        yield server
    finally:
        server.stop()


def imap_settings(dovecot: DovecotServer, user: str, password: str = "secret") -> ImapSettings:
    return ImapSettings(
        kind="imap",
        host="127.0.0.1",
        port=dovecot.port,
        ssl=False,
        username=user,
        password=SecretStr(password),
        sent_folder="Sent",
        timeout=5,
    )


def email_delivery(key: str = "single-owner:thread-1@acme.example:1") -> Delivery:
    return Delivery(
        idempotency_key=key,
        channel="email",
        target={
            "to": "client@example.com",
            "subject": "VPN is down",
            "in_reply_to": "m2@example.com",
            "references": ["<m1@example.com>", "m2@example.com"],
        },
        recipient="alice",
        body="Alice is looking into this; we will reply by Friday.",
    )


def sent_flags(dovecot: DovecotServer, user: str) -> list[set[bytes]]:
    with IMAPClient("127.0.0.1", port=dovecot.port, ssl=False) as client:
        client.login(user, "secret")
        if not client.folder_exists("Sent"):
            return []
        client.select_folder("Sent", readonly=True)
        fetched = client.fetch(client.search(["ALL"]), ["FLAGS"])
        return [set(data[b"FLAGS"]) for data in fetched.values()]


def test_email_reply_is_threaded_with_a_message_id_from_the_key(
    smtp: SmtpSettings, inbox: Inbox
) -> None:
    writer = EmailWriter(smtp)
    delivery = email_delivery()

    sent_id = writer.post(delivery)

    [received] = inbox.messages
    assert sent_id == message_id(delivery.idempotency_key, smtp.from_)
    assert sent_id.startswith("syncd.") and sent_id.endswith("@acme.example")
    assert received["Message-ID"] == f"<{sent_id}>"
    assert received["In-Reply-To"] == "<m2@example.com>"
    assert received["References"] == "<m1@example.com> <m2@example.com>"
    assert received["Subject"] == "Re: VPN is down"
    assert build_reply(delivery, smtp.from_)["Message-ID"] == received["Message-ID"]


def test_email_without_a_sent_folder_cannot_confirm(smtp: SmtpSettings) -> None:
    with pytest.raises(UnconfirmableDelivery):
        EmailWriter(smtp).find(email_delivery())


def test_email_sent_copy_is_found_by_a_fresh_writer(
    smtp: SmtpSettings, inbox: Inbox, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user()
    writer = EmailWriter(smtp, imap_settings(dovecot, user))
    delivery = email_delivery()
    assert writer.find(delivery) is None

    sent_id = writer.post(delivery)

    after_restart = EmailWriter(smtp, imap_settings(dovecot, user))
    assert after_restart.find(delivery) == sent_id
    assert len(inbox.messages) == 1
    assert [UNCONFIRMED in flags for flags in sent_flags(dovecot, user)] == [False]


def test_email_interrupted_send_is_reported_unconfirmed(
    smtp: SmtpSettings, inbox: Inbox, dovecot: DovecotServer
) -> None:
    """A crash after the Sent copy was kept but before the server answered."""
    user = dovecot.add_user()
    writer = EmailWriter(smtp, imap_settings(dovecot, user))
    delivery = email_delivery()
    writer._keep_unconfirmed_copy(build_reply(delivery, smtp.from_))

    with pytest.raises(UnconfirmableDelivery):
        EmailWriter(smtp, imap_settings(dovecot, user)).find(delivery)
    assert inbox.messages == []


def test_email_refused_reply_is_permanent_and_leaves_no_sent_copy(
    smtp: SmtpSettings, inbox: Inbox, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user()
    writer = EmailWriter(smtp, imap_settings(dovecot, user))
    inbox.refuse = "550 5.1.1 mailbox unavailable"

    with pytest.raises(WriteError) as refused:
        writer.post(email_delivery())

    assert refused.value.permanent and "550" in str(refused.value)
    assert writer.find(email_delivery()) is None
    assert sent_flags(dovecot, user) == []


def test_email_passwords_stay_out_of_error_messages(
    smtp: SmtpSettings, dovecot: DovecotServer
) -> None:
    user = dovecot.add_user()
    writer = EmailWriter(smtp, imap_settings(dovecot, user, password="hunter2-wrong"))

    with pytest.raises(WriteError) as failed:
        writer.find(email_delivery())

    assert "hunter2" not in str(failed.value)
    assert not failed.value.permanent
