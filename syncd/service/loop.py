"""The poll loop of `syncd run`: pull what is due, evaluate, follow up, sleep.

Each cycle is `syncd.reconcile.reconcile`, the one implementation of the cycle
that `syncd reconcile` and `syncd demo` run too, over the sources that are due
(possibly none, when only a time-based rule check, a nudge held for working
hours or a daily digest came due). The loop runs on the main thread; signals
only set flags and wake it. Webhooks whose payload carries the whole item are
ingested by the webhook worker (`syncd.service.ingest`), which also re-evaluates
the tasks they changed and then asks the loop for a follow-up pass (coalesced:
at most one per `webhook_poll_spacing`); other webhooks mark their source due.
Every verified delivery is stored in the ledger's webhook inbox before it is
answered (`syncd.service.inbox`) and processed from there; at start the stored
backlog is processed before the first poll.
Evaluation is serialized between the two threads (and, on PostgreSQL, across
replicas by an advisory lock, which also keeps replicas off each other's polls).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import func, select

from syncd.clock import Clock
from syncd.config import ConfigError, Settings, load_config
from syncd.ledger.models import TaskRow
from syncd.ledger.repository import Ledger
from syncd.logs import get_logger
from syncd.reconcile import ReconcileReport, reconcile
from syncd.rules.engine import (
    CompiledRule,
    RuleConfigError,
    compile_rules,
    evaluate,
    evaluation_context,
)
from syncd.service import alerts
from syncd.service.app import secret_of
from syncd.service.health import Health
from syncd.service.inbox import GroupCommit, Incoming, stored_within
from syncd.service.ingest import BatchResult, WebhookIngest
from syncd.service.locks import NoLocks, SourceLocks
from syncd.service.metrics import Metrics
from syncd.service.schedule import Scheduler
from syncd.sync import SourceSummary
from syncd.writer.digest import next_digest_at
from syncd.writer.outbox import next_held_until
from syncd.writer.registry import writer_registry

# The longest the loop sleeps without looking again: bounds the effect of a clock jump.
MAX_SLEEP = timedelta(seconds=30)
# A cycle that crashed (ledger unreachable, a bug) is retried after this long.
CYCLE_RETRY = timedelta(seconds=10)

RULES_LOCK = "rules"

log = get_logger("syncd.service")


class ShutdownRequested(BaseException):
    """Raised between pages to stop a poll once the page in hand is committed.

    A BaseException so that the connector's `except Exception` lets it through.
    """


def poll_intervals(settings: Settings) -> dict[str, timedelta]:
    default = settings.service.poll_interval
    return {name: source.poll_interval or default for name, source in settings.sources.items()}


class Service:
    def __init__(
        self,
        settings: Settings,
        rules: list[CompiledRule],
        ledger: Ledger,
        clock: Clock,
        *,
        config_path: Path | None = None,
        scheduler: Scheduler | None = None,
        locks: SourceLocks | None = None,
    ) -> None:
        self.settings, self.rules, self.ledger, self.clock = settings, rules, ledger, clock
        self.config_path = config_path
        now = clock.now()
        self.scheduler = scheduler or Scheduler(
            poll_intervals(settings), now, webhook_spacing=settings.service.webhook_poll_spacing
        )
        self.locks: SourceLocks = locks or NoLocks()
        self.health_state = Health(list(settings.sources), now)
        self.metrics_state = Metrics()
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self._reload_wanted = threading.Event()
        self._next_check: datetime | None = None
        # When a nudge held for working hours or a daily digest next comes due.
        self._next_delivery: datetime | None = None
        self.on_stop: Callable[[], None] | None = None
        # Evaluation runs on the loop and on the webhook worker, one at a time.
        self._rules_lock = threading.Lock()
        self._followups_lock = threading.Lock()
        self._followups_due: datetime | None = None
        self._last_followups: datetime | None = None
        self.ingest = WebhookIngest(
            ledger, clock, lambda: self.settings,
            on_poll=self.poke, on_ingested=self._after_webhooks,
        )  # fmt: skip
        self.inbox = GroupCommit(ledger, clock, on_stored=self.ingest.notify)

    # --- what the web app and the signal handlers call (any thread) -------------------

    def webhook_secret(self, source: str) -> tuple[str, str] | None:
        return secret_of(self.settings, source)

    async def accept(self, source: str, event: str, delivery_id: str, body: bytes) -> str:
        """Store a verified, relevant delivery; returns once it is committed.

        "stored" or "duplicate" (a redelivery: stored before, answered 2xx again);
        raises `InboxUnavailable` when it could not be stored (answered 503).
        """
        return await stored_within(self.store(source, event, delivery_id, body))

    def store(self, source: str, event: str, delivery_id: str, body: bytes) -> Future[str]:
        """Hand a delivery to the inbox's group commit (any thread)."""
        return self.inbox.submit(Incoming(source, delivery_id, event, body))

    def poke(self, source: str) -> None:
        if self.scheduler.poke(source, self.clock.now()):
            self.wake.set()

    def now_timestamp(self) -> float:
        return self.clock.now().timestamp()

    def health(self) -> dict[str, Any]:
        return self.health_state.report(self.clock.now())

    def metrics(self) -> bytes:
        return self.metrics_state.render(self.health_state.lags(self.clock.now()))

    def count_webhook(self, source: str, outcome: str) -> None:
        self.metrics_state.webhooks.labels(source, outcome).inc()

    def request_stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.on_stop is not None:
            self.on_stop()

    def request_reload(self) -> None:
        self._reload_wanted.set()
        self.wake.set()

    # --- the loop (main thread) ----------------------------------------------------------

    def run(self) -> None:
        log.info("service loop started", sources=list(self.settings.sources))
        try:
            self.ingest.backlog()  # what was stored before a crash or a stop comes first
        except Exception:  # the ledger is unreachable: the worker retries with backoff
            log.exception("the stored webhook backlog could not be processed yet")
        self.ingest.start()
        try:
            while not self.stopping.is_set():
                if self._reload_wanted.is_set():
                    self.reload()
                self.cycle()
                self._sleep()
        finally:
            self.ingest.stop()
        log.info("service loop stopped")

    def _sleep(self) -> None:
        now = self.clock.now()
        with self._followups_lock:
            followups = self._followups_due
        candidates = (self.scheduler.next_due(), self._next_check, self._next_delivery, followups)
        moments = [m for m in candidates if m is not None]
        wait = min([m - now for m in moments] + [MAX_SLEEP])
        self.wake.wait(max(wait.total_seconds(), 0.0))
        self.wake.clear()

    def cycle(self) -> ReconcileReport | None:
        """Poll the due sources, or run the cycle without a poll when a rule check, a held
        nudge or a digest came due (or the webhook worker asked for a follow-up pass)."""
        now = self.clock.now()
        due = self.scheduler.due(now)
        check_due = any(m is not None and m <= now for m in (self._next_check, self._next_delivery))
        check_due = self._take_followups(now) or check_due
        if not due and not check_due:
            return None
        run_id = uuid.uuid4().hex[:12]
        with structlog.contextvars.bound_contextvars(run_id=run_id):
            names = self.locks.acquire(due)
            self.scheduler.started(names, now)
            for busy in set(due) - set(names):
                self.scheduler.postpone(busy, now)  # another replica is polling it
            try:
                return self._reconcile(names, check_due)
            finally:
                self.locks.release(names)

    def _reconcile(self, names: list[str], check_due: bool) -> ReconcileReport | None:
        if not names and not check_due:
            return None
        finished: set[str] = set()

        def on_source_done(name: str, summary: SourceSummary) -> None:
            finished.add(name)
            self._record_source(name, summary)

        try:
            report = self._pull_evaluate_deliver(names, on_source_done)
        except ShutdownRequested:
            log.info("shutdown: stopped after committing the page in hand")
            return None
        except Exception as error:  # keep serving; the sources that did not finish back off
            log.exception("cycle failed")
            for name in set(names) - finished:
                self._record_source(name, SourceSummary(failed=True, error=repr(error)))
            self._next_check = self.clock.now() + CYCLE_RETRY
            return None
        self._after(report)
        return report

    def _pull_evaluate_deliver(
        self, names: list[str], on_source_done: Callable[[str, SourceSummary], None]
    ) -> ReconcileReport:
        """The shared cycle, with this service's hooks.

        Polls of different sources may run on different replicas at once, but
        evaluation and planning read and write every open violation, so one
        replica at a time does them; delivery is safe in parallel (SKIP LOCKED).
        """
        settings = self.settings
        with writer_registry(settings) as writer_for:
            return reconcile(
                settings, self.ledger, names, self.rules, self.clock, writer_for=writer_for,
                on_page=self._between_pages, on_source_done=on_source_done,
                serialized=self._rules_turn,
            )  # fmt: skip

    @contextmanager
    def _rules_turn(self) -> Iterator[None]:
        """This thread's and this replica's turn at the rules (see `_pull_evaluate_deliver`)."""
        with self._rules_lock, self.locks.exclusive(RULES_LOCK):
            yield

    # --- after the webhook worker committed a batch (worker thread) ----------------------

    def _after_webhooks(self, batch: BatchResult) -> None:
        """Re-evaluate what the batch changed, then ask the loop for a follow-up pass."""
        for name, counts in batch.sources.items():
            for outcome in ("new", "updated", "unchanged", "stale", "quarantined"):
                self.metrics_state.webhook_items.labels(name, outcome).inc(getattr(counts, outcome))
        if not batch.changed_task_ids:
            return
        settings, rules = self.settings, self.rules
        with self._rules_turn():
            evaluation = evaluate(self.ledger, rules, settings.policy, self.clock.now())
        self.metrics_state.observe_evaluation(evaluation)
        if any(rule.followup is not None for rule in rules):
            self._request_followups()

    def _request_followups(self) -> None:
        """Plan and deliver follow-ups soon: now, or a spacing after the last such pass."""
        now = self.clock.now()
        spacing = self.settings.service.webhook_poll_spacing
        with self._followups_lock:
            if self._followups_due is not None:
                return
            last = self._last_followups
            self._followups_due = now if last is None else max(now, last + spacing)
        self.wake.set()

    def _take_followups(self, now: datetime) -> bool:
        with self._followups_lock:
            if self._followups_due is None or self._followups_due > now:
                return False
            self._followups_due, self._last_followups = None, now
            return True

    def _between_pages(self, _source: str, _fetched: int) -> None:
        # Called after each committed page: the natural place to stop on SIGTERM.
        if self.stopping.is_set():
            raise ShutdownRequested

    def _record_source(self, name: str, summary: SourceSummary) -> None:
        now = self.clock.now()
        self.metrics_state.observe_source(name, summary)
        if summary.failed:
            retry = self.scheduler.failed(name, now)
            self.health_state.failed(name, now, summary.error or "failed", retry)
            log.warning(
                "poll failed",
                source=name,
                error=summary.error,
                retry_at=str(retry),
                failures=self.scheduler.failures(name),
            )
        else:
            next_poll = self.scheduler.succeeded(name, now)
            self.health_state.succeeded(name, now, next_poll)
            log.info(
                "poll done",
                source=name,
                fetched=summary.fetched,
                new=summary.new,
                updated=summary.updated,
                gone=summary.gone,
                seconds=round(summary.seconds, 3),
                next_poll=str(next_poll),
            )
        failures = self.scheduler.failures(name)  # 0 after a success
        alerts.observe_source(self.ledger, self.settings, name, summary, failures, now)

    def _after(self, report: ReconcileReport) -> None:
        self.metrics_state.observe_evaluation(report.evaluation)
        self.metrics_state.observe_delivery(report.delivery)
        now = self.clock.now()
        self._next_check = self._next_rule_check(now)
        self._next_delivery = self._next_delivery_moment(now)
        log.info(
            "cycle done",
            sources=list(report.sources),
            evaluated=report.evaluation.evaluated,
            came_due=report.evaluation.came_due,
            open_violations=sum(c.open for c in report.evaluation.rules.values()),
            followups_enqueued=report.enqueued,
            followups_sent=report.delivery.sent,
            followups_failed=report.delivery.failed,
            digests=report.digests,
            next_rule_check=str(self._next_check),
            next_delivery=str(self._next_delivery),
        )

    def _next_delivery_moment(self, now: datetime) -> datetime | None:
        """When a held nudge or a digest comes due: the loop wakes then, not only after polls."""
        held = next_held_until(self.ledger, now)
        digest = next_digest_at(self.ledger, self.settings, now)
        moments = [m for m in (held, digest) if m is not None]
        if not moments:
            return None
        # A digest the cycle just failed to gather must not make the loop spin.
        return max(min(moments), now + CYCLE_RETRY) if min(moments) <= now else min(moments)

    def _next_rule_check(self, now: datetime) -> datetime | None:
        """The earliest time-based check still ahead (a stale window closing, a due date)."""
        query = select(func.min(TaskRow.next_check_at)).where(
            TaskRow.gone_at.is_(None), TaskRow.next_check_at > now
        )
        with self.ledger.sessions() as session:
            moment: datetime | None = session.scalar(query)
        if moment is not None and moment.tzinfo is None:
            moment = moment.replace(tzinfo=now.tzinfo)  # SQLite hands back naive UTC
        return moment

    # --- SIGHUP ----------------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the config file; a bad one is refused and the running one kept."""
        self._reload_wanted.clear()
        try:
            settings = load_config(self.config_path)
            rules = compile_rules(settings.rules)
            evaluation_context(settings.policy, self.clock.now())
        except (ConfigError, RuleConfigError) as error:
            log.error("config reload refused; the running config stays", error=str(error))
            return False
        settings = self._keep_restart_only_keys(settings)
        self.settings, self.rules = settings, rules
        self.scheduler.configure(poll_intervals(settings), self.clock.now())
        self.scheduler.webhook_spacing = settings.service.webhook_poll_spacing
        self.health_state.configure(list(settings.sources))
        log.info("config reloaded", sources=list(settings.sources))
        self.wake.set()
        return True

    def _keep_restart_only_keys(self, settings: Settings) -> Settings:
        # The ledger connection and the listening socket are opened once, at start.
        changed = [
            key
            for key, old, new in (
                ("ledger.url", self.settings.ledger.url, settings.ledger.url),
                ("service.listen", self.settings.service.listen, settings.service.listen),
            )
            if old != new
        ]
        if not changed:
            return settings
        log.warning("these keys take effect only after a restart", keys=changed)
        service = settings.service.model_copy(update={"listen": self.settings.service.listen})
        return settings.model_copy(update={"ledger": self.settings.ledger, "service": service})
