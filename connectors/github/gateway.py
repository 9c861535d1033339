"""A thin gateway over PyGithub's requester: paginated reads, classified errors.

PyGithub's own retry (`GithubRetry`) and request throttling are turned off: reads
are retried once, here, by `syncd.retry`, honouring `Retry-After` and the rate
limit's reset time; writes are never retried blindly. Listings follow the `Link`
header exactly as GitHub sends it and use `If-None-Match` on the first page, so a
poll that finds nothing new costs one request answered with 304.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import github
from github.Requester import Requester

from syncd import telemetry
from syncd.errors import FailureKind, SourceError, classify_status
from syncd.retry import call_idempotent

_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
# Above this the gateway waits for the reset instead of failing the source.
MAX_RATE_LIMIT_WAIT = 60.0


@dataclass
class ListingPage:
    items: list[dict[str, Any]]
    etag: str | None
    not_modified: bool = False


class GitHubGateway:
    def __init__(
        self, source: str, base_url: str, token: str, *, timeout: float, per_page: int
    ) -> None:
        self.source = source
        self.per_page = per_page
        self.client = github.Github(
            base_url=base_url.rstrip("/"),
            auth=github.Auth.Token(token),
            timeout=int(timeout),
            per_page=per_page,
            retry=None,
            seconds_between_requests=None,
            seconds_between_writes=None,
        )
        self.requester: Requester = self.client.requester
        self.base_url = base_url.rstrip("/")
        self.requests: Counter[str] = Counter()

    def close(self) -> None:
        self.client.close()

    # --- reads ------------------------------------------------------------------

    def issues(self, repo: str, since: str | None) -> Iterator[ListingPage]:
        """Issues and pull requests updated since `since`, oldest update first."""
        params: dict[str, Any] = {
            "state": "all",
            "sort": "updated",
            "direction": "asc",
            "per_page": self.per_page,
        }
        if since is not None:
            params["since"] = since
        yield from self._pages(f"/repos/{repo}/issues", params, None, what="issues")

    def probe(self, repo: str, etag: str | None) -> tuple[bool, str | None]:
        """Has anything in the repository been updated? One request; a 304 is free.

        The newest-updated item's page changes whenever any issue or pull request
        is updated, so an unchanged ETag means an incremental listing would only
        re-read the overlap window.
        """
        params = {"state": "all", "sort": "updated", "direction": "desc", "per_page": 1}
        page = next(self._pages(f"/repos/{repo}/issues", params, etag, what="probe"))
        return not page.not_modified, page.etag or etag

    def repo_comments(self, repo: str, since: str | None) -> Iterator[dict[str, Any]]:
        """Every comment in the repository updated since `since` (one listing per repo)."""
        params: dict[str, Any] = {"sort": "updated", "direction": "asc", "per_page": 100}
        if since is not None:
            params["since"] = since
        for page in self._pages(f"/repos/{repo}/issues/comments", params, None, what="comments"):
            yield from page.items

    def repo_events(self, repo: str, newer_than_id: int) -> Iterator[dict[str, Any]]:
        """Issue events newer than an id; GitHub lists them newest first, without `since`."""
        params: dict[str, Any] = {"per_page": 100}
        for page in self._pages(f"/repos/{repo}/issues/events", params, None, what="events"):
            for event in page.items:
                if int(event.get("id", 0)) <= newer_than_id:
                    return
                yield event

    def issue_comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        """One issue's comments: a per-item call, made only for a changed issue that needs it."""
        path = f"/repos/{repo}/issues/{number}/comments"
        params = {"per_page": 100}
        return [c for p in self._pages(path, params, None, what="per_item") for c in p.items]

    def sub_issues(self, repo: str, number: int) -> list[dict[str, Any]]:
        path = f"/repos/{repo}/issues/{number}/sub_issues"
        params = {"per_page": 100}
        return [c for p in self._pages(path, params, None, what="per_item") for c in p.items]

    def blocked_by(self, repo: str, number: int) -> list[dict[str, Any]]:
        path = f"/repos/{repo}/issues/{number}/dependencies/blocked_by"
        params = {"per_page": 100}
        return [c for p in self._pages(path, params, None, what="per_item") for c in p.items]

    def _pages(
        self, path: str, params: dict[str, Any], etag: str | None, *, what: str
    ) -> Iterator[ListingPage]:
        url: str | None = self.base_url + path
        first, visited = True, set()
        previous_ids: list[Any] = []
        while url is not None:
            if url in visited:  # a Link header pointing back: stop rather than loop
                raise SourceError(FailureKind.TRANSIENT, f"GitHub's pagination looped at {url}")
            visited.add(url)
            headers = {"If-None-Match": etag} if first and etag else {}
            status, response_headers, items = self._get_page(
                url, params if first else None, headers, what, previous_ids
            )
            if status == 304:
                yield ListingPage([], etag, not_modified=True)
                return
            previous_ids = [item.get("id") for item in items]
            url = _next_link(response_headers.get("link"))
            yield ListingPage(items, response_headers.get("etag") if first else None)
            first = False

    def _get_page(
        self,
        url: str,
        params: dict[str, Any] | None,
        headers: dict[str, str],
        what: str,
        previous_ids: list[Any],
    ) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
        """One page, parsed; malformed, truncated or repeated pages are retried."""

        def attempt() -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
            self.requests[what] += 1
            try:
                status, response_headers, body = self.requester.requestJson(
                    "GET", url, params, headers
                )
            except github.GithubException as error:
                telemetry.count_request(self.source, error.status, error.headers)
                raise self._error(error.status, {}, str(error.data)) from None
            except (OSError, ValueError) as error:  # timeouts, resets, refused connections
                telemetry.count_request(self.source, None)
                raise SourceError(
                    FailureKind.TRANSIENT,
                    f"GitHub did not answer for source {self.source}: {error}",
                ) from None
            lowered = {k.lower(): v for k, v in response_headers.items()}
            telemetry.count_request(self.source, status, lowered)
            if status >= 400:
                raise self._error(status, lowered, body)
            if status == 304:
                return status, lowered, []
            items = _json_list(body, url)
            per_page = int((params or {}).get("per_page") or _query_int(url, "per_page") or 30)
            if len(items) < per_page and _next_link(lowered.get("link")):
                # A short page that still links onwards lost items on the way.
                raise SourceError(FailureKind.TRANSIENT, f"GitHub sent a short page at {url}")
            if items and previous_ids and [i.get("id") for i in items] == previous_ids:
                raise SourceError(
                    FailureKind.TRANSIENT, f"GitHub repeated the previous page at {url}"
                )
            return status, lowered, items

        return call_idempotent(attempt, what=f"GET {url}")

    def _error(self, status: int, headers: dict[str, Any], body: str) -> SourceError:
        kind = classify_status(status)
        message = _github_message(body)
        retry_after = _retry_after(headers)
        if status == 401:
            return SourceError(
                FailureKind.AUTHENTICATION,
                f"GitHub rejected the token for source {self.source} (401)",
                status=status,
            )
        if status in (403, 429) and (
            retry_after is not None or headers.get("x-ratelimit-remaining") == "0"
        ):
            if retry_after is None or retry_after > MAX_RATE_LIMIT_WAIT:
                return SourceError(
                    FailureKind.PERMANENT,
                    f"GitHub's rate limit for source {self.source} is exhausted "
                    f"for {int(retry_after or 0)}s more; the next run resumes where this one stopped",
                    status=status,
                )
            return SourceError(
                FailureKind.RATE_LIMITED,
                f"GitHub rate-limited source {self.source} ({status}): {message}",
                status=status,
                retry_after=retry_after,
            )
        if status == 403:
            return SourceError(
                FailureKind.AUTHENTICATION,
                f"GitHub refused access for source {self.source} (403): {message}",
                status=status,
            )
        if status == 404:
            return SourceError(
                FailureKind.CONFIGURATION,
                f"GitHub says a repository of source {self.source} does not exist or the "
                f"token cannot see it (404)",
                status=status,
            )
        return SourceError(
            kind, f"GitHub answered {status} for source {self.source}: {message}", status=status
        )


def _retry_after(headers: dict[str, Any]) -> float | None:
    if "retry-after" in headers:
        try:
            return float(headers["retry-after"])
        except ValueError:
            return None
    if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
        return max(0.0, float(headers["x-ratelimit-reset"]) - time.time())
    return None


def _github_message(body: str) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200]
    return str(data.get("message", ""))[:200] if isinstance(data, dict) else body[:200]


def _json_list(body: str, url: str) -> list[dict[str, Any]]:
    """A listing page's items; a page that is not a JSON array is a transient fault."""
    try:
        data = json.loads(body)
    except ValueError:
        raise SourceError(
            FailureKind.TRANSIENT, f"GitHub sent a malformed page for {url} (not JSON)"
        ) from None
    if not isinstance(data, list):
        raise SourceError(FailureKind.TRANSIENT, f"GitHub sent a page that is not a list for {url}")
    return [item for item in data if isinstance(item, dict)]


def _query_int(url: str, name: str) -> int | None:
    values = parse_qs(urlsplit(url).query).get(name)
    return int(values[0]) if values and values[0].isdigit() else None


def _next_link(header: str | None) -> str | None:
    if not header:
        return None
    match = _NEXT_LINK.search(header)
    return match.group(1) if match else None
