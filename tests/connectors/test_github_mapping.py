"""GitHub issue payload -> Task: every mapping rule, then the whole recorded corpus."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from corpus import github_issues
from hypothesis import given, settings
from hypothesis import strategies as st

from syncd.connectors.github.mapping import (
    MappingError,
    acceptance_section,
    is_pull_request,
    map_issue,
    pr_closes,
    wants_blocked_by_listing,
    wants_sub_issues_listing,
)
from syncd.connectors.github.settings import GitHubSettings
from syncd.model import Priority, Status, Task
from syncd.people import PeopleDirectory, Person

SETTINGS = GitHubSettings(kind="github", token="t", repos=["acme/api"], bot_logins=["ci-helper"])


def people() -> PeopleDirectory:
    return PeopleDirectory([Person("ann", handles={"github": "Ann-GH"})])


def user(login: str, kind: str = "User") -> dict[str, Any]:
    return {"login": login, "type": kind}


def issue(**overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "id": 1001,
        "number": 7,
        "title": "Fix login",
        "html_url": "https://github.com/acme/api/issues/7",
        "repository_url": "https://api.github.com/repos/acme/api",
        "state": "open",
        "state_reason": None,
        "body": "",
        "user": user("reporter"),
        "assignees": [],
        "labels": [],
        "milestone": None,
        "created_at": "2024-03-01T10:00:00Z",
        "updated_at": "2024-03-02T10:00:00Z",
        "closed_at": None,
    }
    raw.update(overrides)
    return raw


def labelled(*names: str, **overrides: Any) -> dict[str, Any]:
    return issue(labels=[{"name": name} for name in names], **overrides)


def mapped(raw: dict[str, Any], **kwargs: Any) -> Task:
    return map_issue(
        raw, source="gh", settings=SETTINGS, people=kwargs.pop("people", people()), **kwargs
    )


def test_identity_url_and_raw_payload() -> None:
    raw = issue()
    task = mapped(raw)
    assert (task.source, task.external_id, task.key) == ("gh", "1001", "acme/api#7")
    assert task.url == "https://github.com/acme/api/issues/7"
    assert task.title == "Fix login"
    assert task.raw == raw


def test_repository_comes_from_the_payload_before_the_argument() -> None:
    # A transferred issue's payload names its new repository; trust it over the caller.
    assert mapped(issue(), repo="acme/old").key == "acme/api#7"
    assert mapped(issue(repository_url=None), repo="acme/web").key == "acme/web#7"
    enterprise = issue(repository_url="https://ghe.example/api/v3/repos/team/tool")
    assert mapped(enterprise).key == "team/tool#7"


def test_owners_keep_every_assignee_resolved_and_deduplicated() -> None:
    task = mapped(issue(assignees=[user("ann-gh"), user("bob"), user("Ann-GH")]))
    assert task.owners == ["ann", "github:bob"]
    assert mapped(issue(assignees=None, assignee=user("bob"))).owners == ["github:bob"]
    assert mapped(issue()).owners == []


def test_reporter_is_resolved_and_a_ghost_user_is_none() -> None:
    assert mapped(issue(user=user("Ann-GH"))).reporter == "ann"
    assert mapped(issue(user=None)).reporter is None


@pytest.mark.parametrize(
    ("labels", "priority", "raw_label"),
    [
        (["P0"], Priority.HIGH, "P0"),
        (["bug", "Priority: Low"], Priority.LOW, "Priority: Low"),
        (["p2"], Priority.MEDIUM, "p2"),
        (["p3", "URGENT"], Priority.HIGH, "URGENT"),  # the strongest label wins
        (["bug"], None, None),
    ],
)
def test_priority_from_labels(
    labels: list[str], priority: Priority | None, raw_label: str | None
) -> None:
    task = mapped(labelled(*labels))
    assert (task.priority, task.priority_raw) == (priority, raw_label)
    assert task.labels == labels


def test_labels_may_be_plain_strings() -> None:
    assert mapped(issue(labels=["P1"])).priority is Priority.HIGH


@pytest.mark.parametrize(
    ("state", "reason", "labels", "status"),
    [
        ("open", None, [], Status.OPEN),
        ("open", "reopened", [], Status.OPEN),
        ("open", None, ["In Progress"], Status.IN_PROGRESS),
        ("open", None, ["in progress", "blocked"], Status.BLOCKED),
        ("open", None, ["verified"], Status.OPEN),  # not verified until closed
        ("closed", "completed", [], Status.DONE),
        ("closed", None, [], Status.DONE),
        ("closed", "completed", ["Verified"], Status.VERIFIED),
        ("closed", "not_planned", ["verified"], Status.CANCELLED),
        ("closed", "duplicate", [], Status.CANCELLED),
    ],
)
def test_status_from_state_reason_and_labels(
    state: str, reason: str | None, labels: list[str], status: Status
) -> None:
    assert mapped(labelled(*labels, state=state, state_reason=reason)).status is status


def test_status_raw_says_what_decided_it() -> None:
    assert (
        mapped(issue(state="closed", state_reason="not_planned")).status_raw == "closed:not_planned"
    )
    assert mapped(labelled("Blocked")).status_raw == "Blocked"


def test_verified_label_is_recorded_as_evidence() -> None:
    task = mapped(labelled("Verified", state="closed", state_reason="completed"))
    assert task.verified_by == "label:Verified"
    assert mapped(issue(state="closed")).verified_by is None


def test_configured_status_labels_are_used() -> None:
    settings = SETTINGS.model_copy(update={"status_labels": {"wip": Status.IN_PROGRESS}})
    task = map_issue(labelled("WIP"), source="gh", settings=settings, people=people())
    assert task.status is Status.IN_PROGRESS


def test_due_from_milestone_overridden_by_a_due_line() -> None:
    milestone = {"title": "v1", "due_on": "2024-04-30T07:00:00Z"}
    assert mapped(issue(milestone=milestone)).due == date(2024, 4, 30)
    body = "Some text\n**Due:** 2024-05-02\n"
    assert mapped(issue(milestone=milestone, body=body)).due == date(2024, 5, 2)
    assert mapped(issue(milestone=milestone, body="Due: 2024-13-40")).due == date(2024, 4, 30)
    assert mapped(issue(milestone={"title": "v2", "due_on": None})).due is None


def test_parent_from_sub_issue_fields() -> None:
    url = "https://api.github.com/repos/acme/web/issues/28"
    assert mapped(issue(parent_issue_url=url)).parent == "acme/web#28"
    parent = {"number": 3, "repository_url": "https://api.github.com/repos/acme/core"}
    assert mapped(issue(parent=parent)).parent == "acme/core#3"


def test_children_from_sub_issue_listing_and_task_lists() -> None:
    body = "Plan:\n- [ ] #12\n- [x] other/repo#3 done\n* [ ] https://github.com/acme/web/issues/4\n- #99 not a task"
    listing = [{"number": 12, "repository_url": "https://api.github.com/repos/acme/api"}]
    task = mapped(issue(body=body), sub_issues=listing)
    assert task.children == ["acme/api#12", "other/repo#3", "acme/web#4"]


def test_blocked_by_from_dependency_listing_and_body_phrases() -> None:
    body = (
        "Blocked by #4 and #5.\nThis depends on other/lib#8\n"
        "blocked by https://github.com/acme/web/issues/9"
    )
    listing = [{"number": 2, "repository_url": "https://api.github.com/repos/acme/api"}]
    task = mapped(issue(body=body), blocked_by=listing)
    assert task.blocked_by == [
        "acme/api#2",
        "acme/api#4",
        "acme/api#5",
        "other/lib#8",
        "acme/web#9",
    ]
    assert mapped(issue(body="Unblocked, see #4")).blocked_by == []


def test_summaries_say_when_a_listing_is_worth_fetching() -> None:
    assert wants_blocked_by_listing(issue(issue_dependencies_summary={"total_blocked_by": 1}))
    assert not wants_blocked_by_listing(issue(issue_dependencies_summary={"total_blocked_by": 0}))
    assert wants_sub_issues_listing(issue(sub_issues_summary={"total": 2}))
    assert not wants_sub_issues_listing(issue())


@pytest.mark.parametrize(
    ("body", "criteria"),
    [
        ("Intro\n## Acceptance criteria\n- works\n- fast\n\n## Notes\nlater", "- works\n- fast"),
        ("**Acceptance Criteria:**\nlogin succeeds\n### Next\nx", "login succeeds"),
        ("# Acceptance criterion\n\n", None),
        ("Acceptance criteria are below somewhere", None),
    ],
)
def test_acceptance_criteria_section(body: str, criteria: str | None) -> None:
    assert acceptance_section(body) == criteria
    assert mapped(issue(body=body)).acceptance_criteria == criteria


def test_jira_keys_become_links_but_standards_do_not() -> None:
    task = mapped(issue(title="OPS-42: crash", body="Also DEV-7, UTF-8, SHA-256, ISO-8601, OPS-42"))
    assert task.links == ["OPS-42", "DEV-7"]


def comment(login: str, at: str, body: str = "hi", kind: str = "User") -> dict[str, Any]:
    return {"user": user(login, kind), "created_at": at, "updated_at": at, "body": body}


def test_last_activity_and_participants_count_only_humans() -> None:
    comments = [
        comment("Ann-GH", "2024-03-05T00:00:00Z"),
        comment("dependabot[bot]", "2024-03-09T00:00:00Z"),
        comment("ci-helper", "2024-03-09T00:00:00Z"),
        comment("robot", "2024-03-09T00:00:00Z", kind="Bot"),
        comment("syncd-user", "2024-03-09T00:00:00Z", body="ping <!-- syncd:followup 1 -->"),
    ]
    events = [
        {"event": "labeled", "actor": user("bob"), "created_at": "2024-03-06T00:00:00Z"},
        {"event": "mentioned", "actor": user("carl"), "created_at": "2024-03-08T00:00:00Z"},
    ]
    task = mapped(issue(), comments=comments, events=events)
    assert task.last_activity_at == datetime(2024, 3, 6, tzinfo=UTC)
    assert task.participants == ["ann", "github:bob"]


def test_last_activity_defaults_to_creation_and_is_capped_by_now() -> None:
    assert mapped(issue()).last_activity_at == datetime(2024, 3, 1, 10, tzinfo=UTC)
    now = datetime(2024, 3, 3, tzinfo=UTC)
    future = [comment("bob", "2030-01-01T00:00:00Z")]
    assert mapped(issue(), comments=future, now=now).last_activity_at == now


def test_timestamps() -> None:
    task = mapped(issue(state="closed", closed_at="2024-03-04T05:06:07Z"))
    assert task.created_at == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert task.updated_at == datetime(2024, 3, 2, 10, tzinfo=UTC)
    assert task.closed_at == datetime(2024, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_pull_requests_are_evidence_not_tasks() -> None:
    pr = issue(pull_request={"url": "x"}, title="Fixes #7", body="closes acme/web#3\nResolves: #9")
    assert is_pull_request(pr) and not is_pull_request(issue())
    assert pr_closes(pr) == ["acme/api#7", "acme/web#3", "acme/api#9"]
    with pytest.raises(MappingError, match="pull request"):
        mapped(pr)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"id": None}, "no 'id'"),
        ({"id": "1001"}, "'id' must be an integer"),
        ({"number": True}, "'number' must be an integer"),
        ({"title": None}, "no 'title'"),
        ({"title": 42}, "'title' must be text"),
        ({"labels": "bug"}, "'labels' must be a list"),
        ({"labels": [{"color": "red"}]}, "label has no name"),
        ({"assignees": {"login": "x"}}, "'assignees' must be a list"),
        ({"assignees": [{"id": 3}]}, "assignee has no login"),
        ({"created_at": "yesterday"}, "not a timestamp"),
        ({"milestone": {"due_on": "soon"}}, "not a timestamp"),
        ({"milestone": "v1"}, "'milestone' must be an object"),
        ({"state": "merged"}, "unknown issue state"),
        ({"state": None}, "no 'state'"),
        ({"body": ["x"]}, "'body' must be text"),
        ({"repository_url": None}, "which repository"),
    ],
)
def test_malformed_issues_raise_mapping_error(overrides: dict[str, Any], reason: str) -> None:
    with pytest.raises(MappingError, match=re.escape(reason)):
        mapped(issue(**overrides))


def test_a_non_object_raises_mapping_error() -> None:
    with pytest.raises(MappingError):
        mapped(["not", "an", "issue"])  # type: ignore[arg-type]


def test_malformed_activity_raises_mapping_error() -> None:
    with pytest.raises(MappingError):
        mapped(issue(), comments=[comment("bob", "not a date")])
    with pytest.raises(MappingError):
        mapped(issue(), sub_issues=["#3"])  # type: ignore[list-item]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(sorted(issue())), value=JSON, body=st.text(max_size=60))
def test_any_damaged_field_maps_or_raises_mapping_error(field: str, value: Any, body: str) -> None:
    raw = issue(body=body)
    raw[field] = value
    comments = [{"user": value, "created_at": value, "body": value}]
    try:
        task = mapped(raw, comments=comments, events=[{"actor": value, "created_at": value}])
    except MappingError as error:
        assert str(error)  # a reason a person can read in the quarantine
    else:
        assert isinstance(task.status, Status) and isinstance(task.title, str)


CORPUS_ISSUES = github_issues()
_KEY = re.compile(r"^[\w.-]+/[\w.-]+#\d+$")


def test_the_corpus_holds_enough_issues() -> None:
    # Guards against a broken loader silently testing nothing.
    assert len(CORPUS_ISSUES) > 300


def test_every_corpus_issue_maps_or_raises_mapping_error() -> None:
    mapped_count, reasons = 0, []
    for found in CORPUS_ISSUES:
        try:
            task = mapped(found.payload)
        except MappingError as error:
            reasons.append(str(error))
            continue
        mapped_count += 1
        assert_valid(task, found.origin)
    pull_requests = sum(is_pull_request(found.payload) for found in CORPUS_ISSUES)
    print(
        f"github corpus: {mapped_count} mapped, {len(reasons)} MappingError ({pull_requests} PRs)"
    )
    assert mapped_count >= 100
    assert reasons.count("this is a pull request, not an issue") == pull_requests
    # Listings recorded with stripped items ({"id": 1}), the legacy search (no id) and the
    # trimmed pinned/unpinned webhook examples (no state) cannot become tasks.
    assert set(reasons) == {
        "this is a pull request, not an issue",
        "the issue has no 'title'",
        "the issue has no 'id'",
        "the issue has no 'state'",
    }


def test_every_corpus_pull_request_yields_well_formed_evidence() -> None:
    prs = [found for found in CORPUS_ISSUES if is_pull_request(found.payload)]
    assert len(prs) > 100
    for found in prs:
        assert all(_KEY.match(key) for key in pr_closes(found.payload)), found.origin


def assert_valid(task: Task, origin: str) -> None:
    assert _KEY.match(task.key), origin
    assert task.external_id.isdigit(), origin
    assert isinstance(task.status, Status) and isinstance(task.title, str), origin
    assert task.priority is None or isinstance(task.priority, Priority), origin
    assert all(_KEY.match(ref) for ref in [*task.children, *task.blocked_by]), origin
    assert task.created_at is None or task.created_at.tzinfo is not None, origin
    assert all(isinstance(owner, str) for owner in task.owners), origin
    assert task.content_hash()


def test_corpus_closed_issues_are_closed_tasks_with_a_closing_time() -> None:
    closed = [
        mapped(found.payload)
        for found in CORPUS_ISSUES
        if found.payload.get("state") == "closed"
        and "title" in found.payload
        and not is_pull_request(found.payload)
    ]
    assert len(closed) >= 5
    assert {task.status for task in closed} <= {Status.DONE, Status.CANCELLED}
    assert all(task.closed_at is not None for task in closed)


def test_corpus_sub_issue_listing_gives_children() -> None:
    listings = [
        found.payload
        for found in CORPUS_ISSUES
        if found.origin.startswith("SubIssue.testListSubIssues")
    ]
    task = mapped(issue(), sub_issues=listings)
    assert task.children and all(key.startswith("PyGithub/PyGithub#") for key in task.children)


def test_corpus_wildcard_listing_carries_parents() -> None:
    parents = {
        mapped(found.payload).parent
        for found in CORPUS_ISSUES
        if found.origin.startswith("Repository.testGetIssuesWithTypeWildcard")
    }
    assert {"PyGithub/PyGithub#28", "PyGithub/PyGithub#3335"} <= parents
