"""One cycle for every trigger: `syncd reconcile`, `syncd demo` and `syncd run`.

The three run `syncd.reconcile.reconcile`; these tests prove it by watching the
stages that exist only there, and check what the service used to miss: daily
digests, gathered and delivered under `syncd run`, also when the service has
to wake for a digest rather than for a poll.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner

import syncd.reconcile
from syncd.cli import app
from syncd.clock import FrozenClock
from syncd.config import load_config
from syncd.demo.run import run_demo
from syncd.ledger.models import OutboxItem
from syncd.ledger.repository import Ledger
from syncd.rules.engine import compile_rules
from syncd.sandbox import Sandbox
from syncd.service.loop import Service
from tests.test_service import START, free_port, make_world, start, until, write_config

STAGES = ("pull_all", "evaluate", "plan_followups", "enqueue", "compose_digests", "drain")


@pytest.fixture
def stages(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The stages of the shared cycle, in the order they ran (wrapped, still real)."""
    called: list[str] = []

    def watched(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def stage(*args: Any, **kwargs: Any) -> Any:
            called.append(name)
            return real(*args, **kwargs)

        return stage

    for name in STAGES:
        monkeypatch.setattr(syncd.reconcile, name, watched(name, getattr(syncd.reconcile, name)))
    return called


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(make_world()) as served:
        yield served


def digest_config(tmp_path: Path, sandbox: Sandbox, *, hours: str = "00:00-24:00") -> Path:
    """Bob reports the unowned chores and reads one digest a day, as a Slack DM."""
    config = write_config(tmp_path / "syncd.toml", sandbox, port=free_port(), poll="30d",
                          slack=True)  # fmt: skip
    text = config.read_text().replace(
        '[people.bob]\ngithub = "bob-o"',
        f'[people.bob]\ngithub = "bob-o"\ndigest = true\nworking_hours = "{hours}"',
    )
    config.write_text(text)
    return config


def direct_messages(sandbox: Sandbox) -> list[str]:
    return [
        str(w.payload.get("text"))
        for w in sandbox.writes.list("slack")
        if "postMessage" in w.kind and not w.payload.get("thread_ts")
    ]


def test_cli_reconcile_service_and_demo_run_the_same_cycle(
    tmp_path: Path, sandbox: Sandbox, stages: list[str]
) -> None:
    config = digest_config(tmp_path, sandbox)
    result = CliRunner().invoke(app, ["reconcile", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert stages == list(STAGES)

    stages.clear()
    settings = load_config(config)
    ledger = Ledger.open(settings.ledger.url)
    try:
        service = Service(settings, compile_rules(settings.rules), ledger, FrozenClock(START))
        assert service.cycle() is not None
    finally:
        ledger.close()
    assert stages == list(STAGES)

    stages.clear()
    run_demo(tmp_path / "demo", Console(file=io.StringIO()))
    assert stages == list(STAGES)

    stages.clear()
    dry = CliRunner().invoke(app, ["reconcile", "-c", str(config), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert stages == ["pull_all", "evaluate", "plan_followups"], "a dry run stops after the plan"


def test_digests_are_delivered_under_syncd_run(tmp_path: Path, sandbox: Sandbox) -> None:
    config = digest_config(tmp_path, sandbox)
    running = start(config)
    try:
        until(lambda: bool(direct_messages(sandbox)), "the digest", running.process)
        [digest] = direct_messages(sandbox)
        # Chores 2-4 (and the Slack request) are unowned; Bob reported them all.
        assert "things need you today" in digest and digest.count("needs exactly one owner") >= 3
        assert sandbox.writes.list("github", "issue_comment") == [], "no single nudge went out"
    finally:
        assert running.stop() < 10
    ledger = Ledger.open(load_config(config).ledger.url)
    try:
        with ledger.sessions() as session:
            rows = session.scalars(select(OutboxItem)).all()
    finally:
        ledger.close()
    assert [r.state for r in rows if r.rule_id == "digest"] == ["sent"]
    assert {r.state for r in rows if r.rule_id != "digest"} == {"digested"}


def test_the_service_wakes_when_a_digest_comes_due(tmp_path: Path, sandbox: Sandbox) -> None:
    config = digest_config(tmp_path, sandbox, hours="13:00-17:00")
    settings = load_config(config)
    ledger = Ledger.open(settings.ledger.url)
    clock = FrozenClock(START)  # Monday 09:00 UTC: Bob is not at work yet
    service = Service(settings, compile_rules(settings.rules), ledger, clock)
    try:
        first = service.cycle()
        assert first is not None and first.digests == 0 and first.delivery.sent == 0
        clock.set(START + timedelta(hours=3, minutes=59))
        assert service.cycle() is None, "no poll, no rule check and no digest due yet"
        clock.set(START + timedelta(hours=4))  # 13:00: the digest, and nothing else, is due
        woke = service.cycle()
        assert woke is not None and woke.sources == {}, "woken for the digest, not for a poll"
        assert (woke.digests, woke.delivery.sent) == (1, 1)
        assert len(direct_messages(sandbox)) == 1
        clock.set(START + timedelta(hours=6))
        assert service.cycle() is None, "one digest a day"
    finally:
        ledger.close()
