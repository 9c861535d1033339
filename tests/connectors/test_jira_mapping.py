"""Jira issue payload -> Task: every mapping rule, rich text, then the whole recorded corpus."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from corpus import jira_issues
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.connectors.jira.mapping import MappingError, adf_to_text, map_issue, wiki_to_text
from syncd.connectors.jira.settings import JiraSettings
from syncd.model import Priority, Status, StatusChange, Task
from syncd.people import PeopleDirectory, Person

SETTINGS = JiraSettings(kind="jira", url="https://fallback.example", token="t", jql="project = OPS")


def people() -> PeopleDirectory:
    return PeopleDirectory([Person("ann", handles={"jira": "acc-ann"})])


def issue(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "summary": "Rotate certificates",
        "status": {"name": "To Do", "statusCategory": {"key": "new"}},
        "created": "2024-01-31T10:20:30.000+0000",
        "updated": "2024-02-01T08:00:00.000+0000",
    }
    base.update(fields)
    return {
        "id": "10042",
        "key": "OPS-42",
        "self": "https://acme.atlassian.net/rest/api/3/issue/10042",
        "fields": base,
    }


def mapped(raw: dict[str, Any], settings: JiraSettings = SETTINGS, **kwargs: Any) -> Task:
    return map_issue(raw, source="ops", settings=settings, people=people(), **kwargs)


def status(name: str, category: str | None = None) -> dict[str, Any]:
    return {"name": name, **({"statusCategory": {"key": category}} if category else {})}


def doc(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "doc", "version": 1, "content": list(content)}


def paragraph(*content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "paragraph", "content": list(content)}


def text(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "text", "text": value, **extra}


def test_identity_url_and_raw_payload() -> None:
    raw = issue()
    task = mapped(raw)
    assert (task.source, task.external_id, task.key) == ("ops", "10042", "OPS-42")
    assert task.url == "https://acme.atlassian.net/browse/OPS-42"
    assert task.title == "Rotate certificates"
    assert task.raw == raw


def test_url_keeps_a_server_context_path_and_falls_back_to_the_config() -> None:
    server = issue()
    server["self"] = "http://localhost:2990/jira/rest/api/2/issue/10042"
    assert mapped(server).url == "http://localhost:2990/jira/browse/OPS-42"
    del server["self"]
    assert mapped(server).url == "https://fallback.example/browse/OPS-42"


@pytest.mark.parametrize(
    ("user", "owner"),
    [
        ({"accountId": "acc-ann", "displayName": "Ann"}, "ann"),
        ({"accountId": "acc-bob"}, "jira:acc-bob"),
        ({"name": "admin", "key": "JIRAUSER1"}, "jira:admin"),  # Server
        ({"accountId": "", "key": "JIRAUSER1"}, "jira:JIRAUSER1"),
    ],
)
def test_assignee_by_account_id_with_server_fallbacks(user: dict[str, Any], owner: str) -> None:
    assert mapped(issue(assignee=user)).owners == [owner]


def test_reporter_and_unassigned() -> None:
    task = mapped(issue(assignee=None, reporter={"accountId": "acc-ann"}))
    assert (task.owners, task.reporter) == ([], "ann")


def test_team_without_assignee_is_ownerless_with_a_team() -> None:
    settings = SETTINGS.model_copy(update={"team_field": "Team"})
    raw = issue(customfield_10001={"id": "t-1", "name": "Platform"}, assignee=None)
    task = mapped(raw, settings, field_ids={"Team": "customfield_10001"})
    assert (task.owners, task.team) == ([], "Platform")
    by_id = SETTINGS.model_copy(update={"team_field": "customfield_10001"})
    assert mapped(issue(customfield_10001=[{"value": "SRE"}]), by_id).team == "SRE"
    assert mapped(issue(customfield_10001="Infra"), by_id).team == "Infra"


@pytest.mark.parametrize(
    ("name", "priority"),
    [("Highest", Priority.HIGH), ("high", Priority.HIGH), ("Medium", Priority.MEDIUM),
     ("Minor", Priority.LOW), ("Lowest", Priority.LOW), ("Whenever", None)],
)  # fmt: skip
def test_priority_through_the_map_keeping_the_raw_name(
    name: str, priority: Priority | None
) -> None:
    task = mapped(issue(priority={"name": name, "id": "3"}))
    assert (task.priority, task.priority_raw) == (priority, name)


def test_configured_priority_map() -> None:
    settings = SETTINGS.model_copy(update={"priority_map": {"Sev1": Priority.HIGH}})
    assert mapped(issue(priority={"name": "SEV1"}), settings).priority is Priority.HIGH
    assert mapped(issue()).priority is None


@pytest.mark.parametrize(
    ("status_field", "resolution", "expected"),
    [
        (status("To Do", "new"), None, Status.OPEN),
        (status("In Progress", "indeterminate"), None, Status.IN_PROGRESS),
        (status("Done", "done"), "Done", Status.DONE),
        (status("On hold", "indeterminate"), None, Status.BLOCKED),
        (status("QA Passed", "done"), "Done", Status.VERIFIED),
        (status("Closed", "done"), "Won't Do", Status.CANCELLED),
        (status("Done", "done"), "Duplicate", Status.CANCELLED),
        (status("Open"), None, Status.OPEN),  # old Server payload: no category
        (status("Resolved"), "Fixed", Status.DONE),
        (status("Triage"), "Fixed", Status.DONE),
        (status("Triage"), None, Status.OPEN),
        (None, None, Status.OPEN),
    ],
)
def test_status_by_category_names_and_resolution(
    status_field: dict[str, Any] | None, resolution: str | None, expected: Status
) -> None:
    raw = issue(status=status_field, resolution={"name": resolution} if resolution else None)
    task = mapped(raw)
    assert task.status is expected
    assert task.status_raw == (status_field or {}).get("name")


def test_verified_field_is_evidence_and_makes_done_verified() -> None:
    settings = SETTINGS.model_copy(update={"verified_field": "QA"})
    ids = {"QA": "customfield_1"}
    done = {"status": status("Done", "done")}
    person = mapped(issue(customfield_1={"accountId": "acc-ann"}, **done), settings, field_ids=ids)
    assert (person.verified_by, person.status) == ("ann", Status.VERIFIED)
    flag = mapped(issue(customfield_1=[{"value": "Yes"}], **done), settings, field_ids=ids)
    assert (flag.verified_by, flag.status) == ("field:QA", Status.VERIFIED)
    unset = mapped(issue(customfield_1=None, **done), settings, field_ids=ids)
    assert (unset.verified_by, unset.status) == (None, Status.DONE)
    by_status = mapped(issue(status=status("Verified", "done")))
    assert by_status.verified_by == "status:Verified"


def test_due_date_and_timestamps() -> None:
    task = mapped(issue(duedate="2024-03-15", resolutiondate="2024-02-02T09:00:00.000+0100"))
    assert task.due == date(2024, 3, 15)
    assert task.created_at == datetime(2024, 1, 31, 10, 20, 30, tzinfo=UTC)
    assert task.updated_at == datetime(2024, 2, 1, 8, tzinfo=UTC)
    assert task.closed_at == datetime(2024, 2, 2, 9, tzinfo=timezone(timedelta(hours=1)))


def test_labels_parent_and_subtasks() -> None:
    raw = issue(
        labels=["infra", "q1"],
        parent={"id": "1", "key": "OPS-1", "fields": {"summary": "Epic"}},
        subtasks=[{"id": "2", "key": "OPS-43"}, {"id": "3", "key": "OPS-44"}],
    )
    task = mapped(raw)
    assert (task.labels, task.parent, task.children) == (
        ["infra", "q1"],
        "OPS-1",
        ["OPS-43", "OPS-44"],
    )


def link(
    type_name: str, direction: str, key: str, inward: str = "", outward: str = ""
) -> dict[str, Any]:
    kind = {"name": type_name, "inward": inward, "outward": outward}
    return {"id": key, "type": kind, direction: {"id": "9", "key": key}}


def test_issue_links() -> None:
    links = [
        link("Blocks", "inwardIssue", "OPS-1", "is blocked by", "blocks"),
        link("Blocks", "outwardIssue", "OPS-2", "is blocked by", "blocks"),  # we block it
        link("Dependent", "inwardIssue", "DEV-3", "depends on", "is depended by"),
        link("Relates", "outwardIssue", "DEV-4"),
        link("Duplicate", "inwardIssue", "DEV-5"),
        link("Cloners", "outwardIssue", "DEV-6"),
    ]
    task = mapped(issue(issuelinks=links))
    assert task.blocked_by == ["OPS-1", "DEV-3"]
    assert task.links == ["DEV-4", "DEV-5", "DEV-6"]


@pytest.mark.parametrize(
    ("fields", "estimate", "logged"),
    [
        ({"timeoriginalestimate": 7200, "timeestimate": 3600, "timespent": 5400}, 2.0, 1.5),
        ({"timeestimate": 3600, "aggregatetimespent": 1800}, 1.0, 0.5),
        ({"timetracking": {"originalEstimateSeconds": 36000, "timeSpentSeconds": 900}}, 10.0, 0.25),
        ({"timetracking": {}}, None, None),
        ({}, None, None),
    ],
)
def test_hours_from_seconds(
    fields: dict[str, Any], estimate: float | None, logged: float | None
) -> None:
    task = mapped(issue(**fields))
    assert (task.estimate_hours, task.logged_hours) == (estimate, logged)


def history(at: str, author: str, *items: dict[str, Any], id_: str = "") -> dict[str, Any]:
    return {"id": id_ or at, "created": at, "author": {"accountId": author}, "items": list(items)}


def status_item(before: str | None, after: str) -> dict[str, Any]:
    return {"field": "status", "fieldtype": "jira", "fromString": before, "toString": after}


def test_changelog_status_items_become_status_history() -> None:
    raw = issue()
    raw["changelog"] = {
        "histories": [
            history("2024-02-03T00:00:00.000+0000", "acc-bob", status_item("In Progress", "Done")),
            history("2024-02-01T00:00:00.000+0000", "acc-ann", status_item("To Do", "In Progress"),
                    {"field": "labels", "fromString": "", "toString": "x"}),
        ]
    }  # fmt: skip
    fetched = [history("2024-02-05T00:00:00.000+0000", "acc-ann", status_item("Done", "To Do"))]
    task = mapped(raw, changelog=fetched)
    assert task.status_changes == [
        # Changelog items carry no category: the stock workflow's names give the kind.
        StatusChange(
            datetime(2024, 2, 1, tzinfo=UTC), "To Do", "In Progress", "ann", Status.IN_PROGRESS
        ),
        StatusChange(
            datetime(2024, 2, 3, tzinfo=UTC), "In Progress", "Done", "jira:acc-bob", Status.DONE
        ),
        StatusChange(datetime(2024, 2, 5, tzinfo=UTC), "Done", "To Do", "ann", Status.OPEN),
    ]


def comment(at: str, author: dict[str, Any], body: Any = "ok", **extra: Any) -> dict[str, Any]:
    return {"id": at, "author": author, "body": body, "created": at, "updated": at, **extra}


def test_last_activity_and_participants_ignore_syncd_and_apps() -> None:
    comments = [
        comment("2024-02-02T00:00:00.000+0000", {"accountId": "acc-ann"}),
        comment("2024-02-09T00:00:00.000+0000", {"accountId": "bot"}, "[syncd] please update"),
        comment("2024-02-09T00:00:00.000+0000", {"accountId": "bot2"}, "x",
                properties=[{"key": "syncd.followup", "value": {"rule": "stale"}}]),
        comment("2024-02-09T00:00:00.000+0000", {"accountId": "auto", "accountType": "app"}),
    ]  # fmt: skip
    raw = issue(comment={"comments": comments, "total": 4})
    raw["changelog"] = {"histories": [history("2024-02-04T00:00:00.000+0000", "acc-bob")]}
    task = mapped(raw)
    assert task.last_activity_at == datetime(2024, 2, 4, tzinfo=UTC)
    assert task.participants == ["ann", "jira:acc-bob"]


def test_an_edited_comment_counts_when_it_was_edited() -> None:
    edited = comment("2024-02-02T00:00:00.000+0000", {"accountId": "acc-ann"})
    edited["updated"] = "2024-02-06T00:00:00.000+0000"
    edited["updateAuthor"] = {"accountId": "acc-cy"}
    task = mapped(issue(comment=[edited]))  # the agile API lists comments directly
    assert task.last_activity_at == datetime(2024, 2, 6, tzinfo=UTC)
    assert task.participants == ["ann", "jira:acc-cy"]


def test_last_activity_is_capped_by_now() -> None:
    now = datetime(2024, 2, 1, tzinfo=UTC)
    future = [comment("2030-01-01T00:00:00.000+0000", {"accountId": "acc-ann"})]
    assert mapped(issue(), comments=future, now=now).last_activity_at == now
    assert mapped(issue()).last_activity_at == datetime(2024, 1, 31, 10, 20, 30, tzinfo=UTC)


def test_description_in_wiki_markup_and_adf() -> None:
    assert mapped(issue(description="h2. Steps\n* *run* it")).description == "Steps\n- run it"
    adf = doc(paragraph(text("Main order flow broken")))
    assert mapped(issue(description=adf)).description == "Main order flow broken"
    assert mapped(issue(description=None)).description == ""


def test_acceptance_criteria_from_a_field_named_or_by_id() -> None:
    by_name = SETTINGS.model_copy(update={"acceptance_field": "Acceptance Criteria"})
    ids = {"Acceptance Criteria": "customfield_7"}
    raw = issue(customfield_7=doc({"type": "bulletList", "content": [
        {"type": "listItem", "content": [paragraph(text("login works"))]}]}))  # fmt: skip
    assert mapped(raw, by_name, field_ids=ids).acceptance_criteria == "- login works"
    by_id = SETTINGS.model_copy(update={"acceptance_field": "customfield_7"})
    assert (
        mapped(issue(customfield_7="# one\n# two"), by_id).acceptance_criteria == "1. one\n1. two"
    )
    assert mapped(issue(customfield_7=""), by_id).acceptance_criteria is None
    assert mapped(issue(customfield_7="x")).acceptance_criteria is None  # not configured


def test_adf_flattens_headings_lists_code_mentions_links_and_tables() -> None:
    document = doc(
        {"type": "heading", "attrs": {"level": 2}, "content": [text("Context")]},
        paragraph(
            text("Ask "),
            {"type": "mention", "attrs": {"id": "acc-1", "text": "@Ann"}},
            text(" about "),
            text("the runbook", marks=[{"type": "link", "attrs": {"href": "https://wiki/x"}}]),
            {"type": "hardBreak"},
            {"type": "inlineCard", "attrs": {"url": "https://acme/browse/OPS-1"}},
        ),
        {"type": "orderedList", "content": [
            {"type": "listItem", "content": [paragraph(text("first")),
                {"type": "bulletList", "content": [
                    {"type": "listItem", "content": [paragraph(text("nested"))]}]}]},
            {"type": "listItem", "content": [paragraph(text("second"))]},
        ]},
        {"type": "codeBlock", "attrs": {"language": "sh"}, "content": [text("make\nmake test")]},
        {"type": "rule"},
        {"type": "table", "content": [
            {"type": "tableRow", "content": [
                {"type": "tableHeader", "content": [paragraph(text("Env"))]},
                {"type": "tableHeader", "content": [paragraph(text("State"))]}]},
            {"type": "tableRow", "content": [
                {"type": "tableCell", "content": [paragraph(text("prod"))]},
                {"type": "tableCell", "content": [paragraph({"type": "status", "attrs": {"text": "DOWN"}})]}]},
        ]},
        {"type": "mediaSingle", "content": [{"type": "media", "attrs": {"id": "x"}}]},
        "garbage",
        {"type": "unknownBlock", "content": [paragraph(text("still shown"))]},
    )  # fmt: skip
    assert adf_to_text(document) == (
        "Context\n"
        "Ask @Ann about the runbook (https://wiki/x)\n"
        "https://acme/browse/OPS-1\n"
        "1. first\n"
        "  - nested\n"
        "2. second\n"
        "make\nmake test\n"
        "Env | State\n"
        "prod | DOWN\n"
        "still shown"
    )


@pytest.mark.parametrize(
    ("markup", "plain"),
    [
        ("h1. Title\nbody", "Title\nbody"),
        ("*bold* and _italic_ keep snake_case_names", "bold and italic keep snake_case_names"),
        ("* one\n** two\n# three", "- one\n  - two\n1. three"),
        ("{code:java}\nint x = 1;\n{code}", "int x = 1;"),
        ("{noformat}raw *text*{noformat}", "raw text"),
        ("ping [~jdoe] and [~accountid:5b10a]", "ping @jdoe and @5b10a"),
        ("see [the docs|https://d.example] or [https://e.example]", "see the docs (https://d.example) or https://e.example"),
        ("||Env||State||\n|prod|down|", "Env | State\nprod | down"),
        ("{color:red}alert{color} !screen.png|thumbnail! {{mono}}", "alert  mono"),
        ("a\\\\b\n----\nc", "a\nb\n\nc"),
        ("bq. quoted", "quoted"),
    ],
)  # fmt: skip
def test_wiki_markup_to_text(markup: str, plain: str) -> None:
    assert wiki_to_text(markup) == plain


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ({"key": "OPS-1", "fields": {"summary": "x"}}, "no 'id'"),
        ({"id": "abc", "key": "OPS-1", "fields": {"summary": "x"}}, "'id' must be a number"),
        ({"id": "1", "fields": {"summary": "x"}}, "no 'key'"),
        ({"id": "1", "key": "not a key", "fields": {"summary": "x"}}, "is not a Jira issue key"),
        ({"id": "1", "key": "OPS-1"}, "no fields"),
        ({"id": "1", "key": "OPS-1", "fields": {}}, "no 'summary'"),
        ({"id": 1, "key": "OPS-1", "fields": {"summary": 42}}, "'summary' must be text"),
    ],
)
def test_malformed_identity_raises_mapping_error(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(MappingError, match=re.escape(reason)):
        mapped(raw)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"labels": "infra"}, "'labels' must be a list of text"),
        ({"labels": [1, 2]}, "'labels' must be a list of text"),
        ({"created": "last tuesday"}, "'created' is not a timestamp"),
        ({"updated": 1706696430}, "'updated' must be text"),
        ({"duedate": "2024-02-30"}, "'duedate' is not a date"),
        ({"assignee": "ann"}, "assignee must be an object"),
        ({"assignee": {"displayName": "Ann"}}, "assignee has no accountId"),
        ({"priority": "High"}, "priority has no name"),
        ({"status": {"id": "1"}}, "status has no name"),
        ({"timespent": "1h"}, "'timespent' must be a number of seconds"),
        ({"timeoriginalestimate": -5}, "must be a number of seconds"),
        ({"issuelinks": [{"type": {"name": "Blocks"}}]}, "points at no issue"),
        ({"issuelinks": [{"inwardIssue": {"key": "A-1"}}]}, "link has no type"),
        ({"issuelinks": {"x": 1}}, "'issuelinks' must be a list"),
        ({"subtasks": [{"id": "2"}]}, "subtask issue has no key"),
        ({"parent": "OPS-1"}, "parent issue has no key"),
        ({"description": ["a"]}, "description is neither text nor a document"),
        ({"comment": {"comments": "none"}}, "'comment' must hold a list"),
        ({"comment": [comment("soon", {"accountId": "a"})]}, "'created' is not a timestamp"),
    ],
)
def test_malformed_fields_raise_mapping_error(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(MappingError, match=re.escape(reason)):
        mapped(issue(**fields))


def test_a_non_object_raises_mapping_error() -> None:
    with pytest.raises(MappingError):
        mapped("OPS-1")  # type: ignore[arg-type]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)

FIELDS = [*sorted(issue()["fields"]), "assignee", "reporter", "priority", "resolution", "duedate",
          "labels", "parent", "subtasks", "issuelinks", "timespent", "timetracking", "comment",
          "description", "customfield_1"]  # fmt: skip
ALL_CUSTOM = SETTINGS.model_copy(
    update={"acceptance_field": "customfield_1", "team_field": "customfield_1",
            "verified_field": "customfield_1"}
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(FIELDS), value=JSON, markup=st.text(max_size=60))
def test_any_damaged_field_maps_or_raises_mapping_error(
    field: str, value: Any, markup: str
) -> None:
    raw = issue(description=markup)
    raw["fields"][field] = value
    raw["changelog"] = {"histories": [{"created": value, "author": value, "items": value}]}
    try:
        task = mapped(raw, ALL_CUSTOM)
    except MappingError as error:
        assert str(error)  # a reason a person can read in the quarantine
    else:
        assert isinstance(task.status, Status) and isinstance(task.title, str)


@settings(max_examples=200, deadline=None)
@given(document=JSON)
def test_adf_to_text_takes_any_json(document: Any) -> None:
    assert isinstance(
        adf_to_text(document if isinstance(document, dict) else {"content": [document]}), str
    )


CORPUS_ISSUES = jira_issues()
_KEY = re.compile(r"^[A-Z][A-Z0-9_]*-\d+$")


def test_every_corpus_issue_maps_or_raises_mapping_error() -> None:
    mapped_tasks: list[Task] = []
    reasons: list[str] = []
    for found in CORPUS_ISSUES:
        try:
            task = mapped(found.payload)
        except MappingError as error:
            reasons.append(str(error))
            continue
        mapped_tasks.append(task)
        assert _KEY.match(task.key), found.origin
        assert task.external_id.isdigit(), found.origin
        assert isinstance(task.status, Status), found.origin
        assert task.priority is None or isinstance(task.priority, Priority), found.origin
        assert task.url and task.url.endswith(f"/browse/{task.key}"), found.origin
        assert all(_KEY.match(ref) for ref in [*task.children, *task.blocked_by, *task.links])
        assert task.content_hash()
    print(f"jira corpus: {len(mapped_tasks)} mapped, {len(reasons)} MappingError")
    assert len(CORPUS_ISSUES) >= 40
    assert len(mapped_tasks) >= 25
    # Id-only listings, create responses and examples without a summary cannot be tasks.
    assert all(
        reason.startswith(("the issue has no fields", "the issue has no 'summary'", "'id' must be"))
        for reason in reasons
    ), reasons


def test_corpus_server_issue_maps_its_fields() -> None:
    task = next(
        mapped(found.payload)
        for found in CORPUS_ISSUES
        if found.origin == "jira/jira-ruby/issue/10002.json"
    )
    assert (task.key, task.external_id, task.title) == ("SAMPLEPROJECT-1", "10002", "Sample Issue")
    assert task.url == "http://localhost:2990/jira/browse/SAMPLEPROJECT-1"
    assert (task.owners, task.reporter) == (["jira:admin"], "jira:admin")
    assert (task.status, task.status_raw) == (Status.OPEN, "Open")
    assert (task.priority, task.priority_raw) == (Priority.MEDIUM, "Major")
    assert task.due == date(2011, 12, 14)
