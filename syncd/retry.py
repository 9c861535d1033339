"""One retry policy for idempotent source calls, honouring Retry-After.

Client libraries' own retry layers are turned off (PyGithub's GithubRetry,
jira's ResilientSession) so that nothing is retried twice, and writes are never
retried here: a write is only repeated after the writer checked for its marker.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
)

from syncd.errors import SourceError

T = TypeVar("T")
log = structlog.get_logger("syncd.retry")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    max_total_seconds: float = 120.0
    base_seconds: float = 0.5
    max_wait_seconds: float = 60.0


def _retryable(error: BaseException) -> bool:
    return isinstance(error, SourceError) and error.retryable


def _wait(policy: RetryPolicy) -> Callable[[RetryCallState], float]:
    def wait(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, SourceError) and error.retry_after is not None:
            return min(error.retry_after, policy.max_wait_seconds)
        backoff = policy.base_seconds * 2 ** (state.attempt_number - 1)
        return min(random.uniform(0, backoff), policy.max_wait_seconds)  # full jitter

    return wait


def call_idempotent(call: Callable[[], T], *, what: str, policy: RetryPolicy = RetryPolicy()) -> T:
    """Run a read (or an idempotent write) with bounded, jittered retries."""

    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "retrying",
            call=what,
            attempt=state.attempt_number,
            wait_seconds=round(state.upcoming_sleep, 2),
            error=str(error),
        )

    retrying = Retrying(
        retry=retry_if_exception(_retryable),
        stop=stop_after_attempt(policy.attempts) | stop_after_delay(policy.max_total_seconds),
        wait=_wait(policy),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(call)
