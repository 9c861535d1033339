"""Prometheus metrics for one service process, on its own registry.

A registry per service (not the global one) keeps tests that start several
services in one process from colliding.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from syncd.rules.engine import EvaluationResult
from syncd.service.api_metrics import ApiCollector
from syncd.sync import SourceSummary
from syncd.writer.outbox import DrainResult

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        r.register(ApiCollector())
        self.items = Counter(
            "syncd_items_synced",
            "Work items read from a source, by outcome in the ledger.",
            ["source", "outcome"],
            registry=r,
        )
        self.polls = Counter(
            "syncd_polls",
            "Polls of a source, by outcome (ok, failed).",
            ["source", "outcome"],
            registry=r,
        )
        self.poll_seconds = Histogram(
            "syncd_poll_duration_seconds",
            "How long one poll of a source took.",
            ["source"],
            registry=r,
        )
        self.webhooks = Counter(
            "syncd_webhooks",
            "Webhook deliveries, by outcome (accepted, ignored, rejected).",
            ["source", "outcome"],
            registry=r,
        )
        self.webhook_items = Counter(
            "syncd_webhook_items",
            "Items ingested straight from webhook payloads, by outcome in the ledger "
            "(new, updated, unchanged, stale, quarantined).",
            ["source", "outcome"],
            registry=r,
        )
        self.open_violations = Gauge(
            "syncd_open_violations",
            "Open violations per rule after the last evaluation.",
            ["rule"],
            registry=r,
        )
        self.followups = Counter(
            "syncd_followups",
            "Follow-up deliveries, by outcome (sent, failed, unconfirmed).",
            ["outcome"],
            registry=r,
        )
        self.lag = Gauge(
            "syncd_sync_lag_seconds",
            "Seconds since the last successful poll of a source.",
            ["source"],
            registry=r,
        )

    def observe_source(self, name: str, summary: SourceSummary) -> None:
        self.polls.labels(name, "failed" if summary.failed else "ok").inc()
        self.poll_seconds.labels(name).observe(summary.seconds)
        for outcome in ("new", "updated", "unchanged", "quarantined"):
            self.items.labels(name, outcome).inc(getattr(summary, outcome))

    def observe_evaluation(self, evaluation: EvaluationResult) -> None:
        for rule_id, counts in evaluation.rules.items():
            self.open_violations.labels(rule_id).set(counts.open)

    def observe_delivery(self, delivery: DrainResult) -> None:
        self.followups.labels("sent").inc(delivery.sent + delivery.already_delivered)
        self.followups.labels("failed").inc(delivery.failed)
        self.followups.labels("unconfirmed").inc(delivery.unconfirmed)

    def render(self, lags: dict[str, float]) -> bytes:
        for name, seconds in lags.items():
            self.lag.labels(name).set(seconds)
        return generate_latest(self.registry)
