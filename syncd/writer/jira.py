"""Jira comments through the `jira` library, each carrying a comment property.

Wiki markup and ADF have no invisible text, so the marker is a comment property
`{"key": "syncd", "value": {"idempotency_key": KEY}}` sent with the comment
itself (the REST API accepts `properties` in the add-comment body; the library's
`add_comment` does not, so the JSON goes through the client's own session). The
Jira mapper treats comments with a `syncd*` property as syncd's own. The
library's `ResilientSession` retries any method, POST included: `max_retries=0`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote

import jira
import requests
from jira.exceptions import JIRAError

from syncd.connectors.jira.markup import mention
from syncd.connectors.jira.settings import JiraSettings
from syncd.writer.base import Delivery, Marker, WriteError, series_of

PROPERTY_KEY = "syncd"
COMMENT_PAGE_SIZE = 100
# 404: the issue was deleted or moved out of reach; 400: Jira will never accept this body.
_PERMANENT = frozenset({400, 404, 410})


def comment_payload(delivery: Delivery) -> dict[str, Any]:
    """The add-comment body: wiki markup mentioning the owner, and the marker property.

    The body was encoded for wiki markup when it was planned; the mention is the
    only markup added here, from an id of an account id's shape.
    """
    text = delivery.body.strip()
    if delivery.mention:
        try:
            text = f"{mention(delivery.mention)} {text}"
        except ValueError as error:
            raise WriteError(f"cannot mention the recipient: {error}", permanent=True) from None
    return {
        "body": text,
        "properties": [
            {"key": PROPERTY_KEY, "value": {"idempotency_key": delivery.idempotency_key}}
        ],
    }


def carries_key(comment: dict[str, Any], idempotency_key: str) -> bool:
    return key_of(comment) == idempotency_key


def key_of(comment: dict[str, Any]) -> str | None:
    """The idempotency key in a comment's `syncd` property, if it has one."""
    for prop in comment.get("properties") or []:
        if not isinstance(prop, dict) or prop.get("key") != PROPERTY_KEY:
            continue
        value = prop.get("value")
        if isinstance(value, dict) and isinstance(value.get("idempotency_key"), str):
            return str(value["idempotency_key"])
    return None


class JiraWriter:
    channel = "jira"

    def __init__(self, source: str, settings: JiraSettings) -> None:
        self.source = source
        self.api = settings.url.rstrip("/") + "/rest/api/2"
        self.client = jira.JIRA(
            server=settings.url,
            basic_auth=(settings.email or "", settings.token.get_secret_value()),
            timeout=settings.timeout,
            max_retries=0,  # ResilientSession would repeat a POST that may have landed
            get_server_info=False,
        )

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]

    def find(self, delivery: Delivery) -> str | None:
        for comment in self._comments(delivery):
            if carries_key(comment, delivery.idempotency_key):
                return str(comment["id"])
        return None

    def markers(self, delivery: Delivery) -> list[Marker]:
        series = series_of(delivery.idempotency_key)
        found = []
        for comment in self._comments(delivery):
            key = key_of(comment)
            if key is not None and series_of(key) == series:
                exact = key == delivery.idempotency_key
                found.append(Marker(str(comment["id"]), exact, _when(comment), key))
        return found

    def _comments(self, delivery: Delivery) -> Iterator[dict[str, Any]]:
        url = f"{self.api}/issue/{self._issue_key(delivery)}/comment"
        start = 0
        while True:
            params = {"expand": "properties", "startAt": start, "maxResults": COMMENT_PAGE_SIZE}
            page = self._call("GET", url, delivery, "list the comments of", params=params)
            comments = [c for c in page.get("comments") or [] if isinstance(c, dict)]
            yield from comments
            start += len(comments)
            # The server caps page sizes: only `total` says whether more remain.
            if not comments or start >= int(page.get("total") or 0):
                return

    def post(self, delivery: Delivery) -> str:
        if delivery.target.get("reopen"):
            self._reopen(delivery)  # idempotent, so before the comment
        url = f"{self.api}/issue/{self._issue_key(delivery)}/comment"
        created = self._call("POST", url, delivery, "comment on", body=comment_payload(delivery))
        return str(created["id"])

    def _reopen(self, delivery: Delivery) -> None:
        """Move the issue back to a to-do status through the workflow's own transition."""
        url = f"{self.api}/issue/{self._issue_key(delivery)}/transitions"
        listing = self._call("GET", url, delivery, "list the transitions of")
        for transition in listing.get("transitions") or []:
            target = transition.get("to") or {}
            category = (target.get("statusCategory") or {}).get("key")
            if category == "new" or "reopen" in str(transition.get("name", "")).lower():
                body = json.dumps({"transition": {"id": transition["id"]}})
                try:
                    self.client._session.post(url, data=body)
                except JIRAError as error:
                    raise _from_status(error.status_code, error, "reopen", self.source) from None
                except requests.RequestException as error:
                    raise WriteError(
                        f"the connection to Jira failed to reopen ({type(error).__name__})"
                    ) from None
                return
        raise WriteError(
            "the Jira workflow offers no transition back to a to-do status", permanent=True
        )

    # --- plumbing ------------------------------------------------------------------

    def _issue_key(self, delivery: Delivery) -> str:
        key = delivery.target.get("key")
        if not isinstance(key, str) or not key:
            raise WriteError("a Jira delivery needs target key", permanent=True)
        return quote(key, safe="")

    def _call(
        self,
        method: str,
        url: str,
        delivery: Delivery,
        what: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        key = delivery.target.get("key")
        session = self.client._session
        try:
            data = json.dumps(body) if body is not None else None
            response = session.request(method, url, params=params, data=data)
            result = response.json()
        except JIRAError as error:
            raise _from_status(error.status_code, error, f"{what} {key}", self.source) from None
        except requests.RequestException as error:
            raise WriteError(
                f"the connection to Jira failed to {what} {key} ({type(error).__name__})"
            ) from None
        except ValueError:
            raise WriteError(
                f"Jira sent a response that is not valid JSON to {what} {key}"
            ) from None
        if not isinstance(result, dict):
            raise WriteError(f"Jira sent an unexpected response to {what} {key}")
        return result


def _when(comment: dict[str, Any]) -> datetime | None:
    """Jira writes `2026-03-02T09:00:00.000+0000`; Python 3.11 reads that offset."""
    try:
        return datetime.fromisoformat(str(comment.get("created")))
    except ValueError:
        return None


def _from_status(status: int | None, error: JIRAError, what: str, source: str) -> WriteError:
    if status is None:
        return WriteError(f"Jira gave no response to {what} (source {source})")
    # `error.text` holds the server's errorMessages; str(error) would print request headers.
    words = str(error.text or "no details").strip()[:200]
    if status in (404, 410):
        words = "the issue was deleted or is out of reach"
    return WriteError(f"Jira answered {status} to {what}: {words}", permanent=status in _PERMANENT)
