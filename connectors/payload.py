"""Reading raw API payloads defensively: every connector's mapping shares these.

A payload that lacks a field or has the wrong type raises `MappingError` with a
reason in plain words, so the connector quarantines the item and stores the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any


class MappingError(ValueError):
    """The payload cannot become a Task; the message says why, in plain words."""


def require_int(raw: Mapping[str, Any], field: str) -> int:
    value = raw.get(field)
    if value is None:
        raise MappingError(f"the issue has no {field!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise MappingError(f"{field!r} must be an integer, got {value!r:.40}")
    return value


def require_str(raw: Mapping[str, Any], field: str) -> str:
    value = raw.get(field)
    if value is None:
        raise MappingError(f"the issue has no {field!r}")
    if not isinstance(value, str):
        raise MappingError(f"{field!r} must be text, got {type(value).__name__}")
    return value


def optional_str(raw: Mapping[str, Any], field: str) -> str | None:
    value = raw.get(field)
    if value is not None and not isinstance(value, str):
        raise MappingError(f"{field!r} must be text, got {type(value).__name__}")
    return value


def timestamp(raw: Mapping[str, Any], field: str) -> datetime | None:
    """An ISO timestamp (GitHub's `Z`, Jira's `+0000`); naive ones are taken as UTC."""
    value = optional_str(raw, field)
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise MappingError(f"{field!r} is not a timestamp: {value!r:.40}") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
