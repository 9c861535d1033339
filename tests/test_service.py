"""`syncd run` against the sandbox: polling, webhooks, signals, health and metrics.

The service runs as a real subprocess (signals, sockets and uvicorn are part of
what is tested); the poll policy and the time-based rule checks are tested in
process with a frozen clock. Time bounds are generous: these are not benchmarks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.clock import FrozenClock
from syncd.config import load_config
from syncd.ledger.repository import Ledger
from syncd.rules.engine import compile_rules
from syncd.sandbox import Sandbox, World
from syncd.service.loop import Service
from syncd.service.schedule import Scheduler
from syncd.sync import pull_all

GH_TOKEN = "sandbox-github-token"
GH_SECRET = "gh-webhook-secret"
SLACK_SECRET = "slack-signing-secret"
CHANNEL = "C0123ABCD"


def make_world(issue_count: int = 4) -> World:
    issues: list[dict[str, Any]] = [
        {
            "number": 1,
            "title": "Rotate the VPN certificate",
            "user": "bob",
            "assignees": ["alice"],
            "labels": ["in progress"],
            "created_at": "-10d",
            "updated_at": "-2d",
            "comments": [{"user": "alice", "body": "Started", "created_at": "-2d"}],
        }
    ]
    issues += [
        {"number": n, "title": f"Chore {n}", "user": "bob", "created_at": "-9d",
         "updated_at": f"-{n}m"}
        for n in range(2, issue_count + 1)
    ]  # fmt: skip
    return World.from_dict({
        "tokens": {"github": GH_TOKEN, "slack": "xoxb-sandbox"},
        "people": [
            {"id": "alice", "name": "Alice", "github": "alice-c", "slack": "U01ALICE"},
            {"id": "bob", "name": "Bob", "github": "bob-o", "slack": "U02BOB"},
        ],
        "github": {"viewer": "syncd-bot", "repos": [
            {"full_name": "acme/infra", "labels": ["in progress"], "issues": issues}]},
        "slack": {"channels": [{"id": CHANNEL, "name": "ops", "messages": [
            {"user": "bob", "text": "The printer is on fire", "ts": "-5h"}]}]},
    })  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(
    path: Path,
    sandbox: Sandbox,
    *,
    port: int,
    poll: str,
    slack: bool = False,
    ledger: str | None = None,
    **github: Any,
) -> Path:
    extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in github.items())
    url = ledger or f"sqlite:///{path.parent / 'ledger.db'}"
    text = (
        f'[ledger]\nurl = "{url}"\n\n'
        f'[service]\nlisten = "127.0.0.1:{port}"\npoll_interval = "{poll}"\n\n'
        f'[sources.gh]\nkind = "github"\nbase_url = "{sandbox.urls["github"]}"\n'
        f'token = "{GH_TOKEN}"\nrepos = ["acme/infra"]\nwebhook_secret = "{GH_SECRET}"\n{extra}\n'
        '[people.alice]\ngithub = "alice-c"\nslack = "U01ALICE"\n\n'
        '[people.bob]\ngithub = "bob-o"\nslack = "U02BOB"\n\n'
        '[[rules]]\nid = "single-owner"\nkind = "single_owner"\n'
        'followup = { via = "source", every = "30d" }\n'
    )
    if slack:
        text += (
            f'\n[sources.chat]\nkind = "slack"\nbase_url = "{sandbox.urls["slack"]}"\n'
            f'token = "xoxb-sandbox"\nchannels = ["{CHANNEL}"]\nsigning_secret = "{SLACK_SECRET}"\n'
        )
    path.write_text(text)
    return path


@dataclass
class Running:
    """One `syncd run` subprocess."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    config: Path

    def log(self) -> list[dict[str, Any]]:
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def logged(self, event: str) -> bool:
        return any(entry.get("event") == event for entry in self.log())

    def health(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(f"{self.url}/healthz", timeout=5).json()
        return data

    def stop(self) -> float:
        """SIGTERM; returns how long the process took to exit."""
        started = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return time.monotonic() - started


def start(config: Path, *, wait_healthy: bool = True) -> Running:
    settings = load_config(config)
    log_path = config.with_suffix(f".{time.monotonic_ns()}.log")
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "--log-format", "json", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log_path.open("wb"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    running = Running(process, f"http://{settings.service.listen}", log_path, config)
    until(lambda: running.logged("service started"), "the service to start", process)
    if wait_healthy:
        until(lambda: running.health()["status"] == "ok", "the first polls", process)
    return running


def until(check: Callable[[], bool], what: str, process: Any = None, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the service exited ({process.returncode}) waiting for {what}")
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def ledger_keys(config: Path, source: str = "gh") -> list[str]:
    ledger = Ledger.open(load_config(config).ledger.url)
    try:
        return [task.key for task in ledger.tasks(sources=[source])]
    finally:
        ledger.close()


def task_title(config: Path, key: str) -> str | None:
    ledger = Ledger.open(load_config(config).ledger.url)
    try:
        row = ledger.task_by_key(key, "gh")
        return row.title if row else None
    finally:
        ledger.close()


def github_headers(body: bytes, secret: str = GH_SECRET, event: str = "issues") -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-GitHub-Event": event, "X-Hub-Signature-256": f"sha256={digest}",
            "Content-Type": "application/json"}  # fmt: skip


def slack_headers(body: bytes, stamp: int, secret: str = SLACK_SECRET) -> dict[str, str]:
    base = f"v0:{stamp}:".encode() + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(stamp), "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/json"}  # fmt: skip


# --- one long-polling service shared by the webhook tests ------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(make_world()) as served:
        yield served


@pytest.fixture(scope="module")
def service(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Polls only hourly: anything that reaches the ledger promptly came by webhook."""
    config = write_config(
        tmp_path_factory.mktemp("svc") / "syncd.toml", sandbox, port=free_port(), poll="1h",
        slack=True,
    )  # fmt: skip
    running = start(config)
    yield running
    assert running.stop() < 10


def test_healthz_and_metrics_answer(service: Running) -> None:
    health = service.health()
    assert health["status"] == "ok"
    assert set(health["sources"]) == {"gh", "chat"}
    gh = health["sources"]["gh"]
    assert gh["last_success"] and gh["last_error"] is None and gh["lag_seconds"] >= 0
    # Rules are evaluated just after the polls that made the service healthy.
    until(lambda: "syncd_open_violations{" in httpx.get(f"{service.url}/metrics").text,
          "the first evaluation")  # fmt: skip
    metrics = httpx.get(f"{service.url}/metrics", timeout=5).text
    assert 'syncd_polls_total{outcome="ok",source="gh"}' in metrics
    assert 'syncd_items_synced_total{outcome="new",source="gh"} 4.0' in metrics
    assert 'syncd_open_violations{rule="single-owner"}' in metrics
    assert 'syncd_sync_lag_seconds{source="chat"}' in metrics


def test_signed_webhook_brings_a_change_in_promptly(service: Running, sandbox: Sandbox) -> None:
    sandbox.webhooks.configure("github", f"{service.url}/webhooks/gh", GH_SECRET)
    try:
        sandbox.world.edit_gh_issue("acme/infra", 2, title="Renew the domain")
        assert sandbox.webhooks.wait()
    finally:
        sandbox.webhooks.disable("github")
    assert [d.status for d in sandbox.webhooks.of("github")] == [200]
    until(lambda: task_title(service.config, "acme/infra#2") == "Renew the domain",
          "the webhook's change in the ledger", service.process)  # fmt: skip
    assert any(e.get("event") == "poll done" and e.get("run_id") for e in service.log())


def test_forged_signature_is_refused_and_nothing_is_written(
    service: Running, sandbox: Sandbox
) -> None:
    sandbox.world.add_gh_issue("acme/infra", "Should wait for the hourly poll")
    body = json.dumps({"action": "opened"}).encode()
    forged = httpx.post(f"{service.url}/webhooks/gh", content=body,
                        headers=github_headers(body, secret="guess"), timeout=5)  # fmt: skip
    unsigned = httpx.post(f"{service.url}/webhooks/gh", content=body, timeout=5)
    assert (forged.status_code, unsigned.status_code) == (401, 401)
    time.sleep(1.5)  # a prompt poll, had one been triggered, finishes well within this
    assert "acme/infra#5" not in ledger_keys(service.config)


def test_unknown_event_is_acknowledged_and_ignored(service: Running) -> None:
    body = b'{"zen": "Keep it logically awesome."}'
    reply = httpx.post(f"{service.url}/webhooks/gh", content=body,
                       headers=github_headers(body, event="ping"), timeout=5)  # fmt: skip
    assert reply.status_code == 200
    metrics = httpx.get(f"{service.url}/metrics", timeout=5).text
    assert 'syncd_webhooks_total{outcome="ignored",source="gh"} 1.0' in metrics


def test_oversized_body_gets_413(service: Running) -> None:
    body = b"{" + b" " * (1 << 20) + b"}"
    reply = httpx.post(f"{service.url}/webhooks/gh", content=body,
                       headers=github_headers(body), timeout=10)  # fmt: skip
    assert reply.status_code == 413


def test_unknown_source_gets_404(service: Running) -> None:
    assert httpx.post(f"{service.url}/webhooks/nope", content=b"{}", timeout=5).status_code == 404


def test_slack_url_verification_stale_and_replayed_requests(service: Running) -> None:
    url = f"{service.url}/webhooks/chat"
    challenge = json.dumps({"type": "url_verification", "challenge": "c-123"}).encode()
    now = int(time.time())
    answer = httpx.post(url, content=challenge, headers=slack_headers(challenge, now), timeout=5)
    assert answer.status_code == 200 and answer.json() == {"challenge": "c-123"}

    event = json.dumps({"type": "event_callback", "event": {"type": "message"}}).encode()
    stale = httpx.post(url, content=event, headers=slack_headers(event, now - 600), timeout=5)
    assert stale.status_code == 401
    fresh = slack_headers(event, now)
    assert httpx.post(url, content=event, headers=fresh, timeout=5).status_code == 200
    replay = httpx.post(url, content=event, headers=fresh, timeout=5)
    assert replay.status_code == 401 and "replay" in replay.json()["error"]


def test_slack_webhook_from_the_sandbox_brings_a_message_in(
    service: Running, sandbox: Sandbox
) -> None:
    sandbox.webhooks.configure("slack", f"{service.url}/webhooks/chat", SLACK_SECRET)
    try:
        sandbox.world.add_slack_message(CHANNEL, "Badge reader at door 3 is dead", user="bob")
        assert sandbox.webhooks.wait()
    finally:
        sandbox.webhooks.disable("slack")
    assert [d.status for d in sandbox.webhooks.of("slack")] == [200]
    until(lambda: len(ledger_keys(service.config, "chat")) == 2, "the Slack message",
          service.process)  # fmt: skip


# --- services of their own ----------------------------------------------------------------


def test_poll_brings_a_change_into_the_ledger(tmp_path: Path) -> None:
    with Sandbox(make_world()) as sandbox:
        config = write_config(tmp_path / "syncd.toml", sandbox, port=free_port(), poll="1s")
        running = start(config)
        try:
            sandbox.world.edit_gh_issue("acme/infra", 3, title="Polled in")
            until(lambda: task_title(config, "acme/infra#3") == "Polled in", "the next poll",
                  running.process)  # fmt: skip
        finally:
            assert running.stop() < 10


def test_sigterm_mid_sync_exits_promptly_and_loses_nothing(tmp_path: Path) -> None:
    with Sandbox(make_world(120)) as sandbox:
        sandbox.faults.delay("github", 0.25, "/repos/*/issues")  # ~12 slow pages
        config = write_config(
            tmp_path / "syncd.toml", sandbox, port=free_port(), poll="1h", per_page=10
        )
        running = start(config, wait_healthy=False)
        until(lambda: running.logged("page committed"), "the first page", running.process)
        assert running.stop() < 10
        assert running.process.returncode == 0
        assert running.logged("shutdown: stopped after committing the page in hand")
        partial = ledger_keys(config)
        assert 0 < len(partial) < 120

        sandbox.faults.clear()
        again = start(config)
        try:
            keys = ledger_keys(config)
            assert sorted(keys) == sorted(f"acme/infra#{n}" for n in range(1, 121))
        finally:
            assert again.stop() < 10


def test_sighup_with_a_broken_config_keeps_the_running_one(tmp_path: Path) -> None:
    with Sandbox(make_world()) as sandbox:
        config = write_config(tmp_path / "syncd.toml", sandbox, port=free_port(), poll="1h")
        running = start(config)
        try:
            good = config.read_text()
            config.write_text(good + "\n[sources.broken]\nkind = 'gitlab'\n")
            running.process.send_signal(signal.SIGHUP)
            until(lambda: running.logged("config reload refused; the running config stays"),
                  "the refusal", running.process)  # fmt: skip
            assert running.process.poll() is None
            assert running.health()["status"] == "ok"

            config.write_text(good.replace('poll_interval = "1h"', 'poll_interval = "1s"'))
            running.process.send_signal(signal.SIGHUP)
            until(lambda: running.logged("config reloaded"), "the reload", running.process)
            sandbox.world.edit_gh_issue("acme/infra", 4, title="After the reload")
            until(lambda: task_title(config, "acme/infra#4") == "After the reload",
                  "a poll at the new interval", running.process)  # fmt: skip
        finally:
            assert running.stop() < 10


# --- the poll policy, in process with a frozen clock ---------------------------------------


START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_scheduler_jitters_backs_off_and_caps() -> None:
    scheduler = Scheduler({"gh": timedelta(minutes=5)}, START, rng=random.Random(7))
    assert scheduler.due(START) == ["gh"]
    next_poll = scheduler.succeeded("gh", START)
    assert next_poll is not None
    assert timedelta(minutes=4.5) <= next_poll - START <= timedelta(minutes=5.5)
    assert scheduler.poke("gh", START) and scheduler.due(START) == ["gh"]

    delays = []
    for _ in range(10):
        retry = scheduler.failed("gh", START)
        assert retry is not None
        delays.append((retry - START).total_seconds())
    assert 4.5 <= delays[0] <= 5.5 and 9 <= delays[1] <= 11 and 18 <= delays[2] <= 22
    assert max(delays) <= 15 * 60 * 1.1  # capped
    assert not scheduler.poke("gh", START), "a webhook must not cut a backoff short"
    scheduler.succeeded("gh", START)
    assert scheduler.failures("gh") == 0


def test_failing_source_backs_off_and_its_tasks_stay(tmp_path: Path) -> None:
    with Sandbox(make_world()) as sandbox:
        settings = load_config(
            write_config(tmp_path / "syncd.toml", sandbox, port=free_port(), poll="5m")
        )
        ledger = Ledger.open(settings.ledger.url)
        clock = FrozenClock(START)
        service = Service(settings, compile_rules(settings.rules), ledger, clock)
        try:
            first = service.cycle()
            assert first is not None and not first.failed
            sandbox.faults.error("github", status=401)
            clock.advance(timedelta(minutes=6))
            failed = service.cycle()
            assert failed is not None and failed.sources["gh"].failed
            assert len(list(ledger.tasks(sources=["gh"]))) == 4
            assert service.health()["sources"]["gh"]["consecutive_failures"] == 1
            clock.advance(timedelta(seconds=2))
            assert service.cycle() is None, "still backing off"
            sandbox.faults.clear()
            clock.advance(timedelta(seconds=10))
            recovered = service.cycle()
            assert recovered is not None and not recovered.failed
            assert service.health()["status"] == "ok"
        finally:
            ledger.close()


def test_a_time_based_check_coming_due_triggers_evaluation(tmp_path: Path) -> None:
    with Sandbox(make_world()) as sandbox:
        config = write_config(tmp_path / "syncd.toml", sandbox, port=free_port(), poll="30d")
        config.write_text(
            config.read_text() + '\n[[rules]]\nid = "stale"\nkind = "stale"\ndays = 3\n'
        )
        settings = load_config(config)
        ledger = Ledger.open(settings.ledger.url)
        clock = FrozenClock(datetime.now(UTC))
        service = Service(settings, compile_rules(settings.rules), ledger, clock)
        try:
            first = service.cycle()
            assert first is not None and first.evaluation.rules["stale"].open == 0
            assert service.cycle() is None, "nothing due yet"
            clock.advance(timedelta(days=1, hours=1))  # issue 1 goes stale 3 days after -2d
            later = service.cycle()
            assert later is not None and later.sources == {}, "no poll, only the rule check"
            assert later.evaluation.came_due >= 1
            assert later.evaluation.rules["stale"].open == 1
        finally:
            ledger.close()


# --- replicas on PostgreSQL -----------------------------------------------------------------


def outbox_states(url: str) -> list[str]:
    from syncd.ledger.models import OutboxItem

    ledger = Ledger.open(url, auto_upgrade=False)
    try:
        with ledger.sessions() as session:
            return [row.state for row in session.query(OutboxItem).all()]
    finally:
        ledger.close()


@pytest.mark.postgres
def test_three_replicas_store_each_item_once_and_post_each_follow_up_once(
    tmp_path: Path, postgres_url: str
) -> None:
    with Sandbox(make_world(40)) as sandbox:
        replicas = []
        for n in range(3):
            config = write_config(
                tmp_path / f"replica{n}.toml", sandbox, port=free_port(), poll="1s",
                ledger=postgres_url, per_page=10,
            )  # fmt: skip
            replicas.append(start(config, wait_healthy=False))
        try:
            config = replicas[0].config

            def settled(issues: int) -> bool:
                # Issue 1 has an owner; every other one gets one nudge.
                states = outbox_states(postgres_url)
                return len(ledger_keys(config)) == issues and states == ["sent"] * (issues - 1)

            until(lambda: settled(40), "40 tasks and 39 follow-ups", timeout=40)
            replicas[0].process.kill()  # SIGKILL: no chance to clean up
            replicas[0].process.wait()
            for n in range(41, 51):
                sandbox.world.add_gh_issue("acme/infra", f"Late chore {n}", user="bob")
            until(lambda: settled(50), "the late issues after a replica died", timeout=40)
            time.sleep(2)  # a few more polls by the survivors: still nothing twice
            posted = [w.target for w in sandbox.writes.list("github", "issue_comment")]
            assert sorted(posted) == sorted(f"acme/infra#{n}" for n in range(2, 51))
            assert sorted(ledger_keys(config)) == sorted(f"acme/infra#{n}" for n in range(1, 51))
        finally:
            for replica in replicas[1:]:
                assert replica.stop() < 10


def test_a_webhook_during_a_poll_is_not_lost() -> None:
    scheduler = Scheduler({"gh": timedelta(hours=1)}, START, rng=random.Random(1))
    scheduler.started(scheduler.due(START), START)
    scheduler.poke("gh", START + timedelta(seconds=1))  # arrives while the poll runs
    assert scheduler.succeeded("gh", START + timedelta(seconds=2)) == START + timedelta(seconds=2)
    scheduler.started(["gh"], START + timedelta(seconds=2))
    later = scheduler.succeeded("gh", START + timedelta(seconds=3))
    assert later is not None and later > START + timedelta(minutes=50)


def test_a_burst_of_pokes_costs_one_poll_per_spacing() -> None:
    spacing = timedelta(seconds=5)
    scheduler = Scheduler({"gh": timedelta(hours=1)}, START, rng=random.Random(3),
                          webhook_spacing=spacing)  # fmt: skip
    now, polls = START, 0
    poll_ends: datetime | None = None
    for _ in range(60 * 200):  # 200 pokes a second for a minute; each poll takes 0.4 s
        now += timedelta(milliseconds=5)
        scheduler.poke("gh", now)
        if poll_ends is not None and now >= poll_ends:
            scheduler.succeeded("gh", now)
            poll_ends = None
        if poll_ends is None and scheduler.due(now) == ["gh"]:
            scheduler.started(["gh"], now)
            polls += 1
            poll_ends = now + timedelta(milliseconds=400)
    assert 10 <= polls <= 60 / spacing.total_seconds() + 1
    # The last poke is never dropped: a poll is due within one spacing of it.
    if poll_ends is not None:
        scheduler.succeeded("gh", poll_ends)
    next_due = scheduler.next_due()
    assert next_due is not None and next_due <= now + spacing


# --- webhooks ingested directly ------------------------------------------------------------


def captured_github_delivery(sandbox: Sandbox, change: Callable[[], object]) -> bytes:
    """The signed body the sandbox's sender (shaped like GitHub's) posts for one change."""
    sandbox.webhooks.configure("github", "http://127.0.0.1:9/unreachable", GH_SECRET)
    try:
        change()
        assert sandbox.webhooks.wait()
    finally:
        sandbox.webhooks.disable("github")
    return sandbox.webhooks.of("github")[-1].body


def in_process_service(tmp_path: Path, sandbox: Sandbox) -> tuple[Service, Ledger]:
    settings = load_config(write_config(tmp_path / "syncd.toml", sandbox, port=free_port(),
                                        poll="1h"))  # fmt: skip
    ledger = Ledger.open(settings.ledger.url)
    service = Service(settings, compile_rules(settings.rules), ledger, FrozenClock(START))
    first = service.cycle()
    assert first is not None and not first.failed
    return service, ledger


def test_a_webhook_payload_reaches_the_ledger_and_the_rules_without_a_poll(
    tmp_path: Path,
) -> None:
    with Sandbox(make_world()) as sandbox:
        service, ledger = in_process_service(tmp_path, sandbox)
        try:
            body = captured_github_delivery(
                sandbox,
                lambda: sandbox.world.edit_gh_issue(
                    "acme/infra", 2, title="Renewed", assignees=["alice"]
                ),
            )
            requests = sandbox.request_log.count("github")
            assert service.store("gh", "issues", "d-renew", body).result() == "stored"
            batch = service.ingest.drain()
            assert batch.sources["gh"].updated == 1 and not batch.polls
            row = ledger.task_by_key("acme/infra#2", "gh")
            assert row is not None and (row.title, row.owners) == ("Renewed", ["alice"])
            assert sandbox.request_log.count("github") == requests, "no GitHub call at all"
            assert service.scheduler.due(START) == [], "and no poll was asked for"
            # The rules engine saw it: issue 2 has an owner now, so single-owner is resolved.
            report = service.cycle()
            assert report is not None and report.sources == {}, "a follow-up pass, no poll"
            assert report.evaluation.rules["single-owner"].open == 2
            assert ledger.cursor("gh", "acme/infra") is not None
        finally:
            ledger.close()


def test_an_older_delivery_does_not_overwrite_a_newer_state(tmp_path: Path) -> None:
    with Sandbox(make_world()) as sandbox:
        service, ledger = in_process_service(tmp_path, sandbox)
        try:
            body = captured_github_delivery(
                sandbox, lambda: sandbox.world.edit_gh_issue("acme/infra", 3, title="x")
            )
            payload = json.loads(body)
            stamp = datetime.fromisoformat(payload["issue"]["updated_at"].replace("Z", "+00:00"))

            def delivery(title: str, seconds: int) -> bytes:
                later = (stamp + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
                payload["issue"].update(title=title, updated_at=later)
                return json.dumps(payload).encode()

            first, second, third = delivery("First", 1), delivery("Second", 2), delivery("Third", 3)
            service.store("gh", "issues", "d-second", second).result()
            assert service.ingest.drain().sources["gh"].updated == 1
            service.store("gh", "issues", "d-first", first).result()  # arrives late
            assert service.ingest.drain().sources["gh"].stale == 1
            for name, body in (("d-third", third), ("d-first-again", first)):  # one batch
                service.store("gh", "issues", name, body).result()
            service.ingest.drain()
            row = ledger.task_by_key("acme/infra#3", "gh")
            assert row is not None and row.title == "Third"
            # A poll that read the issue before the newest delivery does not undo it either.
            summaries, _ = pull_all(service.settings, ledger, ["gh"], service.clock)
            assert not summaries["gh"].failed
            row = ledger.task_by_key("acme/infra#3", "gh")
            assert row is not None and row.title == "Third"
        finally:
            ledger.close()


def test_a_malformed_payload_is_quarantined_and_answered_2xx(service: Running) -> None:
    body = json.dumps({"action": "opened", "repository": {"full_name": "acme/infra"},
                       "issue": {"id": 777, "number": 77, "state": "open"}}).encode()  # fmt: skip
    reply = httpx.post(f"{service.url}/webhooks/gh", content=body, headers=github_headers(body),
                       timeout=5)  # fmt: skip
    assert reply.status_code == 200

    def quarantined() -> list[str]:
        ledger = Ledger.open(load_config(service.config).ledger.url)
        try:
            return [row.reason for row in ledger.quarantine("gh")]
        finally:
            ledger.close()

    until(lambda: any("title" in reason for reason in quarantined()), "the quarantine row",
          service.process)  # fmt: skip
    assert "acme/infra#77" not in ledger_keys(service.config)


def test_a_burst_of_webhooks_that_need_a_poll_costs_a_bounded_number_of_polls(
    tmp_path: Path,
) -> None:
    with Sandbox(make_world()) as sandbox:
        config = write_config(tmp_path / "syncd.toml", sandbox, port=free_port(), poll="1h")
        config.write_text(config.read_text().replace('poll_interval = "1h"\n',
                                                     'poll_interval = "1h"\nwebhook_poll_spacing = "2s"\n'))  # fmt: skip
        running = start(config)
        try:

            def polls() -> int:
                return sum(1 for e in running.log() if e.get("event") == "poll done")

            before = polls()
            body = json.dumps({"action": "created", "label": {"name": "P1"}}).encode()
            with httpx.Client(timeout=5) as client:
                started = time.monotonic()
                for _ in range(100):  # label events carry no issue: each one asks for a poll
                    reply = client.post(f"{running.url}/webhooks/gh", content=body,
                                        headers=github_headers(body, event="label"))  # fmt: skip
                    assert reply.status_code == 200
                    time.sleep(0.01)
                burst = time.monotonic() - started
            until(lambda: polls() > before, "the first webhook-triggered poll", running.process)
            time.sleep(2 * 2 + 1)  # two spacings: every poll the burst can cause has run
            caused = polls() - before
            assert 1 <= caused <= burst / 2 + 2, f"{caused} polls for a {burst:.1f} s burst"
        finally:
            assert running.stop() < 10
