"""Webhook authentication and triage, as pure functions over headers and body.

Each source kind signs differently (see SPEC.md, `[service]`). A verified event
is only *triage*d here: whether it can change the ledger. A verified signature
makes the payload the source's own word; the backend then ingests what it carries
(`syncd.service.ingest`) or, where a payload cannot tell the whole story, asks
the poll loop for a prompt (coalesced) incremental poll of that source.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SLACK_WINDOW_SECONDS = 300
MAX_DELIVERY_ID = 200  # the inbox column's width

# Events that can change a work item; anything else is acknowledged and ignored.
GITHUB_EVENTS = frozenset({"issues", "issue_comment", "sub_issues", "label", "milestone"})
SLACK_EVENTS = frozenset({"message", "reaction_added", "reaction_removed", "app_mention"})
JIRA_EVENT_PREFIXES = ("jira:issue_", "comment_", "worklog_", "issuelink_")


class Rejected(Exception):
    """The request is not from the source it claims: 401, nothing written."""


@dataclass(frozen=True)
class Verdict:
    relevant: bool  # True: the event can change a task (ingest it, or poll promptly)
    reply: dict[str, Any] | None = None  # Slack's url_verification answer
    event: str = ""
    # The sender's id for this delivery (the same on a redelivery): the inbox's dedupe key.
    delivery_id: str = ""


def _hmac_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def delivery_id(given: object, body: bytes) -> str:
    """The sender's delivery id; a hash of the body where it sent none (or an unusable one).

    GitHub and Jira retry a delivery with the same body, so the hash still dedupes
    their redeliveries; two distinct events with byte-identical bodies would be taken
    as one, which their payloads' timestamps and ids make practically impossible.
    """
    if isinstance(given, str) and given.strip() and len(given) <= MAX_DELIVERY_ID:
        return given.strip()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _check(expected: str, given: str | None) -> None:
    if not given or not hmac.compare_digest(expected, given):
        raise Rejected("signature does not match")


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def github(secret: str, headers: Mapping[str, str], body: bytes) -> Verdict:
    _check("sha256=" + _hmac_hex(secret, body), headers.get("x-hub-signature-256"))
    event = headers.get("x-github-event", "")
    return Verdict(
        relevant=event in GITHUB_EVENTS,
        event=event,
        delivery_id=delivery_id(headers.get("x-github-delivery"), body),
    )


def jira(secret: str, headers: Mapping[str, str], body: bytes) -> Verdict:
    _check("sha256=" + _hmac_hex(secret, body), headers.get("x-hub-signature"))
    event = str(_json(body).get("webhookEvent", ""))
    return Verdict(
        relevant=event.startswith(JIRA_EVENT_PREFIXES),
        event=event,
        delivery_id=delivery_id(headers.get("x-atlassian-webhook-identifier"), body),
    )


class ReplayGuard:
    """Slack signatures seen inside the replay window; a second sighting is a replay."""

    def __init__(self, limit: int = 100_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._limit = limit

    def first_sighting(self, signature: str, now: float) -> bool:
        while self._seen and (
            next(iter(self._seen.values())) < now - 2 * SLACK_WINDOW_SECONDS
            or len(self._seen) > self._limit
        ):
            self._seen.popitem(last=False)
        if signature in self._seen:
            return False
        self._seen[signature] = now
        return True


def slack(
    secret: str, headers: Mapping[str, str], body: bytes, now: float, replays: ReplayGuard
) -> Verdict:
    stamp = headers.get("x-slack-request-timestamp", "")
    try:
        age = abs(now - int(stamp))
    except ValueError:
        raise Rejected("missing or malformed X-Slack-Request-Timestamp") from None
    if age > SLACK_WINDOW_SECONDS:
        raise Rejected("request timestamp is outside the 5-minute window")
    signature = headers.get("x-slack-signature")
    _check("v0=" + _hmac_hex(secret, f"v0:{stamp}:".encode() + body), signature)
    if signature is None or not replays.first_sighting(signature, now):
        raise Rejected("replayed request")
    payload = _json(body)
    if payload.get("type") == "url_verification":
        return Verdict(
            relevant=False, reply={"challenge": payload.get("challenge")}, event="url_verification"
        )
    event = payload.get("event")
    event_type = str(event.get("type", "")) if isinstance(event, dict) else ""
    relevant = payload.get("type") == "event_callback" and event_type in SLACK_EVENTS
    return Verdict(
        relevant=relevant,
        event=event_type or str(payload.get("type", "")),
        delivery_id=delivery_id(payload.get("event_id"), body),
    )
