"""Generate a large world, serve it, page through it with PyGithub, compare with the minimum.

    python benchmarks/sandbox_paging.py [N]
"""

from __future__ import annotations

import math
import sys
import time

import github

from syncd.sandbox import Sandbox, World
from syncd.sandbox.generate import generate_world


def main(count: int = 100_000) -> None:
    started = time.perf_counter()
    world = World.from_dict(generate_world(github_issues=count, jira_issues=0,
                                           slack_messages=0, seed=1))
    built = time.perf_counter()
    with Sandbox(world) as sandbox:
        # PyGithub sleeps 0.25 s between requests by default; measure the sandbox instead.
        client = github.Github(base_url=sandbox.urls["github"], per_page=100, retry=None,
                               seconds_between_requests=0,
                               auth=github.Auth.Token("sandbox-github-token"))
        sandbox.request_log.reset()
        paged = time.perf_counter()
        issues = client.get_repo("example-org/big-0").get_issues(state="all", sort="updated",
                                                                  direction="asc")
        seen = sum(1 for _ in issues)
        done = time.perf_counter()
        requests = sandbox.request_log.count("github", "GET /repos/{owner}/{repo}/issues")
    minimum = math.ceil(count / 100)
    print(f"items: {seen} of {count}")
    print(f"listing requests: {requests} (minimum ceil(N/100) = {minimum})")
    print(f"world build: {built - started:.1f}s, paging: {done - paged:.1f}s "
          f"({count / (done - paged):.0f} items/s)")
    if seen != count or requests != minimum:
        sys.exit(1)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
