"""Slack replies and direct messages through httpx, each carrying message metadata.

A follow-up goes into the request's thread (`thread_ts`) or, for a target with a
`user`, into the direct message channel `conversations.open` gives. The marker is
`metadata={"event_type": "syncd_followup", "event_payload": {"idempotency_key":
KEY}}`, which `conversations.replies` and `conversations.history` return with
`include_all_metadata=true`. httpx does not retry requests, and neither does
this module: `chat.postMessage` is sent once.

Looking for a marker in a direct message reads the whole conversation, newest
first; a DM with the bot holds little but syncd's own messages.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx

from syncd.connectors.slack.markup import mention
from syncd.connectors.slack.settings import SlackSettings
from syncd.writer.base import Delivery, Marker, WriteError, series_of

EVENT_TYPE = "syncd_followup"
# `ok: false` codes that no retry can fix: the conversation or person is gone.
PERMANENT_ERRORS = frozenset(
    {"channel_not_found", "is_archived", "thread_not_found", "user_not_found",
     "user_disabled", "cannot_dm_bot", "msg_too_long", "no_text", "invalid_metadata_format",
     "invalid_metadata_schema"}
)  # fmt: skip
Json = dict[str, Any]


def metadata(idempotency_key: str) -> Json:
    return {"event_type": EVENT_TYPE, "event_payload": {"idempotency_key": idempotency_key}}


def carries_key(message: Json, idempotency_key: str) -> bool:
    return key_of(message) == idempotency_key


def key_of(message: Json) -> str | None:
    """The idempotency key in a message's `syncd_followup` metadata, if it has one."""
    meta = message.get("metadata")
    if not isinstance(meta, dict) or meta.get("event_type") != EVENT_TYPE:
        return None
    payload = meta.get("event_payload")
    key = payload.get("idempotency_key") if isinstance(payload, dict) else None
    return key if isinstance(key, str) else None


def message_text(delivery: Delivery) -> str:
    """The mrkdwn posted: the recipient's mention, then the body (encoded when planned)."""
    text = delivery.body.strip()
    if not delivery.mention:
        return text
    try:
        return f"{mention(delivery.mention)} {text}"
    except ValueError as error:
        raise WriteError(f"cannot mention the recipient: {error}", permanent=True) from None


class SlackWriter:
    channel = "slack"

    def __init__(self, source: str, settings: SlackSettings) -> None:
        self.source = source
        base_url = settings.base_url if settings.base_url.endswith("/") else settings.base_url + "/"
        self.client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {settings.token.get_secret_value()}"},
            timeout=settings.timeout,
        )

    def close(self) -> None:
        self.client.close()

    def find(self, delivery: Delivery) -> str | None:
        for message in self._conversation(delivery):
            if carries_key(message, delivery.idempotency_key):
                return str(message["ts"])
        return None

    def markers(self, delivery: Delivery) -> list[Marker]:
        series = series_of(delivery.idempotency_key)
        found = []
        for message in self._conversation(delivery):
            key = key_of(message)
            if key is not None and series_of(key) == series:
                exact = key == delivery.idempotency_key
                found.append(Marker(str(message["ts"]), exact, _when(message), key))
        return found

    def post(self, delivery: Delivery) -> str:
        channel, thread_ts = self._where(delivery)
        params: Json = {
            "channel": channel,
            "text": message_text(delivery),
            "metadata": json.dumps(metadata(delivery.idempotency_key)),
        }
        if thread_ts:
            params["thread_ts"] = thread_ts
        body = self._call("chat.postMessage", params)
        return str(body["ts"])

    # --- plumbing ------------------------------------------------------------------

    def _where(self, delivery: Delivery) -> tuple[str, str | None]:
        """The channel and thread to post in; a DM channel is opened for a `user` target."""
        target = delivery.target
        if target.get("channel"):
            thread = target.get("thread_ts")
            return str(target["channel"]), str(thread) if thread else None
        if target.get("user"):
            opened = self._call("conversations.open", {"users": str(target["user"])})
            channel = opened.get("channel")
            if not isinstance(channel, dict) or not channel.get("id"):
                raise WriteError("Slack's conversations.open returned no channel id")
            return str(channel["id"]), None
        raise WriteError("a Slack delivery needs target channel or user", permanent=True)

    def _conversation(self, delivery: Delivery) -> Iterator[Json]:
        channel, thread_ts = self._where(delivery)
        params: Json = {"channel": channel}
        if thread_ts:
            method, params["ts"] = "conversations.replies", thread_ts
        else:
            method = "conversations.history"
        params.update({"include_all_metadata": "true", "limit": 200})
        cursor = ""
        while True:
            body = self._call(method, {**params, "cursor": cursor} if cursor else params)
            yield from (m for m in body.get("messages") or [] if isinstance(m, dict))
            meta = body.get("response_metadata")
            cursor = str(meta.get("next_cursor") or "") if isinstance(meta, dict) else ""
            if not cursor:
                return

    def _call(self, method: str, params: Json) -> Json:
        try:
            response = self.client.post(method, data=params)
        except httpx.HTTPError as error:  # timeouts, resets, refused connections
            raise WriteError(
                f"Slack did not answer {method} for source {self.source} ({type(error).__name__})"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise WriteError(f"Slack answered {response.status_code} to {method} without JSON")
        if not body.get("ok"):
            code = str(body.get("error") or f"http_{response.status_code}")
            raise WriteError(
                f"Slack refused {method} for source {self.source}: {code}",
                permanent=code in PERMANENT_ERRORS,
            )
        return body


def _when(message: Json) -> datetime | None:
    try:
        return datetime.fromtimestamp(float(message["ts"]), UTC)
    except (KeyError, TypeError, ValueError):
        return None
