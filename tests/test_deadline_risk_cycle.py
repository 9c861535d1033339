"""deadline_risk in the reconcile cycle (`syncd reconcile`, `syncd run`): the follow-up goes
to the owner where the work lives, with the forecast's reason, and escalates like any kind."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from syncd.clock import FrozenClock
from syncd.config import load_config
from syncd.ledger.repository import Ledger
from syncd.reconcile import reconcile
from syncd.rules.engine import compile_rules
from syncd.sandbox import Sandbox, World
from syncd.writer.registry import writer_registry

TOKEN = "sandbox-github-token"
REPO = "acme/infra"
PEOPLE = ("dev", "maria", "alice", "bob")


def story() -> World:
    """A team's year of finished (verified) work, and #5: open 150 days, idle 45, due in
    8 days."""
    due = (datetime.now(UTC) + timedelta(days=8)).date()
    finished: list[dict[str, Any]] = [
        {"number": 10 + n, "title": f"Finished chore {n}", "body": "Done.", "user": "maria",
         "assignees": [PEOPLE[n % 4]], "labels": ["verified"], "state": "closed",
         "state_reason": "completed", "created_at": f"-{200 - n * 13}d",
         "updated_at": f"-{170 - n * 13}d", "closed_at": f"-{170 - n * 13}d"}
        for n in range(12)
    ]  # fmt: skip
    at_risk = {"number": 5, "title": "Move the file shares", "body": f"Due: {due.isoformat()}",
               "user": "maria", "assignees": ["dev"], "labels": ["verified"],
               "created_at": "-150d", "updated_at": "-45d",
               "comments": [{"user": "dev", "body": "Soon.", "created_at": "-45d"}]}  # fmt: skip
    return World.from_dict({
        "tokens": {"github": TOKEN},
        "people": [{"id": p, "github": f"{p}-gh"} for p in PEOPLE],
        "github": {"viewer": "syncd-bot", "repos": [
            {"full_name": REPO, "labels": ["verified"], "issues": [*finished, at_risk]}]},
    })  # fmt: skip


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(story()) as served:
        yield served


def write_config(tmp_path: Path, sandbox: Sandbox) -> Path:
    people = "".join(f'[people.{p}]\nname = "{p.title()}"\ngithub = "{p}-gh"\n\n' for p in PEOPLE)
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
        f'[sources.gh]\nkind = "github"\nbase_url = "{sandbox.urls["github"]}"\n'
        f'token = "{TOKEN}"\nrepos = ["{REPO}"]\n\n'
        f"{people}"
        '[[rules]]\nid = "risk"\nkind = "deadline_risk"\n'
        'followup = { via = "source", every = "2d", max = 1, escalate_to = "maria" }\n'
    )
    return path


def comments(sandbox: Sandbox) -> list[str]:
    with sandbox.world.lock:
        issue = sandbox.world.repo(REPO).issues[5]  # type: ignore[union-attr]
        return [c.body for c in issue.comments][1:]  # the first is dev's own


def run(config: Path, clock: FrozenClock) -> Any:
    settings = load_config(config)
    ledger = Ledger.open(settings.ledger.url)
    try:
        with writer_registry(settings) as writer_for:
            return reconcile(
                settings, ledger, ["gh"], compile_rules(settings.rules), clock,
                writer_for=writer_for,
            )  # fmt: skip
    finally:
        ledger.close()


def test_the_owner_is_told_why_and_the_lead_after_the_cap(tmp_path: Path, sandbox: Sandbox) -> None:
    config = write_config(tmp_path, sandbox)
    clock = FrozenClock(datetime.now(UTC))
    first = run(config, clock)
    assert first.evaluation.rules["risk"].open == 1
    assert first.delivery.sent == 1
    (nudge,) = comments(sandbox)
    assert "@dev-gh" in nudge  # the owner
    assert "#5` is heading for a missed deadline:" in nudge
    assert "likely to miss its due date" in nudge and "no activity for 45 days" in nudge
    clock.advance(timedelta(days=2, hours=1))
    second = run(config, clock)
    assert second.delivery.sent == 1 and all(p.escalation for p in second.planned)
    escalation = comments(sandbox)[-1]
    assert "@maria-gh" in escalation  # the lead
    assert "still breaks rule risk after 1 nudges" in escalation
