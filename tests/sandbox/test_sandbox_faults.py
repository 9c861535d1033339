"""One test per fault mode, through the real clients where they show the fault."""

from __future__ import annotations

import github
import httpx
import pytest
import requests
from sandbox_helpers import GITHUB_TOKEN, gh_get

from syncd.sandbox import Sandbox


def test_rate_limit_429_with_retry_after(sandbox: Sandbox) -> None:
    sandbox.faults.rate_limit("github", "/repos/*/issues", retry_after=7, times=1)
    first = gh_get(sandbox, "/repos/example-org/api/issues")
    assert first.status_code == 429 and first.headers["Retry-After"] == "7"
    assert gh_get(sandbox, "/repos/example-org/api/issues").status_code == 200


def test_slack_rate_limit_fault(sandbox: Sandbox, slack: httpx.Client) -> None:
    sandbox.faults.rate_limit("slack", "/api/conversations.history", retry_after=3)
    response = slack.get("conversations.history", params={"channel": "C0123ABCD"})
    assert response.status_code == 429 and response.headers["Retry-After"] == "3"
    assert response.json() == {"ok": False, "error": "ratelimited"}


def test_slack_tier_limits_when_enforced(sandbox: Sandbox, slack: httpx.Client) -> None:
    sandbox.world.settings["slack_enforce_tiers"] = True
    sandbox.world.settings["slack_tier_limits"] = {"2": 2}
    statuses = [slack.get("users.list").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert slack.get("auth.test").status_code == 200  # another tier, its own budget


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors(sandbox: Sandbox, status: int) -> None:
    sandbox.faults.error("jira", status, "/rest/api/2/issue/*", times=2)
    auth = ("a@b.c", "sandbox-jira-token")
    url = sandbox.urls["jira"] + "/rest/api/2/issue/OPS-1"
    assert [httpx.get(url, auth=auth).status_code for _ in range(3)] == [status, status, 200]


def test_delay_longer_than_client_timeout(sandbox: Sandbox) -> None:
    sandbox.faults.delay("github", 1.5, "/repos/example-org/api", times=1)
    gh = github.Github(base_url=sandbox.urls["github"], auth=github.Auth.Token(GITHUB_TOKEN),
                       timeout=1, retry=None)
    with pytest.raises(requests.exceptions.Timeout):
        gh.get_repo("example-org/api")


def test_malformed_json(sandbox: Sandbox, slack: httpx.Client) -> None:
    sandbox.faults.malformed_json("slack", "/api/users.list", times=1)
    with pytest.raises(ValueError):
        slack.get("users.list").json()
    assert slack.get("users.list").json()["ok"] is True


def test_truncated_page_breaks_the_read(sandbox: Sandbox) -> None:
    sandbox.faults.truncated_page("github", "/repos/*/issues", times=1)
    with pytest.raises(httpx.RemoteProtocolError):
        gh_get(sandbox, "/repos/example-org/api/issues")
    assert gh_get(sandbox, "/repos/example-org/api/issues").status_code == 200


def test_short_page_keeps_pagination(sandbox: Sandbox) -> None:
    sandbox.faults.short_page("github", "/repos/*/issues", times=1)
    response = gh_get(sandbox, "/repos/example-org/api/issues", params={"per_page": 2})
    assert len(response.json()) == 1
    assert 'rel="next"' in response.headers["Link"]


def test_repeat_page_returns_previous_body(sandbox: Sandbox, slack: httpx.Client) -> None:
    first = slack.get("conversations.history", params={"channel": "C0123ABCD", "limit": 1})
    cursor = first.json()["response_metadata"]["next_cursor"]
    sandbox.faults.repeat_page("slack", "/api/conversations.history", times=1)
    second = slack.get("conversations.history",
                       params={"channel": "C0123ABCD", "limit": 1, "cursor": cursor})
    assert second.json() == first.json()  # same messages, same cursor: a loop to detect
    third = slack.get("conversations.history",
                      params={"channel": "C0123ABCD", "limit": 1, "cursor": cursor})
    assert third.json()["messages"] != first.json()["messages"]


def test_faults_are_per_service(sandbox: Sandbox, slack: httpx.Client) -> None:
    sandbox.faults.error("github", 500)
    assert slack.get("auth.test").status_code == 200
    sandbox.faults.clear("github")
    assert gh_get(sandbox, "/user").status_code == 200
