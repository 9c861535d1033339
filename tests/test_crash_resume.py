"""A sync killed at any moment resumes with nothing lost and nothing duplicated.

Each round changes the world, starts `syncd reconcile` in a subprocess, SIGKILLs
it at a random moment, reruns it to completion and compares the ledger with the
world the sandbox serves.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.sandbox import Sandbox, World

ROUNDS = 25  # CI must stay well under 25 minutes; each round is two process starts
GITHUB_TOKEN = "sandbox-github-token"
JIRA_TOKEN = "sandbox-jira-token"


def crash_world(issue_count: int) -> World:
    issues = [
        {"number": n, "title": f"Task {n}", "user": "bob", "assignees": ["alice"],
         "created_at": f"-{n % 30 + 1}d", "updated_at": f"-{n % 50 + 1}h"}
        for n in range(1, issue_count + 1)
    ]  # fmt: skip
    jira = [
        {"key": f"OPS-{n}", "summary": f"Ticket {n}", "status": "To Do", "assignee": "alice",
         "created": f"-{n % 30 + 1}d", "updated": f"-{n % 50 + 1}h"}
        for n in range(1, issue_count + 1)
    ]  # fmt: skip
    return World.from_dict({
        "tokens": {"github": GITHUB_TOKEN, "jira": JIRA_TOKEN},
        "people": [{"id": "alice", "github": "alice-c"}, {"id": "bob", "github": "bob-o"}],
        "github": {"viewer": "syncd-bot", "repos": [{"full_name": "acme/crash", "issues": issues}]},
        "jira": {"projects": [{"key": "OPS", "id": "10000", "name": "Operations"}], "issues": jira},
    })  # fmt: skip


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(crash_world(240)) as served:
        yield served


def write_config(tmp_path: Path, sandbox: Sandbox) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
        f'[sources.gh]\nkind = "github"\nbase_url = "{sandbox.urls["github"]}"\n'
        f'token = "{GITHUB_TOKEN}"\nrepos = ["acme/crash"]\nper_page = 20\n'
        'since_overlap = "1s"\n\n'
        f'[sources.ops]\nkind = "jira"\nurl = "{sandbox.urls["jira"]}"\nemail = "bot@acme.example"\n'
        f'token = "{JIRA_TOKEN}"\njql = "project = OPS"\npage_size = 20\nlookback = "1m"\n'
    )
    return path


def reconcile_command(config: Path) -> list[str]:
    return [sys.executable, "-m", "syncd", "--log-level", "ERROR", "reconcile", "-c", str(config)]


def ledger_rows(database: Path, source: str) -> list[tuple[str, str, str]]:
    with sqlite3.connect(database) as connection:
        return connection.execute(
            "SELECT external_id, key, title FROM tasks WHERE gone_at IS NULL AND source = ?",
            (source,),
        ).fetchall()


def world_rows(world: World) -> list[tuple[str, str, str]]:
    with world.lock:
        return sorted(
            (str(issue.id), f"acme/crash#{issue.number}", issue.title)
            for issue in world.repo("acme/crash").issues.values()  # type: ignore[union-attr]
        )


def jira_rows(world: World) -> list[tuple[str, str, str]]:
    with world.lock:
        return sorted((issue.id, issue.key, issue.summary) for issue in world.jira_issues.values())


def change_world(world: World, rng: random.Random, round_number: int) -> None:
    numbers = sorted(world.repo("acme/crash").issues)  # type: ignore[union-attr]
    for number in rng.sample(numbers, 8):
        world.edit_gh_issue("acme/crash", number, title=f"Task {number} (round {round_number})")
    if round_number % 5 == 0:
        world.add_gh_issue("acme/crash", f"New in round {round_number}", user="bob")
    with world.lock:
        keys = sorted(issue.key for issue in world.jira_issues.values())
    for key in rng.sample(keys, 8):
        world.edit_jira_issue(key, summary=f"{key} (round {round_number})")


# Dozens of process starts: about 2 minutes on a busy 2-core machine.
@pytest.mark.timeout(900)
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    config = write_config(tmp_path, sandbox)
    database = tmp_path / "ledger.db"
    rng = random.Random(20261125)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    killed_mid_run = 0
    for round_number in range(1, ROUNDS + 1):
        change_world(sandbox.world, rng, round_number)
        victim = subprocess.Popen(
            reconcile_command(config), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        time.sleep(rng.uniform(0.3, 1.4))  # start-up takes ~0.6 s; the sync follows it
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)
            killed_mid_run += 1
        victim.wait(timeout=30)
        finished = subprocess.run(
            reconcile_command(config), env=env, capture_output=True, text=True, timeout=60
        )
        assert finished.returncode == 0, finished.stderr
        for source, expected in (("gh", world_rows), ("ops", jira_rows)):
            rows = sorted(ledger_rows(database, source))
            assert len({key for _, key, _ in rows}) == len(rows), (
                f"a {source} task was stored twice"
            )
            assert rows == expected(sandbox.world), (
                f"{source} differs from the world in round {round_number}"
            )
    # The test only means something if most rounds really died mid-run.
    assert killed_mid_run >= ROUNDS // 2, killed_mid_run
