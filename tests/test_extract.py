"""Table-driven tests for syncd.extract.

Every expected value is written out literally. The message time is frozen at
Wednesday 2026-03-04 10:00 UTC unless a case says otherwise; in March 2026,
Mon 2, Fri 6, Mon 9, Wed 11, Fri 13.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import NamedTuple

import pytest
from corpus_root import CORPUS as SHARED_CORPUS

from syncd.extract import (
    DateOrder,
    DoerResult,
    extract_doer,
    extract_due,
    extract_priority,
    find_references,
    strip_quoted_reply,
)
from syncd.model import Priority

WEDNESDAY_10AM = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
# 22:30 UTC on Wednesday is already 07:30 on Thursday 2026-03-05 in Tokyo.
WEDNESDAY_LATE_UTC = datetime(2026, 3, 4, 22, 30, tzinfo=UTC)
# 05:00 UTC on Wednesday is still 21:00 on Tuesday 2026-03-03 in Los Angeles.
WEDNESDAY_EARLY_UTC = datetime(2026, 3, 4, 5, 0, tzinfo=UTC)

CORPUS = SHARED_CORPUS / "email" / "email-reply-parser"


class DueCase(NamedTuple):
    text: str
    expected: date | None
    timezone: str = "UTC"
    date_order: DateOrder = "MDY"
    sent_at: datetime = WEDNESDAY_10AM


DUE_CASES = [
    # weekdays: the next one strictly after the message day
    DueCase("Can you finish the report by Friday?", date(2026, 3, 6)),
    DueCase("by Thursday please", date(2026, 3, 5)),
    DueCase("Please have it ready by Wednesday", date(2026, 3, 11)),
    DueCase("by this Wednesday", date(2026, 3, 4)),
    DueCase("Deadline is next Friday", date(2026, 3, 13)),
    DueCase("The due date is next Monday", date(2026, 3, 9)),
    DueCase("by Monday morning", date(2026, 3, 9)),
    DueCase("need it Friday", date(2026, 3, 6)),
    DueCase("Keep the banner up until Friday", date(2026, 3, 6)),
    # relative days
    DueCase("Need this EOD tomorrow", date(2026, 3, 5)),
    DueCase("Send me the numbers EOD", date(2026, 3, 4)),
    DueCase("EOD Friday works", date(2026, 3, 6)),
    DueCase("Can you take a look tomorrow?", date(2026, 3, 5)),
    DueCase("Please deploy today", date(2026, 3, 4)),
    DueCase("by tmrw", date(2026, 3, 5)),
    DueCase("Can you do it by the day after tomorrow?", date(2026, 3, 6)),
    DueCase("close of business today", date(2026, 3, 4)),
    # weeks, months, quarters
    DueCase("Can you get this done next week?", date(2026, 3, 13)),
    DueCase("by early next week", date(2026, 3, 9)),
    DueCase("by EOW", date(2026, 3, 6)),
    DueCase("by the end of the week", date(2026, 3, 6)),
    DueCase("by end of month", date(2026, 3, 31)),
    DueCase("by the end of next month", date(2026, 4, 30)),
    DueCase("before end of quarter", date(2026, 3, 31)),
    # calendar dates
    DueCase("Please send it before 3 Dec", date(2026, 12, 3)),
    DueCase("due 2026-03-10", date(2026, 3, 10)),
    DueCase("Due: March 5th", date(2026, 3, 5)),
    DueCase("deadline is March 20", date(2026, 3, 20)),
    DueCase("no later than 15 March 2026", date(2026, 3, 15)),
    DueCase("by Dec 3rd, 2026", date(2026, 12, 3)),
    DueCase("needed by the 15th", date(2026, 3, 15)),
    DueCase("due 10-Mar-2026", date(2026, 3, 10)),  # dateparser fallback
    DueCase("due 3/1", date(2027, 3, 1)),  # year-less dates prefer the future
    # date order
    DueCase("due 12/03", date(2026, 12, 3), date_order="MDY"),
    DueCase("due 12/03", date(2026, 3, 12), date_order="DMY"),
    DueCase("due 12/03/2026", date(2026, 3, 12), date_order="DMY"),
    DueCase("due 12/03/26", date(2026, 12, 3), date_order="MDY"),
    DueCase("due 2026/03/10", date(2026, 3, 10), date_order="YMD"),
    DueCase("due 03/12", date(2026, 3, 12), date_order="YMD"),
    # durations and times of day (sent at 10:00)
    DueCase("Please fix within 3 days", date(2026, 3, 7)),
    DueCase("within two business days", date(2026, 3, 6)),
    DueCase("within a week", date(2026, 3, 11)),
    DueCase("Please reply within 2 hours", date(2026, 3, 4)),
    DueCase("by 5pm", date(2026, 3, 4)),
    DueCase("by 9am", date(2026, 3, 5)),
    DueCase("by noon", date(2026, 3, 4)),
    DueCase("by 17:00", date(2026, 3, 4)),
    DueCase("by 5pm Friday", date(2026, 3, 6)),
    DueCase("need it in 2 days", date(2026, 3, 6)),
    DueCase("Can you get it fixed by Monday?", date(2026, 3, 9)),
    DueCase("Deadline: 3/15", date(2026, 3, 15)),
    DueCase("by 31.12.2026", date(2026, 12, 31), date_order="DMY"),
    # not deadlines
    DueCase("ASAP please", None),
    DueCase("I met Friday's deadline", None),
    DueCase("the call is on Thursday", None),
    DueCase("we deployed on 12/03", None),
    DueCase("That broke last Friday", None),
    DueCase("It has been flaky since Monday", None),
    DueCase("I'm out until Friday", None),
    DueCase("We shipped it before Friday", None),
    DueCase("Friday works for the retro", None),
    DueCase("Please review when you can", None),
    DueCase("Written by Alice", None),
    DueCase("Is the call tomorrow?", None),
    DueCase("improve latency by 3.5 seconds", None),
    DueCase("the release was pushed back by 2 days", None),
    DueCase("due to the outage on Friday", None),
    DueCase("I'm off until Monday", None),
    DueCase("We were asked to finish by Friday", None),
    # time zones: the message day is the day in the configured zone
    DueCase("by tomorrow", date(2026, 3, 6), "Asia/Tokyo", sent_at=WEDNESDAY_LATE_UTC),
    DueCase("by tomorrow", date(2026, 3, 5), "UTC", sent_at=WEDNESDAY_LATE_UTC),
    DueCase("by Thursday", date(2026, 3, 12), "Asia/Tokyo", sent_at=WEDNESDAY_LATE_UTC),
    DueCase("by Thursday", date(2026, 3, 5), "UTC", sent_at=WEDNESDAY_LATE_UTC),
    DueCase("Send it EOD", date(2026, 3, 5), "Asia/Tokyo", sent_at=WEDNESDAY_LATE_UTC),
    DueCase("by tomorrow", date(2026, 3, 4), "America/Los_Angeles", sent_at=WEDNESDAY_EARLY_UTC),
]


@pytest.mark.parametrize("case", DUE_CASES, ids=lambda c: f"{c.text} [{c.timezone} {c.date_order}]")
def test_extract_due(case: DueCase) -> None:
    found = extract_due(
        case.text, sent_at=case.sent_at, timezone=case.timezone, date_order=case.date_order
    )
    assert found == case.expected


def test_extract_due_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        extract_due("by Friday", sent_at=datetime(2026, 3, 4, 10, 0))


PRIORITY_CASES = [
    ("This is urgent", (Priority.HIGH, "urgent")),
    ("ASAP please", (Priority.HIGH, "ASAP")),
    ("as soon as possible please", (Priority.HIGH, "as soon as possible")),
    ("P1 incident on checkout", (Priority.HIGH, "P1")),
    ("P0: payments failing", (Priority.HIGH, "P0")),
    ("sev1 - checkout failing", (Priority.HIGH, "sev1")),
    ("critical bug in billing", (Priority.HIGH, "critical")),
    ("this is a blocker for the release", (Priority.HIGH, "blocker")),
    ("outage in eu-west", (Priority.HIGH, "outage")),
    ("prod is down!", (Priority.HIGH, "prod is down")),
    ("This is high priority", (Priority.HIGH, "high priority")),
    ("P2", (Priority.MEDIUM, "P2")),
    ("please look at it soon", (Priority.MEDIUM, "soon")),
    ("medium priority", (Priority.MEDIUM, "medium priority")),
    ("whenever you get a chance", (Priority.LOW, "whenever you get a chance")),
    ("no rush on this one", (Priority.LOW, "no rush")),
    ("low priority cleanup", (Priority.LOW, "low priority")),
    ("nice to have", (Priority.LOW, "nice to have")),
    ("P3", (Priority.LOW, "P3")),
    ("not urgent", (Priority.LOW, "not urgent")),
    ("this isn't critical", (Priority.LOW, "isn't critical")),
    ("not a blocker", (Priority.LOW, "not a blocker")),
    ("not urgent, but P2", (Priority.MEDIUM, "P2")),
    ("not really urgent", (Priority.LOW, "not really urgent")),
    ("non-critical cleanup", (Priority.LOW, "non-critical")),
    ("non-blocking IO is fine", (None, None)),
    ("prod down again", (Priority.HIGH, "prod down")),
    ("can you update the docs", (None, None)),
    ("see step P10 of the runbook", (None, None)),
    ("this week", (None, None)),
]


@pytest.mark.parametrize(("text", "expected"), PRIORITY_CASES, ids=[c[0] for c in PRIORITY_CASES])
def test_extract_priority(text: str, expected: tuple[Priority | None, str | None]) -> None:
    assert extract_priority(text) == expected


class DoerCase(NamedTuple):
    text: str
    mentions: list[str]
    owner: str | None
    team: str | None = None
    also_asked: tuple[str, ...] = ()
    team_aliases: tuple[str, ...] = ()


DOER_CASES = [
    DoerCase("<@U1> can you review the PR? thanks <@U2>", ["<@U1>", "<@U2>"], "<@U1>"),
    DoerCase("thanks <@U2>! <@U1> please deploy it", ["<@U2>", "<@U1>"], "<@U1>"),
    DoerCase("thanks <@U2>, <@U1> could you take over?", ["<@U2>", "<@U1>"], "<@U1>"),
    DoerCase("assigning to <@U3>, cc <@U4>", ["<@U3>", "<@U4>"], "<@U3>"),
    DoerCase("Reassigning this to <@U9>", ["<@U9>"], "<@U9>"),
    DoerCase("as <@U2> said, <@U1> will take this", ["<@U2>", "<@U1>"], "<@U1>"),
    DoerCase("as <@U2> mentioned, <@U3> is taking this", ["<@U2>", "<@U3>"], "<@U3>"),
    DoerCase("could <@U5> look at the flaky test? FYI <@U6>", ["<@U5>", "<@U6>"], "<@U5>"),
    DoerCase("asking <@U8> to review, per <@U2>", ["<@U8>", "<@U2>"], "<@U8>"),
    DoerCase("@U1: please rotate the keys", ["@U1"], "@U1"),
    DoerCase("<@U7> the staging DB is full", ["<@U7>"], "<@U7>"),
    DoerCase("FYI <@U4> the deploy is done", ["<@U4>"], None),
    DoerCase("cc <@U3>", ["<@U3>"], None),
    DoerCase("Al, can you ping Alice?", ["Alice", "Al"], "Al"),
    DoerCase("Hi Alice, could you send the invoice? Bob is cc'd.", ["Alice", "Bob"], "Alice"),
    DoerCase(
        "<@U1> can you fix the login? <@U2> can you update the docs?",
        ["<@U1>", "<@U2>"],
        "<@U1>",
        also_asked=("<@U2>",),
    ),
    DoerCase(
        "<!subteam^S123|devops> can someone look at the alerts? cc <@U2>",
        ["<@U2>"],
        None,
        team="devops",
    ),
    DoerCase("<!here> the build is red, can someone check", [], None, team="here"),
    DoerCase("@channel please update your passwords", [], None, team="channel"),
    DoerCase("@team can you triage this?", [], None, team="team"),
    DoerCase("<!subteam^S123|devops> <@U1> can you take this?", ["<@U1>"], "<@U1>"),
    DoerCase(
        "support@acme.example please reset my password",
        ["support@acme.example"],
        None,
        team="support@acme.example",
        team_aliases=("support",),
    ),
]


@pytest.mark.parametrize("case", DOER_CASES, ids=lambda c: c.text)
def test_extract_doer(case: DoerCase) -> None:
    result = extract_doer(case.text, case.mentions, team_aliases=case.team_aliases)
    assert (result.owner, result.team, result.also_asked) == (
        case.owner,
        case.team,
        case.also_asked,
    )


def test_extract_doer_gives_its_reason_in_plain_words() -> None:
    result = extract_doer("<@U1> can you review? thanks <@U2>", ["<@U1>", "<@U2>"])
    assert result == DoerResult(owner="<@U1>", team=None, reason="asked directly: '<@U1> can you'")


REFERENCE_CASES = [
    ("See OPS-42 and https://github.com/acme/api/issues/12", ["OPS-42", "acme/api#12"]),
    ("UTF-8, ISO-8601 and SHA-256 are not keys", []),
    ("acme/web#7 duplicates acme/web#7 and OPS-42", ["acme/web#7", "OPS-42"]),
    ("OPS-042 and ops-42 are not keys", []),
    ("A-1 is too short, TOOLONGPROJECT1-5 too long", []),
    ("https://github.com/acme/api/pull/99 fixes it", ["acme/api#99"]),
    ("https://acme.atlassian.net/browse/OPS-7", ["OPS-7"]),
    ("CVE-2024-1234 is a CVE", []),
    ("DEV2-10 blocks OPS-1", ["DEV2-10", "OPS-1"]),
]


@pytest.mark.parametrize(("text", "expected"), REFERENCE_CASES, ids=[c[0] for c in REFERENCE_CASES])
def test_find_references(text: str, expected: list[str]) -> None:
    assert find_references(text) == expected


def test_find_references_can_be_restricted_to_known_projects() -> None:
    assert find_references("DEV-1 and OPS-2", known_projects={"OPS"}) == ["OPS-2"]


STRIPPED_CORPUS = {
    "correct_sig.txt": "this is an email with a correct -- signature.",
    "email_1_1.txt": (
        "Hi folks\n\nWhat is the best way to clear a Riak bucket of all key, values after\n"
        "running a test?\nI am currently using the Java HTTP API."
    ),
    "email_1_3.txt": "Oh thanks.\n\nHaving the function would be great.",
    "email_1_4.txt": "Awesome! I haven't had another problem with it.",
    "email_1_6.txt": "I get proper rendering as well.\n\nSent from a magnificent torch of pixels",
    "email_1_7.txt": ":+1:",
    "email_1_8.txt": "I will reply under this one\n\nand under this.",
    "email_2_1.txt": "Outlook with a reply",
    "email_2_2.txt": "Outlook with a reply directly above line",
    "email_2_3.txt": "Outlook with a reply above headers using unusual format",
    "email_BlackBerry.txt": "Here is another email",
    "email_iPhone.txt": "Here is another email",
    "email_multi_word_sent_from_my_mobile_device.txt": "Here is another email",
    "email_sent_from_my_not_signature.txt": (
        "Here is another email\n\nSent from my desk, is much easier then my mobile phone."
    ),
    "email_sig_delimiter_in_middle_of_line.txt": (
        "Hi there!\n\nStuff happened.\n\nAnd here is a fix -- this is not a signature.\n\nkthxbai"
    ),
    "email_gmail.txt": "This is a test for inbox replying to a github message.",
    "email_headers_no_delimiter.txt": "And another reply!",
    "email_one_is_not_on.txt": (
        "Thank, this is really helpful.\n\nOne outstanding question I had:\n\n"
        "Locally (on development), when I run..."
    ),
    "greedy_on.txt": (
        "On your remote host you can run:\n\n     telnet 127.0.0.1 52698\n\n"
        "This should connect to TextMate (on your Mac, via the tunnel). If that\n"
        "fails, the tunnel is not working."
    ),
    "email_bullets.txt": (
        "test 2 this should list second\n\nand have spaces\n\nand retain this formatting\n\n\n"
        "   - how about bullets\n   - and another"
    ),
    "pathological.txt": (
        "I think you're onto something. I will try to fix the problem as soon as I\n"
        "get back to a computer."
    ),
}


@pytest.mark.parametrize(("name", "expected"), STRIPPED_CORPUS.items(), ids=list(STRIPPED_CORPUS))
def test_strip_quoted_reply_on_corpus(name: str, expected: str) -> None:
    body = (CORPUS / name).read_text(encoding="utf-8")
    assert strip_quoted_reply(body) == expected


def test_strip_quoted_reply_keeps_a_reply_written_below_the_quote() -> None:
    body = (CORPUS / "email_1_2.txt").read_text(encoding="utf-8")
    stripped = strip_quoted_reply(body)
    assert stripped.startswith("Hi,\n\nYou can list the keys for the bucket")
    assert "Abhishek Kona" not in stripped
    assert "riak-users mailing list" not in stripped


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            "Can you fix OPS-42 by Friday?\n\n-----Original Message-----\nFrom: Bob\nurgent!",
            "Can you fix OPS-42 by Friday?",
        ),
        ("Please deploy today.\n\nBest regards,\nAlice Chen\nACME Ops", "Please deploy today."),
        ("Thanks!", "Thanks!"),
        ("Hi Bob,\nThanks\nCan you fix X by Friday?", "Hi Bob,\nThanks\nCan you fix X by Friday?"),
        ("Done.\n\nSent from my iPhone\n\n> On Monday you wrote", "Done."),
    ],
    ids=[
        "outlook original message",
        "best regards block",
        "a thank-you alone stays",
        "a thank-you above a request stays",
        "device signature",
    ],
)
def test_strip_quoted_reply_on_written_cases(body: str, expected: str) -> None:
    assert strip_quoted_reply(body) == expected


def test_a_stripped_email_yields_only_the_new_request() -> None:
    body = (
        "Bob, can you restart the worker by Friday? Not urgent.\n\n"
        "On Mon, Mar 2, 2026 at 9:00 AM Alice <alice@acme.example> wrote:\n"
        "> Carol, the deadline was 12/03, urgent\n"
    )
    text = strip_quoted_reply(body)
    assert extract_due(text, sent_at=WEDNESDAY_10AM) == date(2026, 3, 6)
    assert extract_priority(text) == (Priority.LOW, "Not urgent")
    assert extract_doer(text, ["Bob", "Carol"]).owner == "Bob"
