"""When each source is polled next: its interval with jitter, or its backoff after failures.

Pure state over an injected time, so the policy is tested without sleeping. The
scheduler is shared by the poll loop and the webhook handlers (which only mark a
source due), hence the lock.

Webhook pokes are coalesced: a poll started less than `webhook_spacing` ago
covers them, so a burst of any size costs at most one poll per spacing per
source (plus the regular ones).
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

JITTER = 0.1  # ± share of the interval, so sources (and replicas) do not poll in lockstep
FIRST_BACKOFF = timedelta(seconds=5)
MAX_BACKOFF = timedelta(minutes=15)


@dataclass
class SourceSchedule:
    interval: timedelta
    next_due: datetime
    failures: int = 0
    poll_started: datetime | None = None
    poked: datetime | None = None
    last_started: datetime | None = None  # the latest poll's start, running or done


def backoff(
    failures: int, *, first: timedelta = FIRST_BACKOFF, cap: timedelta = MAX_BACKOFF
) -> timedelta:
    """Exponential delay after the n-th consecutive failure (n >= 1), capped."""
    exponent = min(max(failures - 1, 0), 30)  # 2**30 times any first delay is past any cap
    delay: timedelta = first * (2**exponent)
    return min(delay, cap)


class Scheduler:
    def __init__(
        self,
        intervals: dict[str, timedelta],
        now: datetime,
        *,
        rng: random.Random | None = None,
        first_backoff: timedelta = FIRST_BACKOFF,
        max_backoff: timedelta = MAX_BACKOFF,
        webhook_spacing: timedelta = timedelta(0),
    ) -> None:
        self._rng = rng or random.Random()
        self.webhook_spacing = webhook_spacing
        self._first_backoff, self._max_backoff = first_backoff, max_backoff
        self._lock = threading.Lock()
        self._sources: dict[str, SourceSchedule] = {}
        self.configure(intervals, now)

    def configure(self, intervals: dict[str, timedelta], now: datetime) -> None:
        """Adopt a (re)loaded config: known sources keep their timing, new ones are due now."""
        with self._lock:
            kept = {name: s for name, s in self._sources.items() if name in intervals}
            for name, interval in intervals.items():
                if name in kept:
                    # A shorter interval takes effect now, not after the old, longer wait.
                    kept[name].interval = interval
                    kept[name].next_due = min(kept[name].next_due, now + interval)
                else:
                    kept[name] = SourceSchedule(interval=interval, next_due=now)
            self._sources = kept

    def due(self, now: datetime) -> list[str]:
        with self._lock:
            return [name for name, s in self._sources.items() if s.next_due <= now]

    def next_due(self) -> datetime | None:
        with self._lock:
            return min((s.next_due for s in self._sources.values()), default=None)

    def poke(self, name: str, now: datetime) -> bool:
        """A webhook said the source changed: poll it soon, unless it is backing off.

        "Soon" is now, or `webhook_spacing` after the latest poll started, whichever
        is later. Backoff wins so that a burst of webhooks cannot hammer a failing
        source. Returns True when the source's next poll moved earlier (wake the loop).
        """
        with self._lock:
            schedule = self._sources.get(name)
            if schedule is None or schedule.failures:
                return False
            schedule.poked = now
            if schedule.poll_started is not None:
                return False  # `succeeded` schedules the poll that follows this one
            wanted = self._spaced(schedule, now)
            if wanted >= schedule.next_due:
                return False
            schedule.next_due = wanted
            return True

    def started(self, names: list[str], now: datetime) -> None:
        """A poll of `names` begins: a poke from now on must not be lost when it ends."""
        with self._lock:
            for name in names:
                if name in self._sources:
                    self._sources[name].poll_started = now
                    self._sources[name].last_started = now

    def succeeded(self, name: str, now: datetime) -> datetime | None:
        """Record a good poll; returns when the source is polled next."""
        with self._lock:
            schedule = self._sources.get(name)
            if schedule is None:
                return None
            schedule.failures = 0
            schedule.next_due = now + self._jittered(schedule.interval)
            if _poked_during_poll(schedule):
                # The change may postdate what this poll read: poll again, spaced.
                schedule.next_due = min(schedule.next_due, self._spaced(schedule, now))
            schedule.poll_started = schedule.poked = None
            return schedule.next_due

    def postpone(self, name: str, now: datetime) -> None:
        """Another replica holds the source: look again after a normal interval."""
        with self._lock:
            schedule = self._sources.get(name)
            if schedule is not None:
                schedule.next_due = now + self._jittered(schedule.interval)

    def failed(self, name: str, now: datetime) -> datetime | None:
        """Record a failure; returns when the source is tried again (after its backoff)."""
        with self._lock:
            schedule = self._sources.get(name)
            if schedule is None:
                return None
            schedule.failures += 1
            schedule.poll_started = schedule.poked = None
            delay = backoff(schedule.failures, first=self._first_backoff, cap=self._max_backoff)
            schedule.next_due = now + self._jittered(delay)
            return schedule.next_due

    def failures(self, name: str) -> int:
        with self._lock:
            schedule = self._sources.get(name)
            return schedule.failures if schedule else 0

    def _spaced(self, schedule: SourceSchedule, now: datetime) -> datetime:
        if schedule.last_started is None:
            return now
        return max(now, schedule.last_started + self.webhook_spacing)

    def _jittered(self, delay: timedelta) -> timedelta:
        return delay * (1 + self._rng.uniform(-JITTER, JITTER))


def _poked_during_poll(schedule: SourceSchedule) -> bool:
    return (
        schedule.poked is not None
        and schedule.poll_started is not None
        and schedule.poked >= schedule.poll_started
    )
