"""API request counts and rate-limit headroom, fed by every gateway and writer.

Process-wide and cheap (a lock and two dicts), so a gateway counts each API call
without knowing whether a service is running; `syncd run` exports them on
/metrics (`syncd_api_requests_total`, `syncd_rate_limit_remaining`), and a one-off
`syncd reconcile` simply never reads them.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

NO_ANSWER = "none"  # the status label of a request that got no HTTP answer (timeout, reset)

_lock = threading.Lock()
_requests: Counter[tuple[str, str]] = Counter()
_remaining: dict[str, int] = {}


def count_request(
    source: str, status: int | None, headers: Mapping[str, Any] | None = None
) -> None:
    """One API request of `source` and how it ended; reads a rate-limit header if sent."""
    label = str(status) if status is not None else NO_ANSWER
    remaining = _header(headers, "x-ratelimit-remaining") if headers else None
    with _lock:
        _requests[(source, label)] += 1
        if remaining is not None and remaining.isdigit():
            _remaining[source] = int(remaining)


def snapshot() -> tuple[dict[tuple[str, str], int], dict[str, int]]:
    """(requests by (source, status), rate-limit remaining by source), copied."""
    with _lock:
        return dict(_requests), dict(_remaining)


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; httpx and requests headers are not
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return None if value is None else str(value).strip()
