"""What clients did to the sandbox: a request log counted per route, and every write."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from syncd.sandbox.clock import utcnow


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    service: str
    method: str
    route: str  # the route template, e.g. "GET /repos/{owner}/{repo}/issues"
    path: str
    query: str
    status: int


class RequestLog:
    """Every request the simulators answered, with counts per route."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []

    def record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self, service: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            return [e for e in self._entries if service is None or e.service == service]

    def counts(self, service: str | None = None) -> Counter[str]:
        """Requests per route, e.g. ``{"GET /repos/{owner}/{repo}/issues": 12}``."""
        return Counter(e.route for e in self.entries(service))

    def count(self, service: str | None = None, route: str | None = None) -> int:
        return sum(1 for e in self.entries(service) if route is None or e.route == route)

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass(frozen=True, slots=True)
class Write:
    """One write a client made: a comment, a message, an edit, a transition."""

    service: str
    kind: str  # e.g. "issue_comment", "issue_edit", "chat.postMessage"
    target: str  # e.g. "example-org/api#3", "OPS-1", "C0123ABCD"
    payload: dict[str, Any]
    at: datetime = field(default_factory=utcnow)


class Writes:
    """Every write clients made, listable so tests can assert 'no writes happened'."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Write] = []

    def record(self, service: str, kind: str, target: str, payload: dict[str, Any]) -> Write:
        write = Write(service, kind, target, payload)
        with self._lock:
            self._items.append(write)
        return write

    def list(self, service: str | None = None, kind: str | None = None) -> list[Write]:
        with self._lock:
            return [w for w in self._items
                    if (service is None or w.service == service)
                    and (kind is None or w.kind == kind)]

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def assert_none(self) -> None:
        """Raise AssertionError listing the writes, if any happened."""
        items = self.list()
        if items:
            raise AssertionError(f"expected no writes, got {len(items)}: {items!r}")
