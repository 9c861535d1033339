"""Errors from sources, classified once, as data.

Every connector translates its client library's exceptions into a SourceError
with one of five kinds; retry and reporting decide on the kind alone.
"""

from __future__ import annotations

from enum import StrEnum


class FailureKind(StrEnum):
    CONFIGURATION = "configuration"  # the config cannot work (unknown repo, bad JQL)
    AUTHENTICATION = "authentication"  # the token was rejected or lacks a scope
    RATE_LIMITED = "rate_limited"  # wait `retry_after` seconds, then try again
    TRANSIENT = "transient"  # 5xx, timeouts, resets: worth another try
    PERMANENT = "permanent"  # the request itself is wrong; retrying cannot help


RETRYABLE = frozenset({FailureKind.RATE_LIMITED, FailureKind.TRANSIENT})


class SourceError(Exception):
    """A source failed; `str(error)` is a sentence a person can act on."""

    def __init__(
        self,
        kind: FailureKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.kind in RETRYABLE


def classify_status(status: int) -> FailureKind:
    """The failure kind an HTTP status means, for any of the REST sources."""
    if status in (401, 403):
        return FailureKind.AUTHENTICATION
    if status == 429:
        return FailureKind.RATE_LIMITED
    if status in (408, 500, 502, 503, 504) or status >= 520:
        return FailureKind.TRANSIENT
    if status in (400, 404, 410, 422):
        return FailureKind.CONFIGURATION
    return FailureKind.PERMANENT


class SuspiciousDisappearance(Exception):
    """A complete listing lost too many items at once; nothing was marked gone."""
