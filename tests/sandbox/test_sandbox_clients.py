"""The real client libraries (PyGithub, jira, httpx) against the simulators."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import github
import httpx
import jira

from syncd.sandbox import Sandbox, World
from syncd.sandbox.generate import generate_world


def _big_world(n: int) -> World:
    return World.from_dict(generate_world(github_issues=n, jira_issues=n, slack_messages=n,
                                          seed=7))


def test_pygithub_paginates_issue_listing_with_since() -> None:
    world = _big_world(250)
    with Sandbox(world) as sb:
        gh = github.Github(base_url=sb.urls["github"], per_page=100, retry=None, seconds_between_requests=0,
                           auth=github.Auth.Token("sandbox-github-token"))
        repo_name = next(iter(world.repos.values())).full_name
        since = world.now - timedelta(days=30)
        expected = {i.id for i in world.repos[repo_name.lower()].issues.values()
                    if i.updated_at >= since}
        issues = gh.get_repo(repo_name).get_issues(state="all", since=since, sort="updated",
                                                  direction="asc")
        got = [i.id for i in issues]
        assert set(got) == expected and len(got) == len(expected)
        assert 0 < len(expected) < 250  # the filter really cut something
        pages = sb.request_log.count("github", "GET /repos/{owner}/{repo}/issues")
        assert pages == -(-len(expected) // 100)


def test_pygithub_lists_pull_requests_mixed_in(gh: github.Github) -> None:
    issues = list(gh.get_repo("example-org/api").get_issues(state="all"))
    prs = [i for i in issues if i.pull_request is not None]
    assert [i.number for i in prs] == [4]
    assert prs[0].pull_request.html_url.endswith("/example-org/api/pull/4")


def test_pygithub_posts_and_edits_a_comment(gh: github.Github, sandbox: Sandbox) -> None:
    issue = gh.get_repo("example-org/api").get_issue(1)
    before = issue.updated_at
    comment = issue.create_comment("Who owns this?")
    assert comment.body == "Who owns this?" and comment.user.login == "syncd-bot"
    comment.edit("Who owns this? @alice-c")
    assert [c.body for c in issue.get_comments()][-1] == "Who owns this? @alice-c"
    assert [w.kind for w in sandbox.writes.list("github")] == ["issue_comment", "comment_edit"]
    assert sandbox.world.gh_issue("example-org/api", 1).updated_at > before.replace(tzinfo=UTC)


def test_pygithub_edits_issue_state_and_labels(gh: github.Github, sandbox: Sandbox) -> None:
    issue = gh.get_repo("example-org/api").get_issue(2)
    issue.edit(state="closed", state_reason="not_planned", labels=["bug"], assignees=["bob-o"])
    fresh = gh.get_repo("example-org/api").get_issue(2)
    assert (fresh.state, fresh.state_reason) == ("closed", "not_planned")
    assert [x.name for x in fresh.labels] == ["bug"]
    assert [a.login for a in fresh.assignees] == ["bob-o"]
    assert fresh.closed_at is not None


def test_pygithub_repo_wide_comments_since(gh: github.Github, sandbox: Sandbox) -> None:
    sandbox.world.add_gh_comment("example-org/api", 3, "fresh", "bob")
    since = datetime.now(UTC) - timedelta(minutes=5)
    bodies = [c.body for c in gh.get_repo("example-org/api").get_issues_comments(since=since)]
    assert bodies == ["fresh"]


def test_pygithub_sub_issues_and_dependencies(gh: github.Github) -> None:
    issue = gh.get_repo("example-org/api").get_issue(1)
    assert [s.number for s in issue.get_sub_issues()] == [2]
    assert issue.raw_data["sub_issues_summary"] == {"total": 1, "completed": 0,
                                                    "percent_completed": 0}
    assert issue.raw_data["issue_dependencies_summary"]["total_blocked_by"] == 1


def test_jira_enhanced_search_paginates(sandbox: Sandbox) -> None:
    world = _big_world(230)
    with Sandbox(world) as sb:
        client = jira.JIRA(server=sb.urls["jira"], max_retries=0,
                           basic_auth=("bot@acme.example", "sandbox-jira-token"))
        found = client.enhanced_search_issues("project = OPS ORDER BY updated ASC",
                                              maxResults=0, fields="summary,updated")
        assert len(found) == sum(1 for i in world.jira_issues.values() if i.project == "OPS")
        stamps = [i.fields.updated for i in found]
        assert stamps == sorted(stamps)
        assert sb.request_log.count("jira", "GET /rest/api/{version}/search/jql") == \
            -(-len(found) // 100)


def test_jira_classic_search_on_server(sandbox: Sandbox) -> None:
    data = generate_world(github_issues=0, jira_issues=120, slack_messages=0, seed=3)
    data["jira"]["deployment_type"] = "Server"
    with Sandbox(World.from_dict(data)) as sb:
        client = jira.JIRA(server=sb.urls["jira"], max_retries=0,
                           basic_auth=("bot@acme.example", "sandbox-jira-token"))
        found = client.search_issues("project in (OPS, DEV) ORDER BY key ASC", maxResults=0)
        assert len(found) == 120
        assert found.total == 120
        assert sb.request_log.count("jira", "GET /rest/api/{version}/search") >= 2


def test_jira_issue_comment_transition_worklog(jira_client: jira.JIRA, sandbox: Sandbox) -> None:
    issue = jira_client.issue("OPS-1", expand="changelog")
    assert issue.fields.status.statusCategory.key == "indeterminate"
    assert issue.fields.customfield_10050 == "All endpoints serve the new cert"
    assert [h.items[0].toString for h in issue.changelog.histories] == ["In Progress"]
    comment = jira_client.add_comment("OPS-1", "Any update?")
    assert comment.body == "Any update?"
    jira_client.transition_issue("OPS-1", "Done")
    assert jira_client.issue("OPS-1").fields.status.name == "Done"
    jira_client.add_worklog("OPS-1", timeSpent="1h")
    assert jira_client.issue("OPS-1").fields.timespent == 4 * 3600 + 3600
    assert [w.kind for w in sandbox.writes.list("jira")] == ["comment", "transition", "worklog"]


def test_jira_links_and_subtasks(jira_client: jira.JIRA) -> None:
    blocked = jira_client.issue("OPS-4")
    link = blocked.fields.issuelinks[0]
    assert (link.type.name, link.type.inward, link.inwardIssue.key) == (
        "Blocks", "is blocked by", "OPS-3")
    assert [s.key for s in jira_client.issue("OPS-1").fields.subtasks] == ["OPS-2"]
    assert jira_client.issue("OPS-2").fields.parent.key == "OPS-1"


def test_httpx_pages_through_history(sandbox: Sandbox) -> None:
    world = _big_world(120)
    with Sandbox(world) as sb, httpx.Client(headers={"Authorization": "Bearer xoxb-sandbox"}) \
            as client:
        channel = next(iter(world.channels.values()))
        seen: list[str] = []
        cursor = ""
        while True:
            body = client.get(sb.urls["slack"] + "conversations.history",
                              params={"channel": channel.id, "limit": 50,
                                      "cursor": cursor}).json()
            assert body["ok"] is True
            seen += [m["ts"] for m in body["messages"]]
            cursor = body["response_metadata"]["next_cursor"]
            assert body["has_more"] == bool(cursor)
            if not cursor:
                break
        assert seen == sorted(channel.top_ts, key=float, reverse=True)
