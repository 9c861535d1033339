"""Simulator objects against recorded responses and official examples in the corpus.

Each comparison checks field names, nesting and JSON value types recursively. The
allow-lists are short and say why a field may differ.
"""

from __future__ import annotations

from typing import Any

import httpx
from sandbox_corpus import example, recording, slack_example
from sandbox_helpers import gh_get
from sandbox_shape import assert_same_shape, shape_differences

from syncd.sandbox import Sandbox

# Fields the simulator does not serve because syncd and its clients never read them.
GH_ISSUE_UNSERVED = {"pinned_comment", "type"}


def _recorded(name: str, index: int = 0) -> Any:
    return recording(name)[index].json()


def test_shape_helper_catches_differences() -> None:
    assert shape_differences({"a": 1}, {"a": "x"}) == [
        "$.a: simulator has number, recording has string"]
    assert shape_differences({"a": 1}, {"a": 1, "b": 2}) == ["$.b: missing from the simulator"]
    assert shape_differences({"a": [{"b": 1}]}, {"a": [{"b": True}]}) == [
        "$.a[].b: simulator has number, recording has boolean"]
    assert not shape_differences({"a": None}, {"a": {"x": 1}})


def test_github_issue(sandbox: Sandbox) -> None:
    sim = gh_get(sandbox, "/repos/example-org/api/issues/1").json()
    # 2026 recording, with issue_dependencies_summary.
    assert_same_shape(sim, _recorded("IssueDependencies.setUp"), missing_ok=GH_ISSUE_UNSERVED)
    # 2025 recording: issue_dependencies_summary came later.
    assert_same_shape(sim, _recorded("SubIssue.setUp"), missing_ok=GH_ISSUE_UNSERVED,
                      extra_ok={"issue_dependencies_summary"})


def test_github_issue_with_milestone_and_labels(sandbox: Sandbox) -> None:
    sim = gh_get(sandbox, "/repos/example-org/api/issues/1").json()
    recorded = _recorded("Issue.setUp", 1)
    assert recorded["milestone"] and recorded["labels"]
    assert_same_shape(sim, recorded, missing_ok=GH_ISSUE_UNSERVED,
                      extra_ok={"issue_dependencies_summary"})


def test_github_pull_request_in_listing(sandbox: Sandbox) -> None:
    listing = gh_get(sandbox, "/repos/example-org/api/issues", params={"state": "all"}).json()
    pr = next(i for i in listing if "pull_request" in i)
    recorded = _recorded("Issue572.testIssueAsPullRequest")
    # 2017 recording: fields GitHub added since then are allowed as extras.
    newer = {"node_id", "user_view_type", "active_lock_reason", "sub_issues_summary",
             "issue_dependencies_summary", "reactions", "timeline_url",
             "performed_via_github_app", "state_reason", "draft", "merged_at"}
    assert_same_shape(pr, recorded, extra_ok=newer)
    assert set(pr["pull_request"]) >= set(recorded["pull_request"])


def test_github_comment(sandbox: Sandbox) -> None:
    sim = gh_get(sandbox, "/repos/example-org/api/issues/1/comments").json()[0]
    assert_same_shape(sim, _recorded("IssueComment.setUp", 2))


def test_github_event(sandbox: Sandbox) -> None:
    sim = gh_get(sandbox, "/repos/example-org/api/issues/1/events").json()[0]
    recorded = next(e.json() for e in recording("IssueEvent.setUp")[1:]
                    if e.json()["event"] == "assigned")
    # The single-event endpoint embeds the issue; the per-issue listing does not.
    assert_same_shape(sim, recorded, missing_ok={"issue"})


def test_github_rate_limit(sandbox: Sandbox) -> None:
    sim = gh_get(sandbox, "/rate_limit").json()
    recorded = _recorded("RateLimiting.testGetRateLimit")
    resources = set(recorded["resources"]) - {"core", "search", "graphql"}
    assert_same_shape(sim, recorded, missing_ok=resources)


def _jira(sandbox: Sandbox, path: str, **params: Any) -> Any:
    response = httpx.get(sandbox.urls["jira"] + path, params=params,
                         auth=("a@b.c", "sandbox-jira-token"))
    assert response.status_code == 200, response.text
    return response.json()


# Server-only or unused fields of recorded Jira issues.
JIRA_UNSERVED = {"attachment", "components", "environment", "fixVersions", "versions", "votes",
                 "workratio", "progress", "aggregateprogress", "name", "key", "lastViewed",
                 "epic", "timeZone", "accountType"}


def test_jira_issue_v2(sandbox: Sandbox) -> None:
    sim = _jira(sandbox, "/rest/api/2/issue/OPS-1")
    recorded = example("jira/jira-ruby/issue/10002.json")
    sim_fields = {k: v for k, v in sim["fields"].items() if k in recorded["fields"]}
    assert_same_shape({**sim, "fields": sim_fields}, recorded,
                      missing_ok=JIRA_UNSERVED | {"accountId", "emailAddress"},
                      # Cloud additions; the other avatar sizes and comment.self exist on
                      # Cloud; the recording's timetracking is empty (no estimates).
                      extra_ok={"accountId", "timeZone", "accountType", "statusCategory",
                                "avatarId", "hierarchyLevel", "projectTypeKey", "simplified",
                                "jsdPublic", "emailAddress", "24x24", "32x32",
                                "$.fields.comment.self", "originalEstimate",
                                "originalEstimateSeconds", "remainingEstimate",
                                "remainingEstimateSeconds", "timeSpent", "timeSpentSeconds"})


def test_jira_enhanced_search_v3(sandbox: Sandbox) -> None:
    sim = _jira(sandbox, "/rest/api/3/search/jql", jql="project = OPS", maxResults=1,
                fields="summary")
    recorded = example("jira/atlassian-openapi-v3/GET_search_jql.200.json")
    assert set(recorded) <= set(sim) | {"nextPageToken"}
    assert isinstance(sim["nextPageToken"], str) and sim["isLast"] is False
    assert set(sim["issues"][0]) == {"expand", "id", "self", "key", "fields"}
    ids_only = _jira(sandbox, "/rest/api/3/search/jql", jql="project = OPS")
    assert "fields" not in ids_only["issues"][0]


def test_jira_classic_search_shape(sandbox: Sandbox) -> None:
    sandbox.world.jira_deployment = "Server"
    sim = _jira(sandbox, "/rest/api/2/search", jql="project = OPS", maxResults=2)
    recorded = example("jira/jira-ruby/issue.json")
    assert set(recorded) - {"isLast"} == set(sim)
    assert (sim["startAt"], sim["maxResults"], sim["total"]) == (0, 2, 4)


def test_jira_comments_v3_adf(sandbox: Sandbox) -> None:
    sim = _jira(sandbox, "/rest/api/3/issue/OPS-1/comment")
    recorded = example("jira/atlassian-openapi-v3/GET_issue_issueIdOrKey_comment.200.json")
    assert_same_shape(sim, recorded, missing_ok={"visibility"},
                      extra_ok={"avatarUrls", "timeZone", "accountType", "jsdPublic",
                                "emailAddress"})
    assert sim["comments"][0]["body"]["type"] == "doc"


def _slack(sandbox: Sandbox, method: str, **params: Any) -> Any:
    response = httpx.post(sandbox.urls["slack"] + method, data=params,
                          headers={"Authorization": "Bearer xoxb-sandbox"})
    return response.json()


def test_slack_history_and_replies(sandbox: Sandbox) -> None:
    history = _slack(sandbox, "conversations.history", channel="C0123ABCD", limit=2)
    # team, thread and reaction fields are on real messages but not in the doc example.
    message_extras = {"team", "thread_ts", "reply_count", "reply_users_count", "latest_reply",
                      "reply_users", "is_locked", "subscribed", "reactions",
                      "channel_actions_ts", "channel_actions_count"}
    assert_same_shape(history, slack_example("conversations.history"), extra_ok=message_extras)
    parent = _slack(sandbox, "conversations.history", channel="C0123ABCD")["messages"][-1]
    replies = _slack(sandbox, "conversations.replies", channel="C0123ABCD", ts=parent["ts"])
    recorded = slack_example("conversations.replies")
    # Parent and reply differ in shape: compare each with its recorded counterpart.
    for sim_message, rec_message in zip(replies["messages"][:2], recorded["messages"][:2],
                                        strict=True):
        assert_same_shape(sim_message, rec_message, missing_ok={"last_read", "unread_count"},
                          extra_ok=message_extras)
    assert_same_shape({**replies, "messages": []}, {**recorded, "messages": []})


def test_slack_users_list(sandbox: Sandbox) -> None:
    users = _slack(sandbox, "users.list", limit=2)
    assert users["response_metadata"]["next_cursor"]
    # The example's first member omits profile fields its second member has.
    assert_same_shape(users, slack_example("users.list"),
                      extra_ok={"first_name", "last_name", "title", "phone", "skype"})


def test_slack_post_message_with_metadata(sandbox: Sandbox) -> None:
    posted = _slack(sandbox, "chat.postMessage", channel="C0123ABCD", text="hi",
                    metadata='{"event_type": "syncd_followup", "event_payload": {"task": "x"}}')
    assert_same_shape(posted, slack_example("chat.postMessage"),
                      missing_ok={"username", "attachments", "subtype"},
                      extra_ok={"user", "app_id", "team", "metadata"})
    plain = _slack(sandbox, "conversations.history", channel="C0123ABCD", limit=1)
    assert "metadata" not in plain["messages"][0]
    full = _slack(sandbox, "conversations.history", channel="C0123ABCD", limit=1,
                  include_all_metadata="true")
    assert full["messages"][0]["metadata"]["event_payload"] == {"task": "x"}


def test_slack_errors(sandbox: Sandbox) -> None:
    assert _slack(sandbox, "conversations.history", channel="CNOPE") == {
        "ok": False, "error": "channel_not_found"}
    bad = httpx.post(sandbox.urls["slack"] + "auth.test",
                     headers={"Authorization": "Bearer xoxb-wrong"}).json()
    assert bad == {"ok": False, "error": "invalid_auth"}
