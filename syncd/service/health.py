"""What `/healthz` reports per source: last success, last error, lag.

Written by the poll loop, read by the web thread; a lock keeps each read whole.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass
class SourceHealth:
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    consecutive_failures: int = 0
    next_poll: datetime | None = None

    def lag_seconds(self, now: datetime, started: datetime) -> float:
        """Time since the ledger was last known current for this source."""
        return max((now - (self.last_success or started)).total_seconds(), 0.0)


class Health:
    def __init__(self, sources: list[str], started: datetime) -> None:
        self.started = started
        self._lock = threading.Lock()
        self._sources = {name: SourceHealth() for name in sources}

    def configure(self, sources: list[str]) -> None:
        with self._lock:
            self._sources = {name: self._sources.get(name, SourceHealth()) for name in sources}

    def succeeded(self, name: str, now: datetime, next_poll: datetime | None) -> None:
        with self._lock:
            health = self._sources.setdefault(name, SourceHealth())
            health.last_success, health.consecutive_failures = now, 0
            health.next_poll = next_poll

    def failed(self, name: str, now: datetime, error: str, next_poll: datetime | None) -> None:
        with self._lock:
            health = self._sources.setdefault(name, SourceHealth())
            health.last_error, health.last_error_at = error, now
            health.consecutive_failures += 1
            health.next_poll = next_poll

    def lags(self, now: datetime) -> dict[str, float]:
        with self._lock:
            return {n: h.lag_seconds(now, self.started) for n, h in self._sources.items()}

    def report(self, now: datetime) -> dict[str, Any]:
        with self._lock:
            sources = {
                name: _source_json(h, now, self.started) for name, h in self._sources.items()
            }
        if any(s["consecutive_failures"] for s in sources.values()):
            status = "degraded"
        elif all(s["last_success"] for s in sources.values()):
            status = "ok"
        else:
            status = "starting"
        return {"status": status, "started": self.started.isoformat(), "sources": sources}


def _source_json(health: SourceHealth, now: datetime, started: datetime) -> dict[str, Any]:
    return {
        "last_success": _iso(health.last_success),
        "last_error": health.last_error,
        "last_error_at": _iso(health.last_error_at),
        "consecutive_failures": health.consecutive_failures,
        "lag_seconds": round(health.lag_seconds(now, started), 3),
        "next_poll": _iso(health.next_poll),
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
