"""Large, reproducible worlds for benchmarks: ``generate_world(github_issues=100_000, ...)``."""

from __future__ import annotations

import random
from typing import Any

from syncd.sandbox.world import JIRA_PRIORITIES, JIRA_STATUSES

Json = dict[str, Any]

_VERBS = ("Fix", "Add", "Remove", "Document", "Investigate", "Upgrade", "Refactor", "Test")
_NOUNS = ("login", "billing export", "search index", "VPN", "cert rotation", "dashboard",
          "rate limiter", "mail relay", "backup job", "CI pipeline")


def _title(rng: random.Random, n: int) -> str:
    return f"{rng.choice(_VERBS)} {rng.choice(_NOUNS)} ({n})"


def _people(count: int) -> list[Json]:
    return [{"id": f"p{n:03d}", "name": f"Person {n}", "email": f"p{n:03d}@acme.example",
             "github": f"dev-{n:03d}", "jira": f"712020:{n:08d}-0000-4000-8000-000000000000",
             "slack": f"U{n:08d}"} for n in range(count)]


def generate_world(github_issues: int = 1000, jira_issues: int = 1000,
                   slack_messages: int = 1000, seed: int = 0, repos: int = 1,
                   people: int = 20, span_days: int = 365) -> Json:
    """A world document with the given item counts, dates spread over ``span_days``."""
    rng = random.Random(seed)
    staff = _people(people)
    span_minutes = span_days * 24 * 60
    return {
        "people": staff,
        "github": {"repos": [_repo(rng, f"example-org/big-{r}", github_issues // repos
                                   + (1 if r < github_issues % repos else 0), staff,
                                   span_minutes) for r in range(repos)]},
        "jira": {"projects": [{"key": "OPS", "id": "10000", "name": "Operations"},
                              {"key": "DEV", "id": "10001", "name": "Development"}],
                 "issues": _jira_issues(rng, jira_issues, staff, span_minutes)},
        "slack": {"channels": _channels(rng, slack_messages, staff, span_minutes)},
    }


def _repo(rng: random.Random, name: str, count: int, staff: list[Json], span: int) -> Json:
    issues = []
    for n in range(1, count + 1):
        created = rng.randint(60, span)
        updated = rng.randint(1, created)
        state = "closed" if rng.random() < 0.3 else "open"
        issue: Json = {"number": n, "title": _title(rng, n), "body": f"Generated issue {n}.",
                       "user": rng.choice(staff)["id"], "state": state,
                       "assignees": [rng.choice(staff)["id"]] if rng.random() < 0.7 else [],
                       "labels": rng.sample(["P1", "P2", "bug", "priority:high"],
                                            rng.randint(0, 2)),
                       "created_at": f"-{created}m", "updated_at": f"-{updated}m"}
        if rng.random() < 0.1:
            issue["pull_request"] = {"merged_at": f"-{updated}m" if state == "closed" else None}
        issues.append(issue)
    return {"full_name": name, "labels": ["P1", "P2", "bug", "priority:high"], "issues": issues}


def _jira_issues(rng: random.Random, count: int, staff: list[Json], span: int) -> list[Json]:
    issues = []
    statuses = list(JIRA_STATUSES)
    for n in range(1, count + 1):
        project = "OPS" if n % 2 else "DEV"
        created = rng.randint(60, span)
        issue: Json = {"key": f"{project}-{(n + 1) // 2}", "summary": _title(rng, n),
                       "status": rng.choice(statuses), "priority": rng.choice(JIRA_PRIORITIES),
                       "assignee": rng.choice(staff)["id"] if rng.random() < 0.8 else None,
                       "reporter": rng.choice(staff)["id"],
                       "created": f"-{created}m", "updated": f"-{rng.randint(1, created)}m"}
        if rng.random() < 0.5:
            issue["duedate"] = f"{rng.choice('+-')}{rng.randint(1, 30)}d"
        issues.append(issue)
    return issues


def _channels(rng: random.Random, count: int, staff: list[Json], span: int) -> list[Json]:
    channels: list[Json] = [{"id": "C0000BIG1", "name": "ops", "messages": []},
                            {"id": "C0000BIG2", "name": "support", "messages": []}]
    for n in range(count):
        message = {"user": rng.choice(staff)["id"], "text": f"{_title(rng, n)} please",
                   "ts": f"-{rng.randint(1, span * 60)}s"}
        channels[n % 2]["messages"].append(message)
    return channels
