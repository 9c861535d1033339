"""Slack message mapping: hand-built payloads and every message in the recorded corpus."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
import yaml
from corpus import CORPUS

from syncd.config import PolicySettings
from syncd.connectors.slack.mapping import (
    Mapper,
    MappingError,
    ReplyFact,
    Workspace,
    readable,
    says_any,
    title_of,
)
from syncd.connectors.slack.settings import SlackSettings
from syncd.model import Status

BOT = "U0BOT"
SENT = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)  # a Wednesday
TS = f"{SENT.timestamp():.6f}"
NAMES = {"U1": "Alice", "U2": "Bob", "U3": "Carol"}


def mapper(**settings: Any) -> Mapper:
    return Mapper(
        source="chat",
        settings=SlackSettings(kind="slack", token="x", channels=["C1"], **settings),
        policy=PolicySettings(team_aliases=["ops"]),
        workspace=Workspace(url="https://acme.slack.com/", bot_user_id=BOT),
        person=lambda uid: {"U1": "alice", "U2": "bob", "U3": "carol"}.get(uid, f"slack:{uid}"),
        display=lambda uid: NAMES.get(uid, uid),
    )


def message(text: str, user: str = "U2", **extra: Any) -> dict[str, Any]:
    return {"type": "message", "user": user, "text": text, "ts": TS, **extra}


def reply(text: str, user: str, minutes: int = 5) -> ReplyFact:
    fact = mapper().reply_fact(
        {"user": user, "text": text, "ts": f"{SENT.timestamp() + 60 * minutes:.6f}"}
    )
    assert fact is not None
    return fact


def test_a_request_maps_every_field() -> None:
    task = mapper().map_message(
        "C1", message("<@U1> can you renew the cert by Friday? urgent\nDetails in the runbook."), []
    )
    assert task.key == task.external_id == f"C1/{TS}"
    assert task.url == f"https://acme.slack.com/archives/C1/p{TS.replace('.', '')}"
    assert task.title == "@Alice can you renew the cert by Friday? urgent"
    assert task.description.endswith("Details in the runbook.")
    assert (task.owners, task.reporter, task.team) == (["alice"], "bob", None)
    assert task.due == date(2026, 3, 6) and task.priority is not None
    assert (task.status, task.created_at, task.last_activity_at) == (Status.OPEN, SENT, SENT)


@pytest.mark.parametrize(
    ("text", "owners", "team"),
    [
        ("<!here> can someone restart the relay?", [], "here"),
        ("<!channel> please restart the relay", [], "channel"),
        ("<!subteam^S1|@ops> please restart the relay", [], "ops"),
        ("<@U1> and <@U2> can you both restart the relay?", ["alice", "bob"], None),
        ("<@U1> please restart the relay, thanks <@U3> for the heads-up", ["alice"], None),
        ("Restart the relay please", [], None),
        (f"<@{BOT}> <@U3> please restart the relay", ["carol"], None),
    ],
)
def test_owner_extraction(text: str, owners: list[str], team: str | None) -> None:
    task = mapper().map_message("C1", message(text), [])
    assert (task.owners, task.team) == (owners, team)


def test_done_by_a_reaction_from_someone_else_then_verified_by_the_requester() -> None:
    done = message("<@U1> fix the relay", reactions=[{"name": "white_check_mark", "users": ["U1"]}])
    assert mapper().map_message("C1", done, []).status is Status.DONE
    verified = message(
        "<@U1> fix the relay", reactions=[{"name": "white_check_mark", "users": ["U1", "U2"]}]
    )
    task = mapper().map_message("C1", verified, [])
    assert (task.status, task.verified_by) == (Status.VERIFIED, "requester:bob")


def test_the_requesters_own_reaction_alone_is_done_not_verified() -> None:
    own = message("fix the relay", reactions=[{"name": "white_check_mark", "users": ["U2"]}])
    assert mapper().map_message("C1", own, []).status is Status.DONE


def test_status_from_replies() -> None:
    m = mapper()
    request = message("<@U1> can you fix the relay?")
    assert m.map_message("C1", request, [reply("looking", "U1")]).status is Status.IN_PROGRESS
    assert m.map_message("C1", request, [reply("looking", "U3")]).status is Status.OPEN
    done = [reply("Fixed it.", "U1", 10)]
    task = m.map_message("C1", request, done)
    assert task.status is Status.DONE and task.closed_at is not None
    confirmed = [*done, reply("Confirmed, thanks", "U2", 20)]
    assert m.map_message("C1", request, confirmed).status is Status.VERIFIED
    premature = [reply("verified?", "U2", 1), *done]
    assert m.map_message("C1", request, premature).status is Status.DONE
    assert m.map_message("C1", request, confirmed).participants == ["bob", "alice"]


def test_custom_reactions_and_phrases() -> None:
    m = mapper(done_reaction="heavy_check_mark", verify_reaction="+1", done_phrases=["shipped"])
    reacted = message("fix it", reactions=[{"name": "heavy_check_mark", "users": ["U1"]},
                                           {"name": "+1", "users": ["U2"]}])  # fmt: skip
    assert m.map_message("C1", reacted, []).status is Status.VERIFIED
    shipped = m.reply_fact({"user": "U1", "text": "shipped", "ts": TS})
    assert shipped is not None and shipped.done
    assert m.map_message("C1", message("fix it"), [shipped]).status is Status.DONE


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Done!", True), ("done, deployed to prod", True), ("not done yet", False),
     ("is it fixed?", False), ("almost done", False), ("abandoned", False),
     ("I haven't fixed it", False), ("fixed. Anything else?", True), ("done yet?", False)],
)  # fmt: skip
def test_done_phrases(text: str, expected: bool) -> None:
    assert says_any(text, ["done", "fixed", "deployed"]) is expected


def test_capture_policies() -> None:
    plain = message("restart the relay")
    ticketed = message("restart it", reactions=[{"name": "ticket", "users": ["U1"]}])
    mentioning = message(f"<@{BOT}> restart it")
    assert mapper().is_captured(plain)
    by_reaction = mapper(capture="reaction")
    assert [by_reaction.is_captured(m) for m in (plain, ticketed, mentioning)] == [
        False,
        True,
        False,
    ]
    by_mention = mapper(capture="mention")
    assert [by_mention.is_captured(m) for m in (plain, ticketed, mentioning)] == [
        False,
        False,
        True,
    ]


@pytest.mark.parametrize(
    "payload",
    [
        message("hello", bot_id="B1"),
        message("joined", subtype="channel_join"),
        message("reminder", metadata={"event_type": "syncd_followup", "event_payload": {}}),
        message("a reply", thread_ts="1.000001"),
        message("from the bot", user=BOT),
        {"type": "message", "text": "no user", "ts": TS},
    ],
    ids=["bot", "join", "syncd", "reply", "bot-user", "no-user"],
)
def test_not_requests(payload: dict[str, Any]) -> None:
    assert not mapper().is_candidate(payload)


def test_references_link_and_replies_are_activity() -> None:
    m = mapper()
    linking = message("Status of OPS-12? also https://github.com/acme/api/issues/7")
    assert m.references(linking) == ["OPS-12", "acme/api#7"]
    activity = m.activity_of(linking, [reply("on it", "U1", 30)], m.references(linking))
    assert {(a.target_key, a.person) for a in activity} == {
        ("OPS-12", "bob"), ("OPS-12", "alice"), ("acme/api#7", "bob"), ("acme/api#7", "alice")
    }  # fmt: skip
    task = m.map_message("C1", message("fix the relay"), [reply("tracked in OPS-9", "U1")])
    assert task.links == ["OPS-9"]


def test_bots_and_syncd_are_not_reply_activity() -> None:
    m = mapper()
    assert m.reply_fact({"user": BOT, "text": "done", "ts": TS}) is None
    assert m.reply_fact({"user": "U9", "bot_id": "B9", "text": "done", "ts": TS}) is None
    syncd = {"user": "U9", "text": "x", "ts": TS, "metadata": {"event_type": "syncd_followup"}}
    assert m.reply_fact(syncd) is None
    fact = reply("done", "U1")
    assert ReplyFact.from_json(json.loads(json.dumps(fact.to_json()))) == fact


def test_readable_markup_and_titles() -> None:
    text = "<@U1|al> see <#C9|ops-alerts> and <https://x.example/a|the doc> &amp; <mailto:a@b.c|a@b.c> <!here>"
    assert readable(text, NAMES.get) == "@al see #ops-alerts and the doc & a@b.c @here"  # type: ignore[arg-type]
    assert title_of("\n\n  first line  \nsecond") == "first line"
    long = title_of("word " * 60)
    assert len(long) <= 120 and long.endswith("…")


@pytest.mark.parametrize(
    "payload",
    [message("x", ts="yesterday"), message("x", ts=None), message(["not", "text"]),
     message("x", user="")],
)  # fmt: skip
def test_malformed_messages_raise_mapping_error(payload: dict[str, Any]) -> None:
    with pytest.raises(MappingError):
        mapper().map_message("C1", payload, [])


# --- the recorded corpus ------------------------------------------------------------------


def corpus_messages() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every message object in ../shared/corpus/slack: method examples, specs, events, VCR."""
    root = CORPUS / "slack"
    for path in sorted(root.rglob("*")):
        if path.suffix == ".json":
            yield from _messages_in(str(path.relative_to(root)), json.loads(path.read_text()))
        elif path.suffix == ".yml":
            for n, exchange in enumerate(
                yaml.safe_load(path.read_text()).get("http_interactions", [])
            ):
                body = exchange.get("response", {}).get("body", {}).get("string") or ""
                try:
                    parsed = json.loads(body)
                except ValueError:
                    continue
                yield from _messages_in(f"{path.name}#{n}", parsed)


def _messages_in(origin: str, value: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        if value.get("type") == "message" and "ts" in value:
            yield origin, value
        for key, item in value.items():
            yield from _messages_in(f"{origin}/{key}", item)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _messages_in(f"{origin}[{index}]", item)


CORPUS_MESSAGES = list(corpus_messages())


def test_the_corpus_has_messages() -> None:
    assert len(CORPUS_MESSAGES) >= 20


@pytest.mark.parametrize(
    ("origin", "payload"), CORPUS_MESSAGES, ids=[o for o, _ in CORPUS_MESSAGES]
)
def test_every_corpus_message_maps_or_is_quarantined(origin: str, payload: dict[str, Any]) -> None:
    m = mapper()
    if not m.is_candidate(payload):
        return  # a bot's, a reply, a system subtype: skipped by design
    try:
        fact = m.reply_fact(payload)
        task = m.map_message("C1", payload, [fact] if fact else [])
    except MappingError as error:
        assert str(error), "a quarantined item needs a reason"
        return
    assert task.key.startswith("C1/") and task.title
