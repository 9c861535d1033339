"""Each source's field history: Jira changelogs (real DuraSpace export), GitHub issue events
(recorded corpus), Slack messages and email threads (the due date as read at each message)."""

from __future__ import annotations

import gzip
import json
import mailbox
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from corpus import github_issues, github_response_bodies
from corpus_root import CORPUS
from dovecot import make_message

from syncd.clock import SystemClock
from syncd.config import PolicySettings, load_config
from syncd.connectors.github.mapping import map_issue as map_github_issue
from syncd.connectors.github.settings import GitHubSettings
from syncd.connectors.jira.history import _changelog_date, read_export
from syncd.connectors.jira.mapping import map_issue as map_jira_issue
from syncd.connectors.jira.settings import JiraSettings
from syncd.connectors.slack.mapping import Mapper, Workspace
from syncd.connectors.slack.settings import SlackSettings
from syncd.ledger.repository import Ledger
from syncd.model import FieldChange, Task
from syncd.people import PeopleDirectory, Person
from syncd.sync import pull_all

EXPORT = Path(__file__).parents[1] / "forecast" / "fixtures" / "duracloud-2011.jsonl.gz"
JIRA = JiraSettings(kind="jira", url="https://jira.example", token="t", jql="project = X")
GITHUB = GitHubSettings(kind="github", token="t", repos=["PyGithub/PyGithub"])


def changes(task: Task, field: str) -> list[FieldChange]:
    return [c for c in task.field_changes if c.field == field]


# --- Jira ------------------------------------------------------------------------------


def issues_with_due_date_changes() -> list[dict[str, Any]]:
    """The real DuraSpace issues whose changelog moves a due date (the shared data set)."""
    with gzip.open(CORPUS.parent / "data" / "jira-history" / "duraspace.jsonl.gz", "rt") as lines:
        return [json.loads(line) for line in lines if '"duedate"' in line]


def test_jira_due_dates_follow_the_changelog_of_real_issues() -> None:
    """Each due-date item's new value, old Jira's "2009-07-14 00:00:00.0" strings included,
    and the last one is the issue's due date now."""
    checked = 0
    for issue in issues_with_due_date_changes():
        task = map_jira_issue(issue, source="jira", settings=JIRA, people=PeopleDirectory())
        items = [
            (h["id"], n, item)
            for h in issue["changelog"]["histories"]
            for n, item in enumerate(h["items"])
            if item["field"] == "duedate"
        ]
        due = [c for c in changes(task, "due") if c.key != "initial"]
        assert [c.key for c in due] == [f"h{hid}/{n}" for hid, n, _ in items]
        for change, (_, _, item) in zip(due, items, strict=True):
            expected = _changelog_date(item.get("to"), item.get("toString"))
            assert change.value == (expected.isoformat() if expected else None)
        latest = changes(task, "due")[-1].value if changes(task, "due") else None
        assert latest == (task.due.isoformat() if task.due else None)
        checked += len(items)
    assert checked >= 50


def test_jira_fix_versions_carry_their_release_dates_and_roll_back() -> None:
    issues = read_export(EXPORT)
    seen = 0
    for issue in issues:
        task = map_jira_issue(issue, source="jira", settings=JIRA, people=PeopleDirectory())
        versions = changes(task, "fix_versions")
        if not versions:
            continue
        current = sorted(str(v["id"]) for v in issue["fields"].get("fixVersions") or [])
        assert [v["id"] for v in versions[-1].value] == current
        assert task.fix_versions == versions[-1].value
        released = {str(v["id"]): v.get("releaseDate") for v in issue["fields"]["fixVersions"]}
        assert {v["id"]: v["date"] for v in versions[-1].value} == released
        seen += 1
    assert seen >= 10


def test_jira_assignee_changes_resolve_people_and_keep_their_author() -> None:
    issue = next(i for i in read_export(EXPORT) if _has_item(i, "assignee"))
    handle = issue["fields"]["assignee"]["name"]
    people = PeopleDirectory([Person("dana", handles={"jira": handle})])
    task = map_jira_issue(issue, source="jira", settings=JIRA, people=people)
    owners = changes(task, "owners")
    assert owners[-1].value == ["dana"] == task.owners
    assert all(c.at is not None for c in owners)
    assert any(c.by is not None for c in owners if c.key != "initial")


def _has_item(issue: dict[str, Any], field: str) -> bool:
    return bool(issue["fields"].get("assignee")) and any(
        item["field"] == field for h in issue["changelog"]["histories"] for item in h["items"]
    )


# --- GitHub ----------------------------------------------------------------------------


def recorded_events() -> list[dict[str, Any]]:
    """Issue events from PyGithub's recordings (one of each kind GitHub sends)."""
    return [
        body
        for origin, path, body in github_response_bodies()
        if origin.startswith("IssueEvent.setUp") and isinstance(body, dict) and "event" in body
    ]


def plain_issue() -> dict[str, Any]:
    return dict(next(f.payload for f in github_issues() if "pull_request" not in f.payload))


def test_github_events_give_owners_and_milestone_over_time() -> None:
    events = recorded_events()
    kinds = {e["event"] for e in events}
    assert {"assigned", "unassigned", "milestoned", "demilestoned"} <= kinds
    issue = plain_issue()
    issue.update(assignees=[{"login": "jacquev6"}], milestone=None, labels=[])
    task = map_github_issue(issue, source="gh", settings=GITHUB, people=PeopleDirectory(),
                            events=events)  # fmt: skip
    milestone = changes(task, "fix_versions")
    # milestoned then demilestoned 3 s later: on, then off again (today's state).
    assert [(c.at, c.value) for c in milestone] == [
        (datetime(2018, 8, 11, 0, 46, 19, tzinfo=UTC),
         [{"id": "Version 1.25.0", "name": "Version 1.25.0", "date": None}]),
        (datetime(2018, 8, 11, 0, 46, 22, tzinfo=UTC), []),
    ]  # fmt: skip
    owners = changes(task, "owners")
    assigned = next(e for e in events if e["event"] == "assigned")
    unassigned = next(e for e in events if e["event"] == "unassigned")
    assert [c.key for c in owners] == [f"e{assigned['id']}", f"e{unassigned['id']}"]
    # Rolled back from today's assignees: sfdye was unassigned last, so held it before.
    assert owners[0].value == ["github:jacquev6", "github:sfdye"]
    assert owners[1].value == ["github:jacquev6"] == task.owners


def test_github_priority_labels_and_milestone_due_on() -> None:
    issue = plain_issue()
    issue.update(
        labels=[{"name": "P1"}],
        milestone={"title": "v2", "due_on": "2026-03-31T07:00:00Z"},
    )
    at = "2026-03-01T10:00:00Z"
    events = [
        {"id": 1, "event": "labeled", "label": {"name": "P3"}, "created_at": at},
        {"id": 2, "event": "labeled", "label": {"name": "P1"}, "created_at": "2026-03-02T10:00:00Z"},
        {"id": 3, "event": "unlabeled", "label": {"name": "P3"}, "created_at": "2026-03-03T10:00:00Z"},
        {"id": 4, "event": "labeled", "label": {"name": "bug"}, "created_at": at},
    ]  # fmt: skip
    task = map_github_issue(issue, source="gh", settings=GITHUB, people=PeopleDirectory(),
                            events=events)  # fmt: skip
    assert [(c.key, c.value) for c in changes(task, "priority")] == [
        ("e1", "low"),
        ("e2", "high"),
        ("e3", "high"),
    ]
    assert task.fix_versions == [{"id": "v2", "name": "v2", "date": "2026-03-31"}]


# --- Slack and email -------------------------------------------------------------------


def slack_mapper() -> Mapper:
    return Mapper(
        source="chat",
        settings=SlackSettings(kind="slack", token="x", channels=["C1"]),
        policy=PolicySettings(),
        workspace=Workspace(url="https://acme.slack.com/", bot_user_id="UBOT"),
        person=lambda uid: f"slack:{uid}",
        display=lambda uid: uid,
    )


def test_slack_due_date_as_read_at_the_message_and_at_its_edit() -> None:
    sent = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)  # a Wednesday
    ts = f"{sent.timestamp():.6f}"
    text = "<@U1> can you renew the cert by Friday?"
    task = slack_mapper().map_message(
        "C1", {"type": "message", "user": "U2", "text": text, "ts": ts}, []
    )
    assert [(c.value, c.at, c.key) for c in changes(task, "due")] == [
        ("2026-03-06", sent, f"m{ts}")
    ]
    edit = f"{sent.timestamp() + 3600:.6f}"
    edited = {
        "type": "message", "user": "U2", "ts": ts, "text": "<@U1> can you renew the cert?",
        "edited": {"user": "U2", "ts": edit},
    }  # fmt: skip
    task = slack_mapper().map_message("C1", edited, [])
    assert [(c.value, c.at, c.key) for c in changes(task, "due")] == [
        (None, sent + timedelta(hours=1), f"m{ts}/edit {edit}")
    ]


def test_email_due_date_appears_when_the_reply_that_sets_it_arrives(tmp_path: Path) -> None:
    box = mailbox.Maildir(str(tmp_path / "Maildir"), create=True)
    box.add(
        make_message(
            message_id="root@client.example", sender="Carol <carol@client.example>",
            to="Support <support@acme.example>", subject="VPN certificate expired",
            body="The VPN certificate expired.", date="Mon, 02 Mar 2026 09:00:00 +0000",
        )
    )  # fmt: skip
    box.add(
        make_message(
            message_id="r1@client.example", sender="Carol <carol@client.example>",
            to="support@acme.example", subject="Re: VPN certificate expired",
            body="Can you renew it by Friday?", date="Tue, 03 Mar 2026 10:00:00 +0000",
            in_reply_to="root@client.example", references="<root@client.example>",
        )
    )  # fmt: skip
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
        f'[sources.mail]\nkind = "maildir"\npath = "{tmp_path / "Maildir"}"\n'
        'address = "support@acme.example"\n'
    )
    settings = load_config(config)
    ledger = Ledger.open(settings.ledger.url)
    try:
        pull_all(settings, ledger, ["mail"], SystemClock())
        task = ledger.task_by_key("root@client.example")
        assert task is not None and task.due == date(2026, 3, 6)
        due = ledger.field_history([task.id], ["due"])[task.id]
        assert [(c.value, c.changed_at, c.origin) for c in due] == [
            ("2026-03-06", datetime(2026, 3, 3, 10, 0, tzinfo=UTC), "source")
        ]
        rows = len(ledger.field_history([task.id])[task.id])
        pull_all(settings, ledger, ["mail"], SystemClock())
        assert len(ledger.field_history([task.id])[task.id]) == rows
    finally:
        ledger.close()
