"""Time helpers shared by the simulators: relative world dates and wire formats."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

_RELATIVE = re.compile(r"^([+-])(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_when(value: str | int | float | None, now: datetime) -> datetime | None:
    """Read a world date: ``"-3d"``, ``"+4h"``, ``"now"``, an ISO string or epoch seconds.

    Relative dates keep a world file valid on any day.
    """
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), UTC)
    text = value.strip()
    if text == "now":
        return now
    match = _RELATIVE.match(text)
    if match:
        sign, amount, unit = match.groups()
        delta = timedelta(**{_UNITS[unit]: float(amount)})
        return now + delta if sign == "+" else now - delta
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_day(value: str | None, now: datetime) -> date | None:
    """A calendar date (Jira due dates); relative offsets count from today."""
    when = parse_when(value, now)
    return None if when is None else when.date()


def gh_time(value: datetime | None) -> str | None:
    """GitHub's timestamp format: ``2025-03-19T19:02:03Z``."""
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def jira_time(value: datetime | None) -> str | None:
    """Jira's timestamp format: ``2025-03-19T19:02:03.000+0000``."""
    if value is None:
        return None
    stamp = value.astimezone(UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}+0000"


def slack_ts(value: datetime) -> str:
    """A Slack message ``ts``: epoch seconds with six decimals."""
    return f"{value.timestamp():.6f}"


def from_slack_ts(ts: str) -> datetime:
    return datetime.fromtimestamp(float(ts), UTC)


def http_date(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
