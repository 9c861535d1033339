"""What the reports read from the ledger, loaded once per run.

Tasks are loaded as rule views (`RuleStore.load_all`) so that linked items of the
same work in other sources are already resolved; violations are loaded whole,
resolved ones included, because the compliance trend is computed from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import select

from syncd.ledger.models import Violation
from syncd.ledger.repository import Ledger
from syncd.rules.engine import CompiledRule
from syncd.rules.store import RuleStore
from syncd.rules.view import TaskView

OPEN_STATUSES = frozenset({"open", "in_progress", "blocked"})


@dataclass(frozen=True, slots=True)
class ViolationRecord:
    rule: str
    kind: str
    severity: str
    message: str
    task_id: int
    first_seen: datetime
    resolved_at: datetime | None

    @property
    def open(self) -> bool:
        return self.resolved_at is None

    def open_at(self, moment: datetime) -> bool:
        return self.first_seen <= moment and (self.resolved_at is None or self.resolved_at > moment)


@dataclass(frozen=True)
class Snapshot:
    """The ledger as the reports see it, at one moment."""

    now: datetime
    zone: ZoneInfo
    team_aliases: frozenset[str]
    views: list[TaskView]
    violations: list[ViolationRecord]
    rules: list[CompiledRule]

    @property
    def today(self) -> date:
        return self.now.astimezone(self.zone).date()

    def end_of(self, day: date) -> datetime:
        """The last moment of a local day (the start of the next one, exclusive)."""
        return datetime.combine(day, time.max, self.zone)

    def by_id(self) -> dict[int, TaskView]:
        return {view.id: view for view in self.views}

    def open_violations(self) -> list[ViolationRecord]:
        live = {view.id for view in self.views}
        # A task that vanished from its source keeps its violations until the next
        # evaluation resolves them; a report about live work leaves them out.
        return [v for v in self.violations if v.open and v.task_id in live]


def load_snapshot(
    ledger: Ledger,
    rules: list[CompiledRule],
    *,
    now: datetime,
    zone: ZoneInfo,
    team_aliases: frozenset[str],
) -> Snapshot:
    return Snapshot(
        now=now,
        zone=zone,
        team_aliases=team_aliases,
        views=RuleStore(ledger).load_all(),
        violations=_violations(ledger),
        rules=rules,
    )


def _violations(ledger: Ledger) -> list[ViolationRecord]:
    query = select(
        Violation.rule_id,
        Violation.kind,
        Violation.severity,
        Violation.message,
        Violation.task_id,
        Violation.first_seen,
        Violation.resolved_at,
    ).order_by(Violation.id)
    with ledger.sessions() as session:
        return [ViolationRecord(*row) for row in session.execute(query)]


def is_open(view: TaskView) -> bool:
    return view.status in OPEN_STATUSES
