"""Point-in-time field histories, source-neutral: what a replay asks "as of t".

A source's reader (e.g. `syncd.connectors.jira.history`) turns its own change log into
`TaskTimeline`s: each field is a `Steps`, the value it took from each moment on. A
change dated exactly t is known at t.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Generic, TypeVar

__all__ = ["BEGINNING", "History", "Steps", "TaskTimeline"]

T = TypeVar("T")
BEGINNING = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Steps(Generic[T]):
    """A field's value over time: `values[i]` holds from `times[i]` (inclusive) on."""

    times: tuple[datetime, ...]
    values: tuple[T, ...]

    def at(self, moment: datetime) -> T:
        index = bisect_right(self.times, moment) - 1
        return self.values[max(index, 0)]

    def changes_until(self, moment: datetime) -> Sequence[tuple[datetime, T]]:
        """Every (time, new value) after the first, up to and including `moment`."""
        stop = bisect_right(self.times, moment)
        return list(zip(self.times[1:stop], self.values[1:stop], strict=True))

    @classmethod
    def constant(cls, value: T) -> Steps[T]:
        return cls((BEGINNING,), (value,))


@dataclass(frozen=True)
class TaskTimeline:
    """One task's history. Statuses are the source's raw names; `History` says which
    are done or in progress."""

    key: str
    team: str | None
    created_at: datetime
    status: Steps[str]
    resolution: Steps[str | None]
    owner: Steps[str | None]
    due: Steps[date | None]
    fix_versions: Steps[frozenset[str]]
    priority_rank: Steps[int | None]
    estimate_hours: Steps[float | None]
    logged_hours: Steps[float | None]
    blocked_by: Steps[frozenset[str]]
    parent: Steps[str | None]
    activity: tuple[datetime, ...]  # sorted: every dated change, comment and worklog
    final_resolution: str | None

    def last_activity(self, moment: datetime) -> datetime | None:
        index = bisect_right(self.activity, moment)
        return self.activity[index - 1] if index else None


@dataclass(frozen=True)
class History:
    """Every task of an export or ledger, plus what the replay contract needs around them."""

    tasks: Sequence[TaskTimeline]
    done_statuses: frozenset[str]  # casefolded
    in_progress_statuses: frozenset[str]  # casefolded
    version_dates: Mapping[str, date]  # fix version / milestone id -> release date
    earliest: datetime  # earliest creation
    latest: datetime  # latest timestamp of any kind

    def is_done(self, status: str) -> bool:
        return status.casefold() in self.done_statuses

    def is_in_progress(self, status: str) -> bool:
        return status.casefold() in self.in_progress_statuses
