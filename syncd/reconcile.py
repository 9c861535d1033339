"""One cycle: pull, evaluate the rules, plan, enqueue, gather digests, deliver.

This is the only implementation of the cycle. `syncd reconcile` and `syncd demo`
run it once over the sources asked for, with progress callbacks; `syncd run`
(`syncd.service.loop`) runs it whenever a source is due or a rule check, a held
nudge or a digest comes due, passing the due sources, a between-pages hook that
stops on SIGTERM and a lock that serializes the rules step across threads and
replicas. `--dry-run` stops after the plan and returns it, writing nothing to any
source and nothing to the outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from syncd.clock import Clock
from syncd.config import Settings
from syncd.ledger.repository import Ledger
from syncd.rules.engine import CompiledRule, EvaluationResult, evaluate
from syncd.sync import ProgressCallback, SourceSummary, pull_all
from syncd.writer.digest import compose_digests
from syncd.writer.outbox import DrainResult, WriterFor, drain, enqueue
from syncd.writer.plan import PlannedFollowup, plan_followups


@dataclass
class ReconcileReport:
    sources: dict[str, SourceSummary]
    evaluation: EvaluationResult
    planned: list[PlannedFollowup]
    skipped: int
    enqueued: int = 0
    digests: int = 0  # daily digests gathered in this cycle
    delivery: DrainResult = field(default_factory=DrainResult)
    unmapped: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def failed(self) -> bool:
        return any(summary.failed for summary in self.sources.values())

    def as_json(self) -> dict[str, Any]:
        followups: dict[str, Any] = {
            "planned": len(self.planned),
            "sent": self.delivery.sent + self.delivery.already_delivered,
            "failed": self.delivery.failed,
            "skipped": self.skipped,
            "unconfirmed": self.delivery.unconfirmed,
        }
        if self.dry_run:
            followups["planned"] = [p.as_json() for p in self.planned]
        return {
            "sources": {name: s.as_json() for name, s in self.sources.items()},
            "rules": {rule_id: c.as_json() for rule_id, c in self.evaluation.rules.items()},
            "evaluated": self.evaluation.evaluated,
            "followups": followups,
            "unmapped_identities": self.unmapped,
        }


def reconcile(
    settings: Settings,
    ledger: Ledger,
    names: list[str],
    rules: list[CompiledRule],
    clock: Clock,
    *,
    writer_for: WriterFor | None,
    dry_run: bool = False,
    on_page: ProgressCallback | None = None,
    on_source_done: Callable[[str, SourceSummary], None] | None = None,
    serialized: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> ReconcileReport:
    """Run one cycle over the sources `names` (possibly none: only the rules and the outbox).

    `serialized` guards the steps that read and write every open violation and
    the digest queue (evaluate, plan, enqueue, gather digests): the service
    passes its rules lock, so one thread and one replica at a time run them.
    Delivery needs no such lock: the outbox claims rows with SKIP LOCKED.
    `writer_for=None` (or `dry_run`) stops after the plan.
    """
    summaries, people = pull_all(
        settings, ledger, names, clock, on_page=on_page, on_source_done=on_source_done
    )
    with serialized():
        evaluation = evaluate(ledger, rules, settings.policy, clock.now())
        plan = plan_followups(ledger, rules, settings, people, clock.now())
        report = ReconcileReport(
            sources=summaries,
            evaluation=evaluation,
            planned=plan.planned,
            skipped=plan.skipped,
            unmapped=sorted(people.unmapped),
            dry_run=dry_run,
        )
        if dry_run or writer_for is None:
            return report
        report.enqueued = enqueue(ledger, plan.planned, clock.now())
        # Before the drain, so a digest that comes due goes out in this same cycle.
        report.digests = compose_digests(ledger, settings, clock.now())
    report.delivery = drain(ledger, writer_for, clock.now())
    return report
