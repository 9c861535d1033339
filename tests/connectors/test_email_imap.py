"""The IMAP connector through imapclient against a real, private Dovecot."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dovecot import DovecotServer, dovecot_available, make_message
from imapclient import IMAPClient
from typer.testing import CliRunner

from syncd.cli import app
from syncd.clock import SystemClock
from syncd.config import Settings, load_config
from syncd.connectors.imap.connector import may_have_older, recorded_members
from syncd.connectors.imap.gateway import ImapGateway
from syncd.connectors.mail.parse import parse_message
from syncd.connectors.mail.threads import StoredMessage
from syncd.ledger.repository import Ledger
from syncd.sync import SourceSummary, pull_all

SUPPORT = "support@acme.example"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    if not dovecot_available():
        reason = "dovecot-imapd is not installed (apt-get install dovecot-imapd)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = DovecotServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def user(dovecot: DovecotServer) -> str:
    return dovecot.add_user()


@pytest.fixture
def imap(dovecot: DovecotServer, user: str) -> Iterator[IMAPClient]:
    """The test's own mail client, the way people and other tools change the mailbox."""
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False)
    client.login(user, "secret")
    client.create_folder("Done")
    try:
        yield client
    finally:
        client.logout()


def write_config(
    tmp_path: Path, dovecot: DovecotServer, user: str, password: str = "secret", **extra: str
) -> Path:
    options = {"folders": '["INBOX"]', "done_folder": '"Done"', "done_flag": '"\\\\Flagged"'}
    options.update(extra)
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
        f'[sources.support]\nkind = "imap"\nhost = "127.0.0.1"\nport = {dovecot.port}\n'
        f'ssl = false\nusername = "{user}"\npassword = "{password}"\ntimeout = 5.0\n'
        f'team_addresses = ["{SUPPORT}"]\n'
        + "".join(f"{key} = {value}\n" for key, value in options.items())
        + '\n[people.alice]\nemail = "alice@acme.example"\n\n'
        '[people.bob]\nemail = "bob@acme.example"\n'
    )
    return path


@pytest.fixture
def settings(tmp_path: Path, dovecot: DovecotServer, user: str) -> Settings:
    return load_config(write_config(tmp_path, dovecot, user))


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """IMAP commands (round trips) each run sent, recorded when its connector closes."""
    runs: list[int] = []
    close = ImapGateway.close

    def recording_close(self: ImapGateway) -> None:
        close(self)
        runs.append(self.commands)
        print("IMAP reads:", self.trace)

    monkeypatch.setattr(ImapGateway, "close", recording_close)
    return runs


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The reads each run asked for ("SEARCH INBOX MODSEQ", "FETCH Done", ...)."""
    runs: list[list[str]] = []
    close = ImapGateway.close

    def recording_close(self: ImapGateway) -> None:
        close(self)
        runs.append(list(self.trace))

    monkeypatch.setattr(ImapGateway, "close", recording_close)
    return runs


def reconcile(settings: Settings) -> SourceSummary:
    ledger = Ledger.open(settings.ledger.url)
    try:
        summaries, _ = pull_all(settings, ledger, ["support"], SystemClock())
    finally:
        ledger.close()
    return summaries["support"]


def tasks(settings: Settings) -> dict[str, Any]:
    ledger = Ledger.open(settings.ledger.url)
    try:
        return {row.key: row for row in ledger.tasks(sources=["support"])}
    finally:
        ledger.close()


def append(client: IMAPClient, folder: str = "INBOX", **fields: Any) -> None:
    values: dict[str, Any] = {
        "sender": "Carol Client <carol@client.example>",
        "to": f"Support <{SUPPORT}>",
        "subject": "VPN certificate expired",
        "body": "Hi,\nthe VPN certificate expired.\nThanks",
    }
    values.update(fields)
    client.append(folder, make_message(**values))


def three_message_thread(client: IMAPClient, to: str) -> None:
    append(
        client,
        message_id="root@client.example",
        to=to,
        body="Hi,\n\nCan you renew the VPN certificate by Friday? It's urgent.\n\nCarol",
    )
    append(
        client,
        message_id="r1@acme.example",
        sender="Alice <alice@acme.example>",
        to="carol@client.example",
        subject="Re: VPN certificate expired",
        body="Looking at it now.\n\nOn Mon, Carol wrote:\n> Can you renew it?",
        date="Mon, 02 Mar 2026 10:00:00 +0000",
        in_reply_to="root@client.example",
        references="<root@client.example>",
    )
    append(
        client,
        message_id="r2@client.example",
        to="alice@acme.example",
        subject="Re: VPN certificate expired",
        body="Any news?\n\n> Looking at it now.",
        date="Mon, 02 Mar 2026 11:00:00 +0000",
        in_reply_to="r1@acme.example",
    )


def test_a_thread_of_three_is_one_task_owned_by_the_person_addressed(
    settings: Settings, imap: IMAPClient
) -> None:
    three_message_thread(imap, to="Bob <bob@acme.example>")
    summary = reconcile(settings)
    assert not summary.failed, summary.error
    assert (summary.new, summary.fetched) == (1, 3)
    task = tasks(settings)["root@client.example"]
    assert task.owners == ["bob"] and task.team is None
    assert task.reporter == "email:carol@client.example"
    assert task.due.isoformat() == "2026-03-06" and task.priority == "high"
    assert task.status == "in_progress"
    assert task.last_activity_at.hour == 11
    assert task.participants == ["email:carol@client.example", "alice"]


def test_a_reply_from_a_team_member_owns_mail_to_a_shared_mailbox(
    settings: Settings, imap: IMAPClient
) -> None:
    append(imap, message_id="root@client.example")
    reconcile(settings)
    assert tasks(settings)["root@client.example"].owners == []
    three_message_thread_reply = {
        "message_id": "r1@acme.example",
        "sender": "alice@acme.example",
        "to": "carol@client.example",
        "subject": "Re: VPN certificate expired",
        "body": "Mine.",
        "date": "Mon, 02 Mar 2026 10:00:00 +0000",
        "in_reply_to": "root@client.example",
    }
    append(imap, **three_message_thread_reply)
    summary = reconcile(settings)
    assert (summary.new, summary.updated) == (0, 1)
    task = tasks(settings)["root@client.example"]
    assert task.owners == ["alice"] and task.team == SUPPORT


def test_flag_and_move_to_the_done_folder_make_a_thread_done(
    settings: Settings, imap: IMAPClient
) -> None:
    append(imap, message_id="a@client.example", subject="Printer jammed")
    append(imap, message_id="b@client.example", subject="Laptop broken")
    reconcile(settings)
    imap.select_folder("INBOX")
    uids = {
        data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"].decode().split("<")[1].split(">")[0]: uid
        for uid, data in imap.fetch(
            imap.search(["ALL"]), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]
        ).items()
    }
    imap.add_flags([uids["a@client.example"]], [b"\\Flagged"])
    imap.move([uids["b@client.example"]], "Done")
    summary = reconcile(settings)
    assert not summary.failed, summary.error
    live = tasks(settings)
    assert live["a@client.example"].status == "done"
    assert live["b@client.example"].status == "done"
    assert (summary.new, summary.gone) == (0, 0)


def test_changed_uidvalidity_resyncs_without_duplicates(
    tmp_path: Path, dovecot: DovecotServer, user: str, imap: IMAPClient
) -> None:
    imap.create_folder("Requests")
    settings = load_config(write_config(tmp_path, dovecot, user, folders='["Requests"]'))
    for n in range(3):
        append(imap, "Requests", message_id=f"m{n}@client.example", subject=f"Request {n}")
    assert reconcile(settings).new == 3
    old = imap.folder_status("Requests", [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    imap.delete_folder("Requests")
    imap.create_folder("Requests")
    for n in range(3):
        append(imap, "Requests", message_id=f"m{n}@client.example", subject=f"Request {n}")
    assert imap.folder_status("Requests", [b"UIDVALIDITY"])[b"UIDVALIDITY"] != old
    summary = reconcile(settings)
    assert not summary.failed, summary.error
    assert (summary.new, summary.updated, summary.unchanged, summary.gone) == (0, 0, 3, 0)
    assert len(tasks(settings)) == 3


def test_expunged_thread_is_gone(settings: Settings, imap: IMAPClient) -> None:
    for n in range(4):
        append(imap, message_id=f"m{n}@client.example", subject=f"Request {n}")
    reconcile(settings)
    imap.select_folder("INBOX")
    imap.delete_messages([min(imap.search(["ALL"]))])
    imap.expunge()
    summary = reconcile(settings)
    assert summary.gone == 1
    assert "m0@client.example" not in tasks(settings)


def test_incremental_runs_send_only_the_minimal_round_trips(
    settings: Settings, imap: IMAPClient, commands: list[int]
) -> None:
    for n in range(5):
        append(imap, message_id=f"m{n}@client.example", subject=f"Request {n}")
    reconcile(settings)
    # Unchanged: LOGIN (capabilities come with its answer), STATUS INBOX, STATUS Done, LOGOUT.
    assert reconcile(settings).fetched == 0
    assert commands[-1] == 4
    append(
        imap,
        message_id="r@acme.example",
        sender="bob@acme.example",
        subject="Re: Request 3",
        body="Done, please check.",
        in_reply_to="m3@client.example",
        references="<m3@client.example>",
    )
    summary = reconcile(settings)
    assert (summary.new, summary.updated) == (0, 1)
    # + SELECT INBOX, SEARCH MODSEQ, FETCH the new message, FETCH the thread's older
    # message where the ledger recorded it (4). No scanning search; nothing read twice.
    assert commands[-1] == 4 + 4, commands
    assert tasks(settings)["m3@client.example"].owners == ["bob"]


def test_a_rejected_login_fails_the_source_in_plain_words(
    tmp_path: Path, dovecot: DovecotServer, user: str
) -> None:
    config = write_config(tmp_path, dovecot, user, password="wrong")
    result = CliRunner().invoke(app, ["reconcile", "-c", str(config), "--format", "json"])
    assert result.exit_code == 1
    assert "the IMAP server rejected the login for source support" in result.output
    assert "wrong" not in result.output.replace('"wrong"', "")


def test_the_whole_corpus_appended_is_stored_or_quarantined(
    settings: Settings, imap: IMAPClient
) -> None:
    from test_email_corpus import corpus_messages

    # An IMAP server refuses an empty message; the parser test covers those files.
    messages = [(name, raw) for name, raw in corpus_messages() if raw.strip()]
    for _, raw in messages:
        imap.append("INBOX", raw)
    summary = reconcile(settings)
    assert not summary.failed, summary.error
    # Every message was read and is either in a thread's task (or activity) or quarantined.
    assert summary.fetched == len(messages)
    assert summary.quarantined > 0 and summary.new == len(tasks(settings)) > 100


def _reply(client: IMAPClient, message_id: str, parent: str, references: str | None) -> None:
    append(
        client,
        message_id=message_id,
        sender="alice@acme.example",
        subject="Re: VPN certificate expired",
        body="On it.",
        date="Mon, 02 Mar 2026 12:00:00 +0000",
        in_reply_to=parent,
        references=references,
    )


def test_a_reply_to_a_synced_thread_lands_on_its_task_with_no_search(
    settings: Settings, imap: IMAPClient, reads: list[list[str]]
) -> None:
    three_message_thread(imap, to="support@acme.example")
    append(imap, message_id="other@client.example", subject="Printer jammed")
    reconcile(settings)
    _reply(imap, "r3@acme.example", "r2@client.example",
           "<root@client.example> <r1@acme.example> <r2@client.example>")  # fmt: skip
    summary = reconcile(settings)
    assert not summary.failed, summary.error
    # The whole thread was read again (the task needs every message), nothing else.
    assert (summary.new, summary.updated, summary.fetched) == (0, 1, 4)
    assert reads[-1] == [
        "connect", "STATUS INBOX", "STATUS Done", "SEARCH INBOX MODSEQ", "FETCH INBOX",
        "FETCH INBOX",
    ]  # fmt: skip
    live = tasks(settings)
    assert set(live) == {"root@client.example", "other@client.example"}
    task = live["root@client.example"]
    assert task.last_activity_at.hour == 12 and task.due.isoformat() == "2026-03-06"
    assert task.owners == ["alice"] and task.status == "in_progress"


def test_a_flag_on_an_older_reply_reads_its_thread_from_both_folders_with_no_search(
    settings: Settings, imap: IMAPClient, reads: list[list[str]]
) -> None:
    three_message_thread(imap, to="support@acme.example")
    imap.select_folder("INBOX")
    imap.move([max(imap.search(["ALL"]))], "Done")  # r2 sits in the done folder
    assert tasks_after(settings)["root@client.example"].status == "done"
    imap.select_folder("INBOX")
    imap.add_flags(imap.search(["HEADER", "Message-ID", "<r1@acme.example>"]), [b"\\Seen"])
    summary = reconcile(settings)
    assert not summary.failed, summary.error
    assert summary.fetched == 3
    # The flagged reply, then its root (INBOX, still selected) and r2 (Done) by UID.
    assert reads[-1] == [
        "connect", "STATUS INBOX", "STATUS Done", "SEARCH INBOX MODSEQ", "FETCH INBOX",
        "FETCH INBOX", "FETCH Done",
    ]  # fmt: skip
    assert len(tasks(settings)) == 1


def test_a_brand_new_request_costs_no_search(
    settings: Settings, imap: IMAPClient, reads: list[list[str]]
) -> None:
    append(imap, message_id="a@client.example", subject="Printer jammed")
    reconcile(settings)
    append(imap, message_id="b@client.example", subject="Laptop broken")
    summary = reconcile(settings)
    assert (summary.new, summary.fetched) == (1, 1)
    assert reads[-1] == ["connect", "STATUS INBOX", "STATUS Done", "SEARCH INBOX MODSEQ",
                         "FETCH INBOX"]  # fmt: skip


def test_a_reply_the_ledger_cannot_place_is_found_by_searching(
    settings: Settings, imap: IMAPClient, reads: list[list[str]]
) -> None:
    """In-Reply-To names a reply, not the root (no References): no task has that key."""
    three_message_thread(imap, to="support@acme.example")
    reconcile(settings)
    _reply(imap, "r3@acme.example", "r2@client.example", None)
    summary = reconcile(settings)
    assert (summary.new, summary.updated, summary.fetched) == (0, 1, 4)
    assert any(r.startswith("SEARCH INBOX OR") for r in reads[-1]), reads[-1]
    assert set(tasks(settings)) == {"root@client.example"}


def _edit_recorded_messages(settings: Settings, edit: Any) -> None:
    """Change the messages the (only) task's payload records, as an older syncd or a
    mailbox changed behind syncd's back would leave them."""
    from sqlalchemy import select

    from syncd.ledger.models import RawPayload

    ledger = Ledger.open(settings.ledger.url)
    try:
        with ledger.sessions.begin() as session:
            row = session.execute(select(RawPayload)).scalar_one()
            messages = [dict(m) for m in row.payload["messages"]]
            edit(messages)
            row.payload = {**row.payload, "messages": messages}
    finally:
        ledger.close()


def test_a_stale_recorded_location_falls_back_to_searching(
    settings: Settings, imap: IMAPClient, reads: list[list[str]]
) -> None:
    """A recorded UID that holds no message (or another one) is never trusted."""
    three_message_thread(imap, to="support@acme.example")
    reconcile(settings)

    def move_root(messages: list[dict[str, Any]]) -> None:
        assert messages[0]["message_id"] == "root@client.example"
        messages[0]["location"] = "999"

    _edit_recorded_messages(settings, move_root)
    _reply(imap, "r3@acme.example", "r2@client.example",
           "<root@client.example> <r1@acme.example> <r2@client.example>")  # fmt: skip
    summary = reconcile(settings)
    assert (summary.new, summary.updated, summary.fetched) == (0, 1, 4)
    assert any(r.startswith("SEARCH INBOX OR") for r in reads[-1]), reads[-1]
    assert set(tasks(settings)) == {"root@client.example"}


def test_a_task_recorded_without_locations_is_completed_by_searching(
    settings: Settings, imap: IMAPClient, reads: list[list[str]]
) -> None:
    """A payload from before locations were recorded: a flag on the root still
    rewrites the task with its whole thread, not the root alone."""
    three_message_thread(imap, to="support@acme.example")
    reconcile(settings)

    def forget_locations(messages: list[dict[str, Any]]) -> None:
        for message in messages:
            del message["location"]

    _edit_recorded_messages(settings, forget_locations)
    imap.select_folder("INBOX")
    imap.add_flags(imap.search(["HEADER", "Message-ID", "<root@client.example>"]), [b"\\Flagged"])
    summary = reconcile(settings)
    assert (summary.updated, summary.fetched) == (1, 3)
    assert any(r.startswith("SEARCH INBOX OR") for r in reads[-1]), reads[-1]
    task = tasks(settings)["root@client.example"]
    assert task.status == "done" and task.participants == ["email:carol@client.example", "alice"]
    assert [m["location"] for m in task_payload(settings)["messages"]] == ["1", "2", "3"]


def task_payload(settings: Settings) -> dict[str, Any]:
    ledger = Ledger.open(settings.ledger.url)
    try:
        return ledger.payloads("support", ["root@client.example"])["root@client.example"]
    finally:
        ledger.close()


def tasks_after(settings: Settings) -> dict[str, Any]:
    summary = reconcile(settings)
    assert not summary.failed, summary.error
    return tasks(settings)


def _stored(message_id: str, *, parents: str | None = None, subject: str = "VPN") -> StoredMessage:
    raw = make_message(message_id=message_id, sender="carol@client.example", to=SUPPORT,
                       subject=subject, body="Hi", references=parents)  # fmt: skip
    return StoredMessage(mail=parse_message(raw), folder="INBOX", location="1")


def test_only_a_thread_naming_a_parent_it_lacks_or_a_bare_reply_may_have_older_messages() -> None:
    root, reply = _stored("a@x"), _stored("b@x", parents="<a@x>", subject="Re: VPN")
    assert not may_have_older([root])
    assert not may_have_older([root, reply])  # its parent is here
    assert may_have_older([reply])  # its parent is not
    assert may_have_older([_stored("c@x", subject="Re: VPN")])  # the subject may join it
    assert may_have_older([_stored("d@x", subject="[ticket] VPN")])


def test_recorded_members_need_folder_uid_and_message_id_for_every_message() -> None:
    message = {"message_id": "a@x", "folder": "INBOX", "location": "7", "flags": []}
    assert recorded_members({"messages": [message, {**message, "folder": "Done"}]}) == [
        ("INBOX", 7, "a@x"),
        ("Done", 7, "a@x"),
    ]
    assert (
        recorded_members({"messages": [{k: v for k, v in message.items() if k != "location"}]})
        is None
    )
    assert recorded_members({"messages": [{**message, "location": "cur/17.x:2,S"}]}) is None
    assert recorded_members({"messages": []}) is None and recorded_members({}) is None
    assert recorded_members({"messages": ["a@x"]}) is None
