"""GitHub issue comments through PyGithub, each ending with an invisible marker.

The marker is an HTML comment, `<!-- syncd:KEY -->`, which GitHub's Markdown
renders as nothing; the GitHub mapper treats comments containing `<!-- syncd:`
as syncd's own, not human activity. PyGithub's `GithubRetry` retries POSTs, so
it is switched off: a comment is posted once, and only `find` may be repeated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

import github
from github.Requester import Requester

from syncd.connectors.github.markup import mention
from syncd.connectors.github.settings import GitHubSettings
from syncd.writer.base import Delivery, Marker, WriteError, series_of

MARKER_PREFIX = "<!-- syncd:"
# Everything printable but `%`, `<`, `>` and spaces stays readable; quoting `>`
# means a key can never close the HTML comment early (`-->`).
_MARKER_SAFE = "!#$&'()*+,/:;=?@[]^`{|}~"
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
_MARKER_KEY = re.compile(r"<!-- syncd:(\S+) -->")
# 301: transferred away; 404: deleted or never there; 410: deleted.
_GONE = frozenset({301, 404, 410})


def marker(idempotency_key: str) -> str:
    """The HTML comment that carries the key; exact, so key `a` never matches `ab`."""
    return f"{MARKER_PREFIX}{quote(idempotency_key, safe=_MARKER_SAFE)} -->"


def comment_body(delivery: Delivery) -> str:
    """The Markdown posted: an @-mention when there is one, the text, the marker.

    The body was encoded for GitHub Markdown when it was planned, so source text in
    it mentions nobody and cannot write a marker; the recipient's login is checked.
    """
    text = delivery.body.rstrip()
    if delivery.mention:
        try:
            text = f"{mention(delivery.mention)} {text}"
        except ValueError as error:
            raise WriteError(f"cannot mention the recipient: {error}", permanent=True) from None
    return f"{text}\n\n{marker(delivery.idempotency_key)}"


class GitHubWriter:
    channel = "github"

    def __init__(self, source: str, settings: GitHubSettings) -> None:
        self.source = source
        self.client = github.Github(
            base_url=settings.base_url.rstrip("/"),
            auth=github.Auth.Token(settings.token.get_secret_value()),
            timeout=int(settings.timeout),
            retry=None,  # GithubRetry would repeat a POST that may have landed
            seconds_between_requests=None,
            seconds_between_writes=None,
        )
        self.requester: Requester = self.client.requester

    def close(self) -> None:
        self.client.close()

    def find(self, delivery: Delivery) -> str | None:
        wanted = marker(delivery.idempotency_key)
        for comment in self._comments(delivery):
            if wanted in str(comment.get("body") or ""):
                return str(comment["id"])
        return None

    def markers(self, delivery: Delivery) -> list[Marker]:
        series = series_of(delivery.idempotency_key)
        found = []
        for comment in self._comments(delivery):
            for quoted in _MARKER_KEY.findall(str(comment.get("body") or "")):
                key = unquote(quoted)
                if series_of(key) == series:
                    exact = key == delivery.idempotency_key
                    found.append(Marker(str(comment["id"]), exact, _when(comment), key))
        return found

    def _comments(self, delivery: Delivery) -> Iterator[dict[str, Any]]:
        url: str | None = f"{self._issue_path(delivery)}/comments"
        params: dict[str, Any] | None = {"per_page": 100}
        while url is not None:
            status, headers, body = self._request("GET", url, params=params)
            self._check(status, body, delivery, "list the comments of")
            yield from (c for c in _json(body, list) if isinstance(c, dict))
            url, params = _next_page(headers), None  # the next link carries the query

    def post(self, delivery: Delivery) -> str:
        if delivery.target.get("reopen"):
            # Reopening is idempotent, so it goes first: a crash after it is harmless.
            path = self._issue_path(delivery)
            status, _headers, body = self._request("PATCH", path, data={"state": "open"})
            self._check(status, body, delivery, "reopen")
        url = f"{self._issue_path(delivery)}/comments"
        status, _headers, body = self._request("POST", url, data={"body": comment_body(delivery)})
        self._check(status, body, delivery, "comment on")
        return str(_json(body, dict)["id"])

    # --- plumbing ------------------------------------------------------------------

    def _issue_path(self, delivery: Delivery) -> str:
        try:
            repo, number = str(delivery.target["repo"]), int(delivery.target["number"])
        except (KeyError, TypeError, ValueError):
            raise WriteError(
                f"a GitHub delivery needs target repo and number, got {sorted(delivery.target)}",
                permanent=True,
            ) from None
        return f"/repos/{repo}/issues/{number}"

    def _request(
        self, verb: str, url: str, *, params: dict[str, Any] | None = None, data: Any = None
    ) -> tuple[int, dict[str, Any], str]:
        try:
            return self.requester.requestJson(verb, url, params, None, data)
        except (OSError, ValueError) as error:  # timeouts, resets, refused connections
            raise WriteError(
                f"GitHub did not answer {verb} for source {self.source} ({type(error).__name__})"
            ) from None

    def _check(self, status: int, body: str, delivery: Delivery, what: str) -> None:
        if status < 400 and status not in _GONE:
            return
        where = f"{delivery.target.get('repo')}#{delivery.target.get('number')}"
        if status in _GONE:
            raise WriteError(
                f"cannot {what} {where}: the issue was deleted or transferred ({status})",
                permanent=True,
            )
        # 422 is a request GitHub will never accept; 401/403/429/5xx may pass later.
        raise WriteError(
            f"GitHub answered {status} to {what} {where} (source {self.source}): "
            f"{_server_message(body)}",
            permanent=status == 422,
        )


def _json(body: str, kind: type) -> Any:
    try:
        value = json.loads(body)
    except ValueError:
        raise WriteError("GitHub sent a response that is not valid JSON") from None
    if not isinstance(value, kind):
        raise WriteError(f"GitHub sent a {type(value).__name__} where a {kind.__name__} was due")
    return value


def _when(comment: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(comment.get("created_at")).replace("Z", "+00:00"))
    except ValueError:
        return None


def _next_page(headers: dict[str, Any]) -> str | None:
    link = {k.lower(): v for k, v in headers.items()}.get("link")
    match = _NEXT_LINK.search(str(link or ""))
    return match.group(1) if match else None


def _server_message(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return "no details"
    return str(data.get("message") if isinstance(data, dict) else data)[:200]
