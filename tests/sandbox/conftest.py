"""Fixtures: a served default world, and the real client libraries pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import github
import httpx
import jira
import pytest
from sandbox_helpers import GITHUB_TOKEN

from syncd.sandbox import Sandbox, World

JIRA_AUTH = ("bot@acme.example", "sandbox-jira-token")
SLACK_TOKEN = "xoxb-sandbox"


@pytest.fixture
def world() -> World:
    return World.default()


@pytest.fixture
def sandbox(world: World) -> Iterator[Sandbox]:
    with Sandbox(world) as sb:
        yield sb


@pytest.fixture
def gh(sandbox: Sandbox) -> github.Github:
    # No retries: tests assert exactly what the simulator answered.
    return github.Github(base_url=sandbox.urls["github"], auth=github.Auth.Token(GITHUB_TOKEN),
                         retry=None, seconds_between_requests=0, timeout=5)


@pytest.fixture
def jira_client(sandbox: Sandbox) -> jira.JIRA:
    return jira.JIRA(server=sandbox.urls["jira"], basic_auth=JIRA_AUTH, max_retries=0,
                     timeout=5)


@pytest.fixture
def slack(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.urls["slack"], timeout=5,
                      headers={"Authorization": f"Bearer {SLACK_TOKEN}"}) as client:
        yield client
