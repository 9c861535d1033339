"""The Maildir source through the pull driver: threads, owner, done, deletes, reruns."""

from __future__ import annotations

import mailbox
from pathlib import Path
from typing import Any

import pytest
from dovecot import make_message

from syncd.clock import SystemClock
from syncd.config import Settings, load_config
from syncd.ledger.repository import Ledger
from syncd.sync import SourceSummary, pull_all

SUPPORT = "support@acme.example"


def request(mid: str, **fields: Any) -> bytes:
    values: dict[str, Any] = {
        "message_id": mid,
        "sender": "Carol Client <carol@client.example>",
        "to": f"Support <{SUPPORT}>",
        "subject": "VPN certificate expired",
        "body": "Hi,\n\nThe VPN certificate expired. Can you renew it by Friday? It's urgent.\n\nThanks,\nCarol",
    }
    values.update(fields)
    return make_message(**values)


@pytest.fixture
def maildir(tmp_path: Path) -> mailbox.Maildir:
    box = mailbox.Maildir(str(tmp_path / "Maildir"), create=True)
    box.add_folder("Done")
    return box


@pytest.fixture
def settings(tmp_path: Path, maildir: mailbox.Maildir) -> Settings:
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
        f'[sources.mail]\nkind = "maildir"\npath = "{tmp_path / "Maildir"}"\n'
        f'address = "{SUPPORT}"\ndone_folder = "Done"\ndone_flag = "\\\\Flagged"\n\n'
        '[people.alice]\nemail = "alice@acme.example"\n\n'
        '[people.bob]\nemail = "bob@acme.example"\n'
    )
    return load_config(path)


def reconcile(settings: Settings) -> SourceSummary:
    ledger = Ledger.open(settings.ledger.url)
    try:
        summaries, _ = pull_all(settings, ledger, ["mail"], SystemClock())
    finally:
        ledger.close()
    return summaries["mail"]


def tasks(settings: Settings) -> dict[str, Any]:
    ledger = Ledger.open(settings.ledger.url)
    try:
        return {row.key: row for row in ledger.tasks(sources=["mail"])}
    finally:
        ledger.close()


def test_a_thread_is_one_task_owned_by_the_first_team_member_who_replies(
    settings: Settings, maildir: mailbox.Maildir
) -> None:
    maildir.add(request("root@client.example"))
    maildir.add(
        make_message(
            message_id="r1@acme.example",
            sender="Alice <alice@acme.example>",
            to="carol@client.example",
            subject="Re: VPN certificate expired",
            body="On it.\n\nOn Mon, Carol wrote:\n> can you renew it by Friday?",
            date="Mon, 02 Mar 2026 10:00:00 +0000",
            in_reply_to="root@client.example",
            references="<root@client.example>",
        )
    )
    summary = reconcile(settings)
    assert not summary.failed, summary.error
    assert summary.new == 1
    task = tasks(settings)["root@client.example"]
    assert task.title == "VPN certificate expired"
    assert task.owners == ["alice"] and task.team == SUPPORT
    assert task.reporter == "email:carol@client.example"
    assert task.due.isoformat() == "2026-03-06" and task.priority == "high"
    assert task.status == "in_progress"
    assert task.participants == ["email:carol@client.example", "alice"]


def test_rerun_without_changes_reads_nothing(settings: Settings, maildir: mailbox.Maildir) -> None:
    maildir.add(request("root@client.example"))
    assert reconcile(settings).new == 1
    again = reconcile(settings)
    assert (again.fetched, again.new, again.updated) == (0, 0, 0)


def test_flag_and_move_to_done_folder_mark_done(
    settings: Settings, maildir: mailbox.Maildir
) -> None:
    key = maildir.add(request("a@client.example"))
    maildir.add(request("b@client.example", subject="Printer jammed"))
    reconcile(settings)
    message = maildir.get_message(key)
    message.add_flag("F")
    maildir[key] = message
    summary = reconcile(settings)
    assert summary.updated == 1, summary
    assert tasks(settings)["a@client.example"].status == "done"
    # Moving the other thread into Done: gone from the inbox, present in Done.
    other = next(k for k in maildir.iterkeys() if k != key)
    done = maildir.get_folder("Done")
    done.add(maildir.get_message(other))
    maildir.remove(other)
    reconcile(settings)
    assert tasks(settings)["b@client.example"].status == "done"


def test_deleted_thread_is_gone_and_requester_confirmation_verifies(
    settings: Settings, maildir: mailbox.Maildir
) -> None:
    keep = [maildir.add(request(f"m{n}@client.example", subject=f"Request {n}")) for n in range(4)]
    reconcile(settings)
    maildir.remove(keep[0])
    maildir.add(
        make_message(
            message_id="a1@acme.example",
            sender="bob@acme.example",
            to="carol@client.example",
            subject="Re: Request 1",
            body="Renewed the certificate.",
            date="Mon, 02 Mar 2026 11:00:00 +0000",
            in_reply_to="m1@client.example",
        )
    )
    maildir.add(
        make_message(
            message_id="c1@client.example",
            sender="carol@client.example",
            to=SUPPORT,
            subject="Re: Request 1",
            body="Works now, thanks!\n\n> Renewed the certificate.",
            date="Mon, 02 Mar 2026 12:00:00 +0000",
            references="<m1@client.example> <a1@acme.example>",
        )
    )
    summary = reconcile(settings)
    assert summary.gone == 1
    live = tasks(settings)
    assert "m0@client.example" not in live
    verified = live["m1@client.example"]
    assert verified.status == "verified" and verified.owners == ["bob"]
    assert verified.verified_by and "works now" in verified.verified_by


def test_subject_fallback_joins_a_reply_without_references(
    settings: Settings, maildir: mailbox.Maildir
) -> None:
    maildir.add(request("s@client.example", subject="Disk full on build-01"))
    maildir.add(
        make_message(
            message_id="s2@client.example",
            sender="carol@client.example",
            to=SUPPORT,
            subject="RE: AW: Disk full on build-01",
            body="Any news? See OPS-42 and https://github.com/acme/infra/issues/7",
            date="Tue, 03 Mar 2026 09:00:00 +0000",
        )
    )
    reconcile(settings)
    live = tasks(settings)
    assert list(live) == ["s@client.example"]
    assert live["s@client.example"].links == ["OPS-42", "acme/infra#7"]


def test_missing_maildir_is_a_plain_configuration_error(tmp_path: Path, settings: Settings) -> None:
    source = settings.sources["mail"].model_copy(update={"path": tmp_path / "nowhere"})
    broken = settings.model_copy(update={"sources": {"mail": source}})
    summary = reconcile(broken)
    assert summary.failed and summary.error and "no Maildir at" in summary.error
