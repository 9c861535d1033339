"""GitHub HTTP behaviour: auth, rate limit, ETag, Link, redirects, replayed exchanges."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from sandbox_corpus import recording
from sandbox_helpers import gh_get

from syncd.sandbox import Sandbox, World
from syncd.sandbox.generate import generate_world


def test_bad_token_gets_githubs_401(sandbox: Sandbox) -> None:
    response = gh_get(sandbox, "/user", headers={"Authorization": "token nope"})
    assert response.status_code == 401
    assert response.json()["message"] == "Bad credentials"
    assert "documentation_url" in response.json()


def test_unknown_repo_is_githubs_404(sandbox: Sandbox) -> None:
    response = gh_get(sandbox, "/repos/example-org/nope")
    assert response.status_code == 404 and response.json()["message"] == "Not Found"


def test_rate_limit_counts_down_and_304_is_free(sandbox: Sandbox) -> None:
    first = gh_get(sandbox, "/repos/example-org/api/issues/1")
    remaining = int(first.headers["X-RateLimit-Remaining"])
    assert first.headers["X-RateLimit-Resource"] == "core"
    again = gh_get(sandbox, "/repos/example-org/api/issues/1",
                   headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    assert int(again.headers["X-RateLimit-Remaining"]) == remaining
    third = gh_get(sandbox, "/repos/example-org/api/issues/2")
    assert int(third.headers["X-RateLimit-Remaining"]) == remaining - 1
    assert int(third.headers["X-RateLimit-Used"]) == 5000 - remaining + 1


def test_etag_changes_after_a_mutation(sandbox: Sandbox) -> None:
    etag = gh_get(sandbox, "/repos/example-org/api/issues/1").headers["ETag"]
    sandbox.world.edit_gh_issue("example-org/api", 1, title="New title")
    response = gh_get(sandbox, "/repos/example-org/api/issues/1",
                      headers={"If-None-Match": etag})
    assert response.status_code == 200 and response.json()["title"] == "New title"


def test_exhausted_quota_is_403(sandbox: Sandbox) -> None:
    gh_get(sandbox, "/user")
    sandbox.set_github_remaining(0)
    response = gh_get(sandbox, "/user")
    assert response.status_code == 403
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert "rate limit" in response.json()["message"]


def test_link_header_like_github(sandbox: Sandbox) -> None:
    data = generate_world(github_issues=250, jira_issues=0, slack_messages=0, seed=1)
    with Sandbox(World.from_dict(data)) as sb:
        response = gh_get(sb, "/repos/example-org/big-0/issues",
                          params={"state": "all", "per_page": 100, "page": 2})
        rels = [part.split("; ")[1] for part in response.headers["Link"].split(", ")]
        assert rels == ['rel="next"', 'rel="last"', 'rel="first"', 'rel="prev"']
        links = {p.split("; ")[1]: p.split("; ")[0].strip("<>")
                 for p in response.headers["Link"].split(", ")}
        last = parse_qs(urlsplit(links['rel="last"']).query)
        assert last == {"page": ["3"], "per_page": ["100"], "state": ["all"]}
        final = gh_get(sb, "/repos/example-org/big-0/issues",
                       params={"state": "all", "per_page": 100, "page": 3})
        assert len(final.json()) == 50
        assert 'rel="next"' not in final.headers["Link"]


def test_transferred_issue_redirects_and_keeps_its_id(sandbox: Sandbox) -> None:
    world = sandbox.world
    issue_id = world.gh_issue("example-org/api", 2).id
    moved = world.transfer_gh_issue("example-org/api", 2, "example-org/web")
    assert (moved.id, moved.repo, moved.number) == (issue_id, "example-org/web", 2)
    old = gh_get(sandbox, "/repos/example-org/api/issues/2", follow_redirects=False)
    assert old.status_code == 301
    assert old.headers["Location"].endswith("/repos/example-org/web/issues/2")
    followed = gh_get(sandbox, "/repos/example-org/api/issues/2", follow_redirects=True)
    assert followed.json()["id"] == issue_id


@pytest.mark.parametrize("name", ["Issue33.testOpenIssues", "PaginatedList.testIteration"])
def test_replay_paginated_listing(sandbox: Sandbox, name: str) -> None:
    """Replay a recorded listing's request sequence: same statuses and header kinds."""
    exchanges = recording(name)
    pages = len(exchanges)
    data = generate_world(github_issues=30 * pages - 5, jira_issues=0, slack_messages=0, seed=2)
    for issue in data["github"]["repos"][0]["issues"]:
        issue["state"] = "open"
    with Sandbox(World.from_dict(data)) as sb:
        for recorded in exchanges:
            query = urlsplit(recorded.path).query
            response = gh_get(sb, "/repos/example-org/big-0/issues?" + query)
            assert response.status_code == recorded.status
            for header in ("link", "etag", "x-ratelimit-limit", "x-ratelimit-remaining"):
                assert (header in response.headers) == (header in recorded.headers), header
            rels = [p.split("; ")[1] for p in response.headers["link"].split(", ")]
            recorded_rels = [p.split("; ")[1] for p in recorded.headers["link"].split(", ")]
            if recorded is exchanges[-1]:
                # These 2012 recordings end with a since-dropped rel="last" to page 1;
                # today's final page carries only first and prev.
                recorded_rels.remove('rel="last"')
            assert rels == recorded_rels
