"""Read tasks out of conversation text: due date, priority, doer, references.

Shared by the Slack and email connectors. Every function here is pure: no I/O,
and "now" is the message's own timestamp, passed in, so a message re-read a
month later still resolves "by Friday" to the same day.

Decisions where the spec is silent (tests in tests/test_extract.py pin them):

* A date is a deadline only after a cue ("by", "before", "due", "deadline",
  "until", "no later than", "within", "need it", "EOD", "end of …"), or when a
  request sentence ("can you …", "please …") says today / tonight / tomorrow /
  this week / next week. "the call is on Thursday" has no cue and yields None.
* A clause that speaks in the past ("I met…", "we shipped it before…") or of an
  absence ("I'm out until Friday") is not a deadline.
* A bare weekday ("by Friday") is the next such day strictly after the message
  day: a sender who means today says "today". "this Friday" may be today;
  "next Friday" is the Friday of next week (weeks start on Monday).
* "next week" means the Friday of next week; "this week", "end of week" and
  "EOW" mean this week's Friday (next Friday when sent on a weekend).
* "before X" is read like "by X": the named day, not the day before it.
* A date without a year is the next occurrence on or after the message day.
* The first deadline in the text wins.
* "ASAP" is a priority, not a date. "soon", "P2" and "medium priority" are
  medium; "this week" is a due date, not a priority.
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from syncd.model import Priority

DateOrder = Literal["MDY", "DMY", "YMD"]

__all__ = [
    "DateOrder",
    "DoerResult",
    "extract_doer",
    "extract_due",
    "extract_priority",
    "find_references",
    "strip_quoted_reply",
]

# --------------------------------------------------------------------------- due dates

_WEEKDAYS = {
    "mon": 0, "monday": 0, "tue": 1, "tues": 1, "tuesday": 1, "wed": 2, "wednesday": 2,
    "thu": 3, "thur": 3, "thurs": 3, "thursday": 3, "fri": 4, "friday": 4,
    "sat": 5, "saturday": 5, "sun": 6, "sunday": 6,
}  # fmt: skip
_MONTHS = {
    "jan": 1, "january": 1, "feb": 2, "february": 2, "mar": 3, "march": 3, "apr": 4,
    "april": 4, "may": 5, "jun": 6, "june": 6, "jul": 7, "july": 7, "aug": 8, "august": 8,
    "sep": 9, "sept": 9, "september": 9, "oct": 10, "october": 10, "nov": 11,
    "november": 11, "dec": 12, "december": 12,
}  # fmt: skip
_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "a couple of": 2, "a few": 3,
}  # fmt: skip
_FRIDAY = 4

_WEEKDAY = r"(?P<weekday>" + "|".join(sorted(_WEEKDAYS, key=len, reverse=True)) + r")\b"
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\b\.?"
_ORDINAL = r"(?:st|nd|rd|th)?"
_YEAR = r"(?:,?\s*(?P<year>\d{4}))?"
_COUNT = r"(?P<count>\d+|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")"

# Words that turn a date into a deadline. Self-cued phrases ("EOD", "end of
# month") are matched by a lookahead so the phrase parser still sees them.
_CUE = re.compile(
    r"\b(?:by|before|due(?!\s+to\b)(?:\s+(?:date|on|by))?|deadline(?:\s+is)?|until|till|"
    r"no\s+later\s+than|not\s+later\s+than|latest\s+by|"
    r"need(?:ed|s)?\s+(?:it|this|that|these|them|the\s+\w+)(?:\s+(?:done|fixed|ready|back|finished|shipped|sorted))?)\b"
    r"|(?=\b(?:within|eod|eow|eom|eoq|eoy|cob|close\s+of\s+business|end\s+of)\b)"
)
_FILLER = re.compile(r"[\s:,-]*(?:(?:on|the|at|is|latest|at\s+the\s+latest)\s+)*")
# A clause that tells what happened states no deadline ("we shipped it before Friday").
_PAST = re.compile(
    r"\b(?:was|were|had|did|met|missed|already)\b"
    r"|\b(?:i|we|they|he|she)\s+(?:\w+ed|sent|made|got|built|wrote|left)\b"
)
# "until" after an absence is a return date, not a deadline ("I'm out until Friday").
_ABSENT = re.compile(r"\b(?:out|off|away|ooo|vacation|leave|holiday|pto)\b")
_REQUEST = re.compile(
    r"\b(?:can|could|would|will)\s+(?:you|u|someone|somebody|anyone)\b|\bplease\b|\bpls\b|"
    r"\bplz\b|\bneed\s+(?:you|someone)\b"
)
_BARE_RELATIVE = re.compile(r"\b(?:today|tonight|tomorrow|tmrw|tmr|this\s+week|next\s+week)\b")
_CLAUSE_BREAK = re.compile(r"[.!?;\n]")


@dataclass(frozen=True, slots=True)
class _Now:
    """The message's moment in the configured zone, which relative words are read against."""

    today: date
    clock: time
    date_order: DateOrder


_Handler = Callable[[re.Match[str], _Now], date | None]


def extract_due(
    text: str,
    *,
    sent_at: datetime,
    timezone: str = "UTC",
    date_order: DateOrder = "MDY",
) -> date | None:
    """The deadline the text states, resolved against the message's own time, or None."""
    if sent_at.tzinfo is None:
        raise ValueError("sent_at must be timezone-aware; a naive time has no 'today'")
    local = sent_at.astimezone(ZoneInfo(timezone))
    now = _Now(today=local.date(), clock=local.time(), date_order=date_order)
    lowered = _normalize(text)
    return _due_after_cue(lowered, now) or _due_in_request(lowered, now)


def _normalize(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").lower()
    return re.sub(r"[ \t\r\f\v]+", " ", text)


def _due_after_cue(text: str, now: _Now) -> date | None:
    for cue in _CUE.finditer(text):
        if _is_not_a_deadline(_clause_before(text, cue.start()), cue.group()):
            continue
        found = _parse_phrase(text, cue.end(), now)
        if found is not None:
            return found
    return None


def _is_not_a_deadline(clause: str, cue: str) -> bool:
    absent = cue in ("until", "till") and _ABSENT.search(clause) is not None
    return absent or _PAST.search(clause) is not None


def _due_in_request(text: str, now: _Now) -> date | None:
    """'can you look at it tomorrow?': a relative day inside a request is a deadline."""
    for clause in _sentences(text):
        if not _REQUEST.search(clause) or _PAST.search(clause):
            continue
        word = _BARE_RELATIVE.search(clause)
        if word is not None:
            return _parse_phrase(clause, word.start(), now)
    return None


def _clause_before(text: str, end: int) -> str:
    start = max((m.end() for m in _CLAUSE_BREAK.finditer(text, 0, end)), default=0)
    return text[start:end]


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?;\n])", text) if s.strip()]


def _parse_phrase(text: str, pos: int, now: _Now) -> date | None:
    """Read one date phrase starting at `pos` (after a cue), with our grammar first."""
    filler = _FILLER.match(text, pos)  # always matches, possibly empty
    pos = filler.end() if filler else pos
    for pattern, handler in _PHRASES:
        match = pattern.match(text, pos)
        if match is not None:
            return handler(match, now)
    return _parse_with_dateparser(text[pos : pos + 40], now)


# Handlers, one per phrase shape. Each gets the match and the message's "now".


def _on_today(_: re.Match[str], now: _Now) -> date:
    return now.today


def _on_tomorrow(_: re.Match[str], now: _Now) -> date:
    return now.today + timedelta(days=1)


def _on_day_after_tomorrow(_: re.Match[str], now: _Now) -> date:
    return now.today + timedelta(days=2)


def _on_end_of_day(match: re.Match[str], now: _Now) -> date:
    # "EOD tomorrow", "EOD Friday": the day named after it, else today.
    return _parse_phrase(match.string, match.end(), now) or now.today


def _on_this_week(_: re.Match[str], now: _Now) -> date:
    friday = _monday_of(now.today) + timedelta(days=_FRIDAY)
    return friday if friday >= now.today else friday + timedelta(weeks=1)


def _on_next_week(_: re.Match[str], now: _Now) -> date:
    return _monday_of(now.today) + timedelta(weeks=1, days=_FRIDAY)


def _on_early_next_week(_: re.Match[str], now: _Now) -> date:
    return _monday_of(now.today) + timedelta(weeks=1)


def _on_end_of_month(match: re.Match[str], now: _Now) -> date:
    year, month = now.today.year, now.today.month
    if match.group("next"):
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return date(year, month, calendar.monthrange(year, month)[1])


def _on_end_of_quarter(_: re.Match[str], now: _Now) -> date:
    last_month = (now.today.month - 1) // 3 * 3 + 3
    return date(now.today.year, last_month, calendar.monthrange(now.today.year, last_month)[1])


def _on_end_of_year(_: re.Match[str], now: _Now) -> date:
    return date(now.today.year, 12, 31)


def _on_weekday(match: re.Match[str], now: _Now) -> date:
    weekday = _WEEKDAYS[match.group("weekday")]
    qualifier = match.group("qualifier")
    if qualifier == "next":
        return _monday_of(now.today) + timedelta(weeks=1, days=weekday)
    ahead = (weekday - now.today.weekday()) % 7
    if ahead == 0 and qualifier != "this":
        ahead = 7  # the message day itself would have been called "today"
    return now.today + timedelta(days=ahead)


def _on_iso_date(match: re.Match[str], _: _Now) -> date | None:
    return _safe_date(int(match["y"]), int(match["m"]), int(match["d"]))


def _on_numeric_date(match: re.Match[str], now: _Now) -> date | None:
    first, second, year = int(match["a"]), int(match["b"]), match["c"]
    month, day = (second, first) if now.date_order == "DMY" else (first, second)
    if year is None:
        return _next_occurrence(month, day, now.today)
    full_year = int(year) + 2000 if len(year) == 2 else int(year)
    return _safe_date(full_year, month, day)


def _on_month_name_date(match: re.Match[str], now: _Now) -> date | None:
    month, day = _MONTHS[match["month"].rstrip(".")], int(match["day"])
    if match["year"]:
        return _safe_date(int(match["year"]), month, day)
    return _next_occurrence(month, day, now.today)


def _on_day_of_month(match: re.Match[str], now: _Now) -> date | None:
    day, today = int(match["day"]), now.today
    for offset in range(3):  # this month, else the next months that have that day
        month_index = today.month - 1 + offset
        candidate = _safe_date(today.year + month_index // 12, month_index % 12 + 1, day)
        if candidate is not None and candidate >= today:
            return candidate
    return None


def _on_duration(match: re.Match[str], now: _Now) -> date:
    count = int(match["count"]) if match["count"].isdigit() else _NUMBER_WORDS[match["count"]]
    unit = match["unit"]
    if unit.startswith("hour"):
        moment = datetime.combine(now.today, now.clock) + timedelta(hours=count)
        return moment.date()
    if unit.startswith("week"):
        return now.today + timedelta(weeks=count)
    if match["business"]:
        return _add_business_days(now.today, count)
    return now.today + timedelta(days=count)


def _on_time_of_day(match: re.Match[str], now: _Now) -> date:
    # "by 5pm Friday" names the day; "by 5pm" alone is today, or tomorrow once 5pm has passed.
    named = _parse_phrase(match.string, match.end(), now)
    if named is not None:
        return named
    parts = match.groupdict()
    hour = 12 if parts.get("noon") else int(parts["hour"])
    if parts.get("ampm"):
        hour = hour % 12 + (12 if parts["ampm"] == "pm" else 0)
    minute = int(parts["minute"] or 0)
    if hour > 23 or minute > 59:
        return now.today
    passed = now.clock >= time(hour, minute)
    return now.today + timedelta(days=1) if passed else now.today


_PHRASES: list[tuple[re.Pattern[str], _Handler]] = [
    (re.compile(r"(?:the\s+)?day\s+after\s+tomorrow\b"), _on_day_after_tomorrow),
    (re.compile(r"(?:eod|cob|close\s+of\s+business|end\s+of\s+(?:the\s+)?(?:business\s+|work\s+)?day)\b"), _on_end_of_day),
    (re.compile(r"(?:today|tonight|this\s+(?:morning|afternoon|evening))\b"), _on_today),
    (re.compile(r"(?:tomorrow|tmrw|tmr)\b"), _on_tomorrow),
    (re.compile(r"(?:early|beginning\s+of|start\s+of)\s+next\s+week\b"), _on_early_next_week),
    (re.compile(r"(?:(?:the\s+)?end\s+of\s+)?next\s+week\b"), _on_next_week),
    (re.compile(r"(?:eow|(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?week|this\s+week)\b"), _on_this_week),
    (re.compile(r"(?:eom|month[\s-]end|(?:the\s+)?end\s+of\s+(?:the\s+|this\s+|(?P<next>next)\s+)?month)\b"), _on_end_of_month),
    (re.compile(r"(?:eoq|(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?quarter)\b"), _on_end_of_quarter),
    (re.compile(r"(?:eoy|year[\s-]end|(?:the\s+)?end\s+of\s+(?:the\s+|this\s+)?year)\b"), _on_end_of_year),
    (re.compile(r"(?:(?P<qualifier>this|next|coming|this\s+coming)\s+)?" + _WEEKDAY), _on_weekday),
    (re.compile(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})(?!\d)"), _on_iso_date),
    (re.compile(r"(?P<a>\d{1,2})/(?P<b>\d{1,2})(?:/(?P<c>\d{4}|\d{2}))?(?![\d/]?\d)"), _on_numeric_date),
    (re.compile(r"(?P<a>\d{1,2})\.(?P<b>\d{1,2})\.(?P<c>\d{4}|\d{2})(?!\.?\d)"), _on_numeric_date),
    (re.compile(r"(?P<day>\d{1,2})" + _ORDINAL + r"(?:\s+of)?\s+" + _MONTH + _YEAR), _on_month_name_date),
    (re.compile(_MONTH + r"\s+(?:the\s+)?(?P<day>\d{1,2})" + _ORDINAL + r"\b" + _YEAR), _on_month_name_date),
    (re.compile(r"(?P<day>\d{1,2})(?:st|nd|rd|th)\b"), _on_day_of_month),
    (re.compile(r"(?:with)?in\s+(?:the\s+next\s+)?" + _COUNT + r"\s+(?P<business>business\s+|working\s+)?(?P<unit>days?|weeks?|hours?|hrs?)\b"), _on_duration),
    (re.compile(r"(?:(?P<noon>noon|midday)|(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<ampm>am|pm))\b"), _on_time_of_day),
    (re.compile(r"(?P<hour>\d{1,2}):(?P<minute>\d{2})\b"), _on_time_of_day),
]  # fmt: skip


def _parse_with_dateparser(fragment: str, now: _Now) -> date | None:
    """Formats our grammar does not know ("10-Mar-2026"); only fragments that look like dates."""
    words = fragment.split()[:5]
    if not words or not _DATE_SHAPED.search(" ".join(words[:2])):
        return None  # "by 2 days", "by 3.5 seconds": amounts, not dates
    for length in range(len(words), 0, -1):
        found = _dateparser_date(
            " ".join(words[:length]).strip(",.;:!?"), now.today, now.date_order
        )
        if found is not None:
            return found
    return None


_DATE_SHAPED = re.compile(r"\b" + _MONTH + r"|\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")


@functools.lru_cache(maxsize=4096)
def _dateparser_date(fragment: str, today: date, date_order: DateOrder) -> date | None:
    import dateparser  # imported lazily: it is slow to load and rarely needed

    parsed = dateparser.parse(
        fragment,
        languages=["en"],
        settings={
            "PREFER_DATES_FROM": "future",
            "RELATIVE_BASE": datetime.combine(today, time(12)),
            "DATE_ORDER": date_order,
            "REQUIRE_PARTS": ["day", "month"],
        },
    )
    return parsed.date() if parsed is not None else None


def _monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _safe_date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _next_occurrence(month: int, day: int, today: date) -> date | None:
    for year in (today.year, today.year + 1):
        candidate = _safe_date(year, month, day)
        if candidate is not None and candidate >= today:
            return candidate
    return None


def _add_business_days(start: date, count: int) -> date:
    day = start
    while count > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


# --------------------------------------------------------------------------- priority

# "not urgent", "not really that urgent", "non-critical"
_NEGATION = r"(?:(?:not|isn't|nothing|no|never)\s+(?:\w+\s+){0,2}?|non-)"
_HIGH = (
    r"urgent(?:ly)?|urgency|asap|a\.s\.a\.p\.?|as\s+soon\s+as\s+possible|p0|p1|sev[\s-]?[01]|"
    r"critical|blocker|(?<!non-)blocking|outage|emergency|(?:highest|high|top)\s+priority|"
    r"(?:prod|production|the\s+site|site|the\s+app)\s+(?:is\s+)?down|down\s+in\s+prod(?:uction)?|"
    r"immediately|right\s+away"
)
_MEDIUM = r"p2|sev[\s-]?2|(?:medium|normal)\s+priority|soon"
_LOW = (
    r"(?:whenever|when)\s+you\s+(?:get|have)\s+(?:a\s+)?(?:chance|moment|minute|time)|"
    r"whenever\s+you\s+can|no\s+rush|no\s+hurry|(?:low|lowest)\s+priority|nice[\s-]to[\s-]have|"
    r"p[34]|sev[\s-]?[34]|someday|at\s+some\s+point"
)
_PRIORITY_CUE = re.compile(
    rf"\b(?P<negated>{_NEGATION}(?:{_HIGH}))\b|\b(?P<high>{_HIGH})(?!\w)|"
    rf"\b(?P<medium>{_MEDIUM})\b|\b(?P<low>{_LOW})\b",
    re.IGNORECASE,
)
_RANK = {Priority.HIGH: 3, Priority.MEDIUM: 2, Priority.LOW: 1}


def extract_priority(text: str) -> tuple[Priority | None, str | None]:
    """The strongest priority the words state, with the cue as written; a negated cue is low."""
    best: tuple[Priority, str] | None = None
    for match in _PRIORITY_CUE.finditer(text.replace("\u2019", "'")):
        level = _priority_of(match)
        if best is None or _RANK[level] > _RANK[best[0]]:
            best = (level, re.sub(r"\s+", " ", match.group()))
    return best if best is not None else (None, None)


def _priority_of(match: re.Match[str]) -> Priority:
    if match["high"]:
        return Priority.HIGH
    if match["medium"]:
        return Priority.MEDIUM
    return Priority.LOW  # a low cue, or a negated high one ("not urgent")


# --------------------------------------------------------------------------- doer


@dataclass(frozen=True, slots=True)
class DoerResult:
    """Who is asked to do the work: one person (`owner`), a group (`team`), or nobody.

    `also_asked` lists other people asked just as directly, so a caller can flag
    a task with two owners instead of silently picking one.
    """

    owner: str | None
    team: str | None
    reason: str
    also_asked: tuple[str, ...] = ()


_GROUP_TOKEN = re.compile(
    r"<!subteam\^(?P<id>[A-Z0-9]+)(?:\|@?(?P<handle>[^>]+))?>|<!(?P<special>here|channel|everyone)(?:\|[^>]*)?>"
    r"|(?<![\w@])@(?P<plain>here|channel|everyone|team)\b"
)
_GREETING = re.compile(
    r"^\W*(?:(?:hey|hi|hello|yo|ok|okay|so|and|also|then)\b\W*)*$", re.IGNORECASE
)
_NOT_ASKED_BEFORE = re.compile(
    r"(?:\bthanks|\bthank\s+you|\bthx|\bty|\bcc:?|/cc|\bfyi:?|\bas|\bper|\bh/t|\bkudos\s+to|"
    r"\bcredit\s+to|\bshout-?out\s+to|\bfrom|\blike|\bwith)\s*,?\s*$",
    re.IGNORECASE,
)
_NOT_ASKED_AFTER = re.compile(
    r"^\s*(?:'s\b|said|says|mentioned|suggested|noted|wrote|pointed\s+out|reported|asked|"
    r"[,:]?\s*(?:thanks|thank\s+you|thx)\b)",
    re.IGNORECASE,
)
_ASKED_AFTER = re.compile(
    r"^\s*[,:]?\s*(?:(?:can|could|would|will)\s+(?:you|u)\b|please\b|pls\b|plz\b|mind\b|"
    r"are\s+you\s+able|do\s+you\s+have\s+(?:time|a\s+minute|bandwidth)|i\s+need\s+you|"
    r"you(?:'re|\s+are)\s+up\b|this\s+one's\s+yours)",
    re.IGNORECASE,
)
_ACTION = (
    r"(?:please\s+)?(?:take|handle|own|fix|look|pick|investigate|do|work|check|review|deploy|"
    r"follow|update|write|triage|debug|sort|get|help|ship|merge|add|run|reply|answer)\b"
)
_TAKES_IT_AFTER = re.compile(
    rf"^\s*(?:will|'ll|is\s+going\s+to|is\s+gonna|to)\s+{_ACTION}"
    r"|^\s*(?:is\s+taking|owns|is\s+on\s+it|has\s+this|takes\s+this|is\s+the\s+owner)",
    re.IGNORECASE,
)
_ASSIGNED_BEFORE = re.compile(
    r"(?:\bassign(?:ing|ed)?|\breassign(?:ing|ed)?|\bhand(?:ing)?(?:\s+(?:this|it))?\s+(?:over\s+)?|"
    r"\bpassing(?:\s+(?:this|it))?|\bover)(?:\s+(?:this|it|that))?\s+to\s*:?\s*$"
    r"|\bowner\s*:\s*$|\bassignee\s*:\s*$",
    re.IGNORECASE,
)
# "could <@U1> look at…", "asking <@U1> to review…"
_ASKER_BEFORE = re.compile(
    r"\b(?:could|can|would|will|ask(?:ing)?|need|want|get|having)\s*$", re.IGNORECASE
)
_ASKED_ACTION_AFTER = re.compile(rf"^\s*(?:to\s+)?{_ACTION}", re.IGNORECASE)

_DIRECT, _VOCATIVE = 2, 1


@dataclass(frozen=True, slots=True)
class _Candidate:
    token: str
    team: str | None
    rank: int
    position: int
    reason: str


def extract_doer(
    text: str, mentions: Sequence[str], *, team_aliases: Collection[str] = ()
) -> DoerResult:
    """The mention asked to do the work: "<@U1> can you…", "assigning to <@U1>".

    A group mention (`<!subteam^…>`, `<!here>`, `@channel`, or a configured team
    alias) as the addressee means a team owns it, which policy treats as ownerless.
    When a person and a group are asked equally directly, the person wins.
    """
    candidates = [c for c in _candidates(text, mentions, team_aliases) if c.rank > 0]
    if not candidates:
        return DoerResult(owner=None, team=None, reason="nobody is asked to do it")
    top = max(c.rank for c in candidates)
    best_ranked = [c for c in candidates if c.rank == top]
    people = sorted((c for c in best_ranked if c.team is None), key=lambda c: c.position)
    if people:
        others = tuple(dict.fromkeys(c.token for c in people if c.token != people[0].token))
        return DoerResult(
            owner=people[0].token, team=None, reason=people[0].reason, also_asked=others
        )
    group = min(best_ranked, key=lambda c: c.position)
    return DoerResult(
        owner=None, team=group.team, reason=group.reason + " (a group, not one owner)"
    )


def _candidates(
    text: str, mentions: Sequence[str], team_aliases: Collection[str]
) -> list[_Candidate]:
    aliases = {alias.lower() for alias in team_aliases}
    found: list[_Candidate] = []
    for match in _GROUP_TOKEN.finditer(text):
        team = match["handle"] or match["id"] or match["special"] or match["plain"]
        found.append(_judge(text, match.group(), match.start(), match.end(), team))
    for token in dict.fromkeys(mentions):
        if not token or _GROUP_TOKEN.fullmatch(token):
            continue  # group tokens were judged above, from the text itself
        team = token if _bare_handle(token) in aliases else None
        for match in re.finditer(_whole_token(token), text, re.IGNORECASE):
            found.append(_judge(text, token, match.start(), match.end(), team))
    return found


def _whole_token(token: str) -> str:
    """A pattern for the token that does not match inside a longer word ("Al" in "Alice")."""
    lead = r"(?<!\w)" if token[0].isalnum() else ""
    trail = r"(?!\w)" if token[-1].isalnum() else ""
    return lead + re.escape(token) + trail


def _bare_handle(token: str) -> str:
    """'<@devops>', '@devops', 'devops@acme.example' all read as 'devops'."""
    return token.strip("<>@ ").split("@")[0].lower()


def _judge(text: str, token: str, start: int, end: int, team: str | None) -> _Candidate:
    before = _clause_before(text, start)
    after = text[end : end + 80]

    def verdict(rank: int, why: str) -> _Candidate:
        return _Candidate(token=token, team=team, rank=rank, position=start, reason=why)

    if _NOT_ASKED_BEFORE.search(before) or _NOT_ASKED_AFTER.match(after):
        return verdict(0, "only mentioned")
    if _ASSIGNED_BEFORE.search(before):
        return verdict(_DIRECT, f"assigned: {_quote(before, token, '')}")
    if _is_asked_to_act(before, after):
        return verdict(_DIRECT, f"asked directly: {_quote(before, token, after)}")
    if _ASKED_AFTER.match(after):
        return verdict(_DIRECT, f"asked directly: {_quote('', token, after)}")
    if _TAKES_IT_AFTER.match(after):
        return verdict(_DIRECT, f"takes it on: {_quote('', token, after)}")
    if _GREETING.match(before):
        return verdict(_VOCATIVE, f"addressed first in the sentence: {_quote('', token, after)}")
    return verdict(0, "only mentioned")


def _quote(before: str, token: str, after: str) -> str:
    """The mention with the few words around it that decided the verdict, as written."""
    lead = " ".join(before.split()[-2:])
    clause_rest = _CLAUSE_BREAK.split(after, maxsplit=1)[0]
    tail = re.match(r"[:,]?(?:\s*[^\s,:]+){0,2}", clause_rest)
    phrase = f"{lead} {token}" if lead else token
    return f"'{phrase}{tail.group() if tail else ''}'"


def _is_asked_to_act(before: str, after: str) -> bool:
    return bool(_ASKER_BEFORE.search(before) and _ASKED_ACTION_AFTER.match(after))


# --------------------------------------------------------------------------- references

# Standards and encodings that look like Jira keys.
_NOT_JIRA_PROJECTS = frozenset(
    {"UTF", "ISO", "SHA", "MD", "RFC", "CVE", "AES", "RSA", "TLS", "SSL", "HTTP", "IPV",
     "PEP", "GPT", "ECMA", "WCAG", "SSE", "MP", "ES", "IE", "COVID", "ISBN", "IEEE", "ANSI",
     "HMAC", "CRC", "BASE", "LATIN", "WIN", "CP", "TCP", "UDP", "TOP", "FY",
     "SARS", "UCS", "ASCII", "DDR", "USB", "PCI", "LTE", "NET"}
)  # fmt: skip
_GITHUB_URL = re.compile(
    r"https?://(?:www\.)?github\.com/(?P<owner>[\w.-]+)/(?P<repo>[\w.-]+)/(?:issues|pull)/(?P<number>\d+)\b"
)
_GITHUB_SHORT = re.compile(
    r"(?<![\w/.#-])(?P<owner>[A-Za-z0-9][\w.-]*)/(?P<repo>[\w.-]+)#(?P<number>[1-9]\d*)\b"
)
_JIRA_KEY = re.compile(r"(?<![\w-])(?P<project>[A-Z][A-Z0-9]{1,9})-(?P<number>[1-9]\d*)(?![\w-])")


def find_references(text: str, *, known_projects: Collection[str] | None = None) -> list[str]:
    """Jira keys and GitHub issues named in the text, as task keys, first mention first."""
    found: list[tuple[int, str]] = []
    url_spans: list[tuple[int, int]] = []
    for match in _GITHUB_URL.finditer(text):
        url_spans.append(match.span())
        found.append((match.start(), f"{match['owner']}/{match['repo']}#{match['number']}"))
    for match in _GITHUB_SHORT.finditer(text):
        if not _inside(match.start(), url_spans):
            found.append((match.start(), f"{match['owner']}/{match['repo']}#{match['number']}"))
    for match in _JIRA_KEY.finditer(text):
        if _is_jira_project(match["project"], known_projects) and not _inside(
            match.start(), url_spans
        ):
            found.append((match.start(), match.group()))
    return list(dict.fromkeys(ref for _, ref in sorted(found)))


def _is_jira_project(project: str, known_projects: Collection[str] | None) -> bool:
    if known_projects is not None:
        return project in known_projects
    return project not in _NOT_JIRA_PROJECTS


def _inside(position: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(start <= position < end for start, end in spans)


# --------------------------------------------------------------------------- quoted replies

_ON_WROTE = re.compile(r"^\s*On\b.{0,300}\bwrote:\s*$", re.IGNORECASE)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:Original|Forwarded)\s+Message\s*-{2,}\s*$", re.IGNORECASE
)
_HEADER_FROM = re.compile(r"^\s*\*?From:\*?\s")
_HEADER_SENT = re.compile(r"^\s*\*?(?:Sent|Date):\*?\s")
_QUOTED = re.compile(r"^\s*>")
_SIG_DASHES = re.compile(r"^--\s*$")
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")  # Outlook and mailing-list footers
_SEPARATOR = re.compile(r"^\s*(?:_{10,}|-{10,})\s*$")
_SENT_FROM_DEVICE = re.compile(r"^Sent from my [\w-]+(?: [\w-]+){0,4}\s*$")
_DASH_NAME = re.compile(r"^--?[A-Z][\w.'-]*(?: [A-Z][\w.'-]*){0,3}\s*$")
_VALEDICTION = re.compile(
    r"^\s*(?:(?:best|kind|warm|warmest)\s+(?:regards|wishes)|regards|best|cheers|thanks|"
    r"thanks\s+again|many\s+thanks|thank\s+you|sincerely|yours\s+truly|br|ta)\s*[,!.]?\s*$",
    re.IGNORECASE,
)
_SIGNATURE_MAX_LINES = 5


def strip_quoted_reply(text: str) -> str:
    """The new words of an email: quoted replies, forwarded headers and signatures removed.

    An "On … wrote:" header followed by "> " lines is dropped with the quote, and
    text below it is kept (an inline or bottom-posted reply); followed by
    unquoted text, it starts the quoted original and everything below goes.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    lines = _cut_at_quoted_original(lines)
    lines = _drop_quoted_lines(lines)
    lines = _cut_signature(lines)
    while lines and (not lines[-1].strip() or _SEPARATOR.match(lines[-1])):
        lines.pop()
    return "\n".join(line.rstrip() for line in lines).strip()


def _cut_at_quoted_original(lines: list[str]) -> list[str]:
    kept: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if _ORIGINAL_MESSAGE.match(line) or _is_outlook_header(lines, index):
            return kept
        header_end = _on_wrote_header_end(lines, index)
        if header_end is not None:
            if not _next_text_is_quoted(lines, header_end):
                return kept
            index = header_end
            continue
        kept.append(line)
        index += 1
    return kept


def _drop_quoted_lines(lines: list[str]) -> list[str]:
    """Remove "> " lines; the reply around a removed quote keeps one blank line between."""
    kept: list[str] = []
    in_quote = False
    for line in lines:
        if _QUOTED.match(line):
            in_quote = True
            continue
        if in_quote and not line.strip():
            continue  # blank lines padding the quote
        if in_quote:
            while kept and not kept[-1].strip():
                kept.pop()
            if kept:
                kept.append("")
            in_quote = False
        kept.append(line)
    return kept


def _is_outlook_header(lines: list[str], index: int) -> bool:
    if not _HEADER_FROM.match(lines[index]):
        return False
    return any(_HEADER_SENT.match(line) for line in lines[index + 1 : index + 4])


def _on_wrote_header_end(lines: list[str], index: int) -> int | None:
    """The index after an "On <date>, X wrote:" header, which mail clients wrap over up to 3 lines."""
    if not lines[index].lstrip().startswith("On "):
        return None
    joined = ""
    for end in range(index, min(index + 3, len(lines))):
        if not lines[end].strip():
            return None
        joined = f"{joined} {lines[end].strip()}"
        if _ON_WROTE.match(joined):
            return end + 1
    return None


def _next_text_is_quoted(lines: list[str], start: int) -> bool:
    following = next((line for line in lines[start:] if line.strip()), "")
    return bool(_QUOTED.match(following))


def _cut_signature(lines: list[str]) -> list[str]:
    for index, line in enumerate(lines):
        if _SIG_DASHES.match(line) or (_UNDERSCORES.match(line) and _has_text(lines[:index])):
            return lines[:index]
        if _is_sign_off(lines, index) and _has_text(lines[:index]):
            return lines[:index]
    return lines


def _is_sign_off(lines: list[str], index: int) -> bool:
    """'Sent from my iPhone', '-Abhishek', or 'Best regards,' above a name, near the end."""
    line, rest = lines[index], lines[index + 1 :]
    if _SENT_FROM_DEVICE.match(line) or _DASH_NAME.match(line):
        return _is_trailing_block(rest)
    if _VALEDICTION.match(line):
        following = next((text for text in rest if text.strip()), "")
        return _is_trailing_block(rest) and _looks_like_name(following)
    return False


def _looks_like_name(line: str) -> bool:
    """A signature line ("Alice Chen", "ACME Ops"), not a sentence; empty counts too."""
    words = line.split()
    return len(words) <= 4 and not re.search(r"[?!.:]\s*$", line)


def _has_text(lines: Sequence[str]) -> bool:
    return any(line.strip() for line in lines)


def _is_trailing_block(lines: Sequence[str]) -> bool:
    """A sign-off is a signature only near the end: a few short lines, a footer at most."""
    rest: list[str] = []
    for line in lines:
        if _UNDERSCORES.match(line) or _SIG_DASHES.match(line):
            break
        if line.strip():
            rest.append(line)
    return len(rest) <= _SIGNATURE_MAX_LINES and all(len(line) <= 60 for line in rest)
