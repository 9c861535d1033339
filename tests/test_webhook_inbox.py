"""The durable webhook intake: stored before the 2xx, deduplicated, processed from the store.

The service runs in process with its real HTTP server on a free loopback port,
on SQLite and on PostgreSQL; its ingest worker is not started unless a test
says so, so a test sees exactly what was stored and decides when it is processed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from inbox_support import REPO, GitHubDelivery, issue_opened, write_config
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from syncd.clock import Clock, FrozenClock, SystemClock
from syncd.config import load_config
from syncd.ledger.models import WebhookDelivery
from syncd.ledger.repository import Ledger
from syncd.rules.engine import compile_rules
from syncd.service import inbox, verify
from syncd.service import ingest as ingest_module
from syncd.service.ledger import open_ledger
from syncd.service.loop import Service
from syncd.service.runner import bind, start_http

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
UNREACHABLE = "http://127.0.0.1:9"  # polls fail fast: only webhooks bring anything in


# One client for all requests: a new httpx client per request costs ~80 ms of TLS set-up.
CLIENT = httpx.Client(timeout=10)


@dataclass
class Served:
    service: Service
    ledger: Ledger
    url: str

    def post(self, delivery: GitHubDelivery) -> httpx.Response:
        return CLIENT.post(f"{self.url}/webhooks/gh", content=delivery.body,
                           headers=delivery.headers())  # fmt: skip

    def rows(self) -> list[WebhookDelivery]:
        with self.ledger.sessions() as session:
            return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))

    def title(self, key: str) -> str | None:
        row = self.ledger.task_by_key(key, "gh")
        return row.title if row else None


def make_service(tmp_path: Path, url: str, clock: Clock | None = None) -> Service:
    config = write_config(tmp_path / f"syncd-{time.monotonic_ns()}.toml", url, "127.0.0.1:0",
                          UNREACHABLE)  # fmt: skip
    settings = load_config(config)
    return Service(settings, compile_rules(settings.rules), open_ledger(url),
                   clock or FrozenClock(START), config_path=config)  # fmt: skip


def serve(service: Service) -> tuple[Served, Any]:
    server, thread = start_http(service, bind("127.0.0.1:0"))
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    served = Served(service, service.ledger, f"http://{host}:{port}")

    def close() -> None:
        server.should_exit = True
        thread.join(5)
        service.ledger.close()

    return served, close


@pytest.fixture
def served(tmp_path: Path, ledger_url: str) -> Iterator[Served]:
    running, close = serve(make_service(tmp_path, ledger_url))
    yield running
    close()


# --- stored before the 2xx -----------------------------------------------------------------


class WriteLock:
    """Another connection holding the inbox's write lock, so that no insert can commit."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._release = threading.Event()
        self._held = threading.Event()
        self._thread = threading.Thread(target=self._hold, daemon=True)

    def __enter__(self) -> WriteLock:
        self._thread.start()
        assert self._held.wait(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._release.set()
        self._thread.join(10)

    def _hold(self) -> None:
        if self.url.startswith("sqlite"):
            connection = sqlite3.connect(make_url(self.url).database or "", isolation_level=None)
            connection.execute("BEGIN IMMEDIATE")
            self._held.set()
            self._release.wait(30)
            connection.execute("ROLLBACK")
            connection.close()
            return
        engine = create_engine(self.url)
        with engine.begin() as connection:
            connection.execute(text("LOCK TABLE webhook_inbox IN EXCLUSIVE MODE"))
            self._held.set()
            self._release.wait(30)
        engine.dispose()


def test_a_delivery_is_answered_only_once_it_is_committed(served: Served, ledger_url: str) -> None:
    delivery = issue_opened(1)
    with ThreadPoolExecutor(1) as pool:
        with WriteLock(ledger_url):
            answer = pool.submit(served.post, delivery)
            time.sleep(1.0)
            assert not answer.done(), "answered while the delivery could not be committed"
            assert served.rows() == []
        assert answer.result().status_code == 200
    # The answer came after the commit: another connection sees the row at once.
    assert inbox.is_stored(served.ledger, [("gh", delivery.delivery_id)])
    (row,) = served.rows()
    assert (row.event, row.state, bytes(row.body)) == ("issues", "pending", delivery.body)
    assert served.service.ingest.drain().sources["gh"].new == 1
    assert served.title(delivery.key) == delivery.title
    assert [row.state for row in served.rows()] == ["done"]


def test_a_redelivery_is_answered_2xx_stored_once_and_processed_once(served: Served) -> None:
    delivery = issue_opened(2)
    assert [served.post(delivery).status_code for _ in range(3)] == [200, 200, 200]
    assert len(served.rows()) == 1
    first = served.service.ingest.drain()
    assert (first.deliveries, first.sources["gh"].new) == (1, 1)
    # Redelivered after it was processed (GitHub's "Redeliver" button): still only once.
    assert served.post(delivery).status_code == 200
    assert served.service.ingest.drain().deliveries == 0
    assert len(served.rows()) == 1
    metrics = CLIENT.get(f"{served.url}/metrics").text
    assert 'syncd_webhooks_total{outcome="accepted",source="gh"} 1.0' in metrics
    assert 'syncd_webhooks_total{outcome="duplicate",source="gh"} 3.0' in metrics


def test_a_burst_is_stored_in_group_commits_and_each_delivery_once(served: Served) -> None:
    deliveries = [issue_opened(n) for n in range(100, 400)]
    with ThreadPoolExecutor(32) as pool:
        statuses = list(pool.map(lambda d: served.post(d).status_code, deliveries))
    assert statuses == [200] * len(deliveries)
    assert len(served.rows()) == len(deliveries)
    result = served.service.ingest.drain()
    assert (result.deliveries, result.sources["gh"].new) == (300, 300)
    assert all(served.title(d.key) == d.title for d in deliveries[::37])


def test_a_malformed_payload_is_stored_then_quarantined(served: Served) -> None:
    body = json.dumps({"action": "opened", "repository": {"full_name": REPO},
                       "issue": {"id": 7, "number": 7, "state": "open"}}).encode()  # fmt: skip
    malformed = GitHubDelivery(7, "", body, "malformed-1")
    assert served.post(malformed).status_code == 200
    assert [row.state for row in served.rows()] == ["pending"]
    result = served.service.ingest.drain()
    assert result.sources["gh"].quarantined == 1 and result.polls == {"gh"}
    assert [row.state for row in served.rows()] == ["done"]
    assert any("title" in row.reason for row in served.ledger.quarantine("gh"))


# --- 503 when it cannot be stored ------------------------------------------------------------


def read_only_ledger(url: str) -> Ledger:
    if url.startswith("sqlite"):
        database = make_url(url).database
        return Ledger(create_engine(f"sqlite:///file:{database}?mode=ro&uri=true"))
    options = {"options": "-c default_transaction_read_only=on"}
    return Ledger(create_engine(url, connect_args=options))


def test_a_delivery_that_cannot_be_stored_gets_503_and_its_retry_is_taken(
    tmp_path: Path, ledger_url: str
) -> None:
    writable = make_service(tmp_path, ledger_url)  # migrates the ledger
    settings = writable.settings
    read_only = Service(settings, compile_rules(settings.rules), read_only_ledger(ledger_url),
                        FrozenClock(START))  # fmt: skip
    refusing, close_refusing = serve(read_only)
    delivery = issue_opened(3)
    try:
        answer = refusing.post(delivery)
        assert answer.status_code == 503
        assert answer.headers["retry-after"].isdigit()
        metrics = CLIENT.get(f"{refusing.url}/metrics").text
        assert 'syncd_webhooks_total{outcome="unavailable",source="gh"} 1.0' in metrics
    finally:
        close_refusing()
    accepting, close_accepting = serve(writable)
    try:
        assert accepting.rows() == [], "nothing was stored by the refused attempt"
        assert accepting.post(delivery).status_code == 200  # the sender's retry
        assert accepting.service.ingest.drain().sources["gh"].new == 1
    finally:
        close_accepting()


def test_the_writer_refuses_once_too_many_deliveries_wait(sqlite_url: str) -> None:
    ledger = open_ledger(sqlite_url)
    try:
        writer = inbox.GroupCommit(ledger, SystemClock(), on_stored=lambda: None, max_waiting=0)
        refused = writer.submit(inbox.Incoming("gh", "d-1", "issues", b"{}"))
        with pytest.raises(inbox.InboxUnavailable, match="waiting"):
            refused.result(timeout=1)
        assert inbox.pending_count(ledger) == 0
    finally:
        ledger.close()


# --- processing from the store -----------------------------------------------------------------


def test_the_stored_backlog_is_processed_before_the_first_poll(
    tmp_path: Path, ledger_url: str
) -> None:
    crashed = make_service(tmp_path, ledger_url)
    deliveries = [issue_opened(n) for n in range(10, 15)]
    for delivery in deliveries:
        crashed.store("gh", "issues", delivery.delivery_id, delivery.body).result(timeout=10)
    crashed.ledger.close()  # it died before processing anything

    restarted = make_service(tmp_path, ledger_url, clock=SystemClock())
    seen_at_first_cycle: list[list[str]] = []
    cycle = restarted.cycle

    def first_cycle() -> Any:
        if not seen_at_first_cycle:
            seen_at_first_cycle.append(sorted(t.key for t in restarted.ledger.tasks()))
            restarted.request_stop()
        return cycle()

    restarted.cycle = first_cycle  # type: ignore[method-assign]
    runner = threading.Thread(target=restarted.run)
    runner.start()
    runner.join(30)
    try:
        assert not runner.is_alive()
        assert seen_at_first_cycle == [sorted(d.key for d in deliveries)]
        assert inbox.pending_count(restarted.ledger) == 0
    finally:
        restarted.ledger.close()


def test_the_worker_processes_what_the_handler_stored(served: Served) -> None:
    served.service.ingest.start()
    try:
        delivery = issue_opened(20)
        assert served.post(delivery).status_code == 200
        deadline = time.monotonic() + 10
        while served.title(delivery.key) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert served.title(delivery.key) == delivery.title
    finally:
        served.service.ingest.stop()
    assert [row.state for row in served.rows()] == ["done"]


def test_a_failing_delivery_is_isolated_retried_and_given_up(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = served.ledger
    ingest_page_in = ledger.ingest_page_in

    def fragile(session: Any, source: str, tasks: Any, **kw: Any) -> Any:
        if any("poison" in task.title for task in tasks):
            raise RuntimeError("a bug this payload triggers")
        return ingest_page_in(session, source, tasks, **kw)

    monkeypatch.setattr(ledger, "ingest_page_in", fragile)
    good = [issue_opened(30), issue_opened(31)]
    poison = issue_opened(32, "poison pill")
    for delivery in (good[0], poison, good[1]):
        assert served.post(delivery).status_code == 200
    result = served.service.ingest.drain()
    assert result.sources["gh"].new == 2 and "gh" in result.polls
    assert all(served.title(d.key) == d.title for d in good)
    states = {bytes(row.body): (row.state, row.attempts) for row in served.rows()}
    assert states[poison.body] == ("failed", ingest_module.MAX_ATTEMPTS)
    assert states[good[0].body] == states[good[1].body] == ("done", 0)


def test_processed_deliveries_are_pruned_after_the_retention(
    tmp_path: Path, ledger_url: str
) -> None:
    clock = FrozenClock(START)
    service = make_service(tmp_path, ledger_url, clock=clock)
    try:
        old = issue_opened(40)
        service.store("gh", "issues", old.delivery_id, old.body).result(timeout=10)
        service.ingest.drain()
        clock.advance(inbox.RETENTION - timedelta(hours=1))
        recent = issue_opened(41)
        service.store("gh", "issues", recent.delivery_id, recent.body).result(timeout=10)
        service.ingest.drain()
        waiting = issue_opened(42)
        service.store("gh", "issues", waiting.delivery_id, waiting.body).result(timeout=10)
        clock.advance(timedelta(hours=2))
        assert inbox.prune(service.ledger, clock.now()) == 1
        left = inbox.is_stored(service.ledger, [("gh", d.delivery_id) for d in (old, recent, waiting)])
        assert left == {("gh", recent.delivery_id), ("gh", waiting.delivery_id)}
    finally:
        service.ledger.close()


# --- replicas sharing PostgreSQL -----------------------------------------------------------------


@pytest.mark.postgres
def test_replicas_store_a_redelivery_once_and_process_each_delivery_once(
    tmp_path: Path, postgres_url: str
) -> None:
    replicas = [make_service(tmp_path, postgres_url) for _ in range(2)]
    try:
        deliveries = [issue_opened(n) for n in range(500, 560)]
        with ThreadPoolExecutor(8) as pool:  # every delivery reaches both replicas at once
            outcomes = list(pool.map(
                lambda job: replicas[job[0]].store("gh", "issues", job[1].delivery_id,
                                                   job[1].body).result(timeout=20),
                [(r, d) for d in deliveries for r in (0, 1)],
            ))  # fmt: skip
        assert outcomes.count(inbox.STORED) == 60 and outcomes.count(inbox.DUPLICATE) == 60
        with ThreadPoolExecutor(2) as pool:
            drained = list(pool.map(lambda r: r.ingest.drain(), replicas))
        assert sum(result.deliveries for result in drained) == 60
        assert sum(r.sources["gh"].new for r in drained if "gh" in r.sources) == 60
        assert inbox.pending_count(replicas[0].ledger) == 0
    finally:
        for replica in replicas:
            replica.ledger.close()


# --- the sender's delivery id ------------------------------------------------------------------


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_each_sender_names_its_delivery_and_a_hash_stands_in_when_it_does_not() -> None:
    body = b'{"webhookEvent": "jira:issue_updated", "timestamp": 1}'
    jira = {"x-hub-signature": sign("s", body), "x-atlassian-webhook-identifier": "jira-42"}
    assert verify.jira("s", jira, body).delivery_id == "jira-42"
    del jira["x-atlassian-webhook-identifier"]
    hashed = verify.jira("s", jira, body).delivery_id
    assert hashed == "sha256:" + hashlib.sha256(body).hexdigest()

    github = {"x-hub-signature-256": sign("s", b"{}"), "x-github-event": "issues",
              "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"}  # fmt: skip
    assert verify.github("s", github, b"{}").delivery_id == github["x-github-delivery"]

    now = int(time.time())
    event = json.dumps({"type": "event_callback", "event_id": "Ev0PV52K21",
                        "event": {"type": "message"}}).encode()  # fmt: skip
    base = f"v0:{now}:".encode() + event
    slack = {"x-slack-request-timestamp": str(now),
             "x-slack-signature": "v0=" + hmac.new(b"s", base, hashlib.sha256).hexdigest()}  # fmt: skip
    verdict = verify.slack("s", slack, event, float(now), verify.ReplayGuard())
    assert verdict.delivery_id == "Ev0PV52K21"
