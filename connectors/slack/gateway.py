"""A thin gateway over Slack's Web API through httpx: cursor pages, classified errors.

Every call is a read, retried once, here, by `syncd.retry` (honouring
`Retry-After` on HTTP 429). Slack answers most failures with HTTP 200 and
`{"ok": false, "error": "<code>"}`; the code is translated into one of syncd's
failure kinds with a sentence a person can act on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from syncd import telemetry
from syncd.errors import FailureKind, SourceError, classify_status
from syncd.retry import call_idempotent

Json = dict[str, Any]

# Above this the gateway fails the source instead of waiting (the next run resumes).
MAX_RATE_LIMIT_WAIT = 60.0
USERS_PAGE = 200

_AUTHENTICATION = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired",
     "no_permission", "missing_scope", "not_allowed_token_type", "ekm_access_denied"}
)  # fmt: skip
_CONFIGURATION = {
    "channel_not_found": "channel {channel} does not exist or the token cannot see it",
    "not_in_channel": "the bot is not a member of channel {channel}; invite it there",
}
_TRANSIENT = frozenset(
    {"internal_error", "fatal_error", "service_unavailable", "request_timeout", "timeout"}
)


class SlackApiError(SourceError):
    """An `ok: false` answer; `code` is Slack's error code (`invalid_auth`, ...)."""

    def __init__(self, kind: FailureKind, message: str, *, code: str, status: int) -> None:
        super().__init__(kind, message, status=status)
        self.code = code


@dataclass(frozen=True)
class Identity:
    """Who the token is (auth.test): the bot's user id and the workspace's address."""

    user_id: str
    url: str


class SlackGateway:
    def __init__(self, source: str, base_url: str, token: str, *, timeout: float) -> None:
        self.source = source
        self.client = httpx.Client(
            base_url=base_url if base_url.endswith("/") else base_url + "/",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
        self.requests: Counter[str] = Counter()

    def close(self) -> None:
        self.client.close()

    # --- reads ------------------------------------------------------------------

    def auth_test(self) -> Identity:
        body = self._call("auth.test", {})
        user_id, url = body.get("user_id"), body.get("url")
        if not isinstance(user_id, str) or not isinstance(url, str):
            raise SourceError(
                FailureKind.TRANSIENT, f"Slack's auth.test for source {self.source} lacks user_id"
            )
        return Identity(user_id=user_id, url=url)

    def history(self, channel: str, oldest: str | None, limit: int) -> Iterator[list[Json]]:
        """Top-level messages newer than `oldest` (exclusive), newest first, page by page."""
        params: Json = {"channel": channel, "limit": limit, "include_all_metadata": "true"}
        if oldest is not None:
            params["oldest"] = oldest
        for body in self._pages("conversations.history", params, channel=channel):
            yield _dicts(body.get("messages"))

    def replies(self, channel: str, thread_ts: str) -> list[Json]:
        """A thread's replies (without its parent); a thread deleted meanwhile has none."""
        params: Json = {"channel": channel, "ts": thread_ts, "include_all_metadata": "true"}
        found: list[Json] = []
        try:
            for body in self._pages("conversations.replies", params, channel=channel):
                found.extend(_dicts(body.get("messages")))
        except SlackApiError as error:
            if error.code == "thread_not_found":
                return []
            raise
        return [m for m in found if m.get("ts") != thread_ts]

    def users(self) -> Iterator[Json]:
        for body in self._pages("users.list", {"limit": USERS_PAGE}, channel=None):
            yield from _dicts(body.get("members"))

    # --- plumbing ---------------------------------------------------------------

    def _pages(self, method: str, params: Json, *, channel: str | None) -> Iterator[Json]:
        """Follow `response_metadata.next_cursor` until Slack sends an empty one."""
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            page_params = {**params, "cursor": cursor} if cursor else params
            body = self._call(method, page_params, channel=channel)
            yield body
            metadata = body.get("response_metadata")
            cursor = metadata.get("next_cursor") if isinstance(metadata, dict) else None
            if not cursor:
                return
            if cursor in seen:  # a cursor pointing back: stop rather than loop
                raise SourceError(FailureKind.TRANSIENT, f"Slack's {method} pagination looped")
            seen.add(cursor)

    def _call(self, method: str, params: Json, *, channel: str | None = None) -> Json:
        def attempt() -> Json:
            self.requests[method] += 1
            try:
                response = self.client.get(method, params=params)
            except httpx.HTTPError as error:  # timeouts, resets, refused connections
                telemetry.count_request(self.source, None)
                raise SourceError(
                    FailureKind.TRANSIENT,
                    f"Slack did not answer {method} for source {self.source}: {error!r}",
                ) from None
            telemetry.count_request(self.source, response.status_code, response.headers)
            return self._body(method, response, channel)

        return call_idempotent(attempt, what=f"Slack {method}")

    def _body(self, method: str, response: httpx.Response, channel: str | None) -> Json:
        if response.status_code == 429:
            raise self._rate_limited(method, response)
        if response.status_code >= 400 and not _is_json(response):
            raise SourceError(
                classify_status(response.status_code),
                f"Slack answered {response.status_code} to {method} for source {self.source}",
                status=response.status_code,
            )
        try:
            body = response.json()
        except ValueError:
            raise SourceError(
                FailureKind.TRANSIENT,
                f"Slack sent a malformed answer to {method} for source {self.source} (not JSON)",
            ) from None
        if not isinstance(body, dict):
            raise SourceError(
                FailureKind.TRANSIENT, f"Slack's answer to {method} is not a JSON object"
            )
        if body.get("ok") is not True:
            raise self._slack_error(method, response, str(body.get("error") or "unknown"), channel)
        return body

    def _rate_limited(self, method: str, response: httpx.Response) -> SourceError:
        retry_after = _seconds(response.headers.get("retry-after"))
        if retry_after is not None and retry_after > MAX_RATE_LIMIT_WAIT:
            return SourceError(
                FailureKind.PERMANENT,
                f"Slack rate-limited {method} for source {self.source} for {int(retry_after)}s; "
                "the next run resumes where this one stopped",
                status=429,
            )
        return SourceError(
            FailureKind.RATE_LIMITED,
            f"Slack rate-limited {method} for source {self.source} (ratelimited)",
            status=429,
            retry_after=1.0 if retry_after is None else retry_after,
        )

    def _slack_error(
        self, method: str, response: httpx.Response, code: str, channel: str | None
    ) -> SourceError:
        if code in ("ratelimited", "rate_limited"):
            return self._rate_limited(method, response)
        return SlackApiError(
            _kind_of(code, response.status_code),
            _error_message(self.source, method, code, channel, response),
            code=code,
            status=response.status_code,
        )


def _kind_of(code: str, status: int) -> FailureKind:
    if code in _AUTHENTICATION:
        return FailureKind.AUTHENTICATION
    if code in _CONFIGURATION:
        return FailureKind.CONFIGURATION
    if code in _TRANSIENT or status >= 500:
        return FailureKind.TRANSIENT
    return FailureKind.PERMANENT


def _error_message(
    source: str, method: str, code: str, channel: str | None, response: httpx.Response
) -> str:
    if code in _AUTHENTICATION:
        return _authentication_message(source, code, response)
    if code in _CONFIGURATION:
        detail = _CONFIGURATION[code].format(channel=channel or "?")
        return f"Slack says {detail} (source {source}, {code})"
    if code in _TRANSIENT:
        return f"Slack failed {method} for source {source} ({code})"
    return f"Slack refused {method} for source {source} ({code})"


def _authentication_message(source: str, code: str, response: httpx.Response) -> str:
    if code == "missing_scope":
        needed = response.headers.get("x-accepted-oauth-scopes") or "see Slack's docs"
        return f"Slack's token for source {source} lacks a scope ({code}; needs {needed})"
    if code == "not_authed":
        return f"Slack got no token for source {source} ({code})"
    return f"Slack rejected the token for source {source} ({code})"


def _is_json(response: httpx.Response) -> bool:
    return "json" in response.headers.get("content-type", "")


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _dicts(value: object) -> list[Json]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []
