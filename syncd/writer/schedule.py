"""Working hours: a nudge waits until the person it is for is at work.

Each person may set a time zone, working hours and working days; the policy
gives the defaults. A nudge planned outside those hours gets a `not_before` at
the start of the person's next working period, and the drain holds it until then.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from syncd.config import WEEKDAYS, PersonSettings, PolicySettings


def next_working_moment(
    now: datetime, person: PersonSettings | None, policy: PolicySettings
) -> datetime | None:
    """None when `now` is within working hours, else when they next begin."""
    zone = ZoneInfo((person.timezone if person and person.timezone else None) or policy.timezone)
    hours = (person.working_hours if person else None) or policy.working_hours
    days = set((person.working_days if person else None) or policy.working_days)
    start, end = _parse(hours)
    local = now.astimezone(zone)
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        if WEEKDAYS[day.weekday()] not in days:
            continue
        opens = datetime.combine(day, start, zone)
        closes = (
            datetime.combine(day, end, zone)
            if end
            else datetime.combine(day + timedelta(days=1), time(0), zone)
        )
        if opens <= local < closes:
            return None if offset == 0 else opens
        if local < opens:
            return opens
    return None  # no working day at all: do not hold nudges forever


def _parse(hours: str) -> tuple[time, time | None]:
    first, last = hours.split("-")
    start = time.fromisoformat(first)
    return start, None if last == "24:00" else time.fromisoformat(last)
