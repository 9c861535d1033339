"""A thin gateway over the `jira` library: reads, retried once, errors classified once.

jira's `ResilientSession` retries any method and may sleep for a minute, so it
is turned off (`max_retries=0`) and every read goes through
`syncd.retry.call_idempotent` instead. Every failure the library or `requests`
raises becomes a `SourceError` in `translate_error`, the one place that knows
what a Jira failure means. Messages never carry the token: jira's own
`JIRAError.__str__` prints the request headers, so it is never used.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import jira
import requests
from jira.exceptions import JIRAError

from syncd import telemetry
from syncd.connectors.jira.settings import JiraSettings
from syncd.errors import FailureKind, SourceError, classify_status
from syncd.retry import RetryPolicy, call_idempotent

T = TypeVar("T")
Json = dict[str, Any]

# Ids-only listings are cheap for Jira, which allows (and caps) large pages for them.
LISTING_PAGE_SIZE = 5000
COMMENT_PAGE_SIZE = 100


def translate_error(error: Exception, source: str, timeout: float) -> SourceError:
    """The SourceError a failed Jira call means, in words a person can act on."""
    if isinstance(error, SourceError):
        return error
    if isinstance(error, JIRAError):
        return _from_status(error, source)
    if isinstance(error, requests.Timeout):
        return SourceError(
            FailureKind.TRANSIENT, f"Jira did not answer within {timeout:g}s (source {source})"
        )
    if isinstance(error, requests.RequestException):
        # Connection refused or reset, or a body cut short of its Content-Length.
        return SourceError(
            FailureKind.TRANSIENT,
            f"the connection to Jira failed for source {source} ({type(error).__name__})",
        )
    if isinstance(error, ValueError):  # requests' JSONDecodeError is a ValueError
        return SourceError(
            FailureKind.TRANSIENT, f"Jira sent a response that is not valid JSON (source {source})"
        )
    raise error


def _from_status(error: JIRAError, source: str) -> SourceError:
    status = error.status_code
    if status is None:
        return SourceError(FailureKind.TRANSIENT, f"Jira gave no response for source {source}")
    if status == 401:
        message = f"Jira rejected the credentials for source {source} (401)"
    elif status == 403:
        message = f"Jira refused access for source {source} (403): {_server_words(error)}"
    elif status == 429:
        message = f"Jira rate-limited source {source} (429)"
    else:
        message = f"Jira answered {status} for source {source}: {_server_words(error)}"
    return SourceError(
        classify_status(status), message, status=status, retry_after=_retry_after(error)
    )


def _server_words(error: JIRAError) -> str:
    # `text` holds the server's errorMessages, never the request headers.
    return str(error.text or "no details").strip()[:300]


def _retry_after(error: JIRAError) -> float | None:
    """`Retry-After` in seconds or as an HTTP date."""
    response = error.response
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True)
class SearchPage:
    issues: list[Any]
    # The next request's position: a token (Cloud), an offset (Server), or None at the end.
    following: str | int | None


class JiraGateway:
    """Every Jira read syncd makes, each one retried and translated."""

    def __init__(self, settings: JiraSettings, source: str, retry: RetryPolicy) -> None:
        self.settings = settings
        self.source = source
        self.retry = retry
        self.item_calls = 0  # per-issue requests (extra comment pages), for the run's log
        self.client = jira.JIRA(
            server=settings.url,
            basic_auth=(settings.email or "", settings.token.get_secret_value()),
            timeout=settings.timeout,
            max_retries=0,  # ours retry, theirs would stack and sleep up to a minute
            get_server_info=False,  # asked through `server_info`, retried and translated
        )
        self.client._session.hooks["response"].append(self._count_response)

    def _count_response(self, response: requests.Response, *_args: Any, **_kwargs: Any) -> None:
        telemetry.count_request(self.source, response.status_code, response.headers)

    def close(self) -> None:
        self.client.close()  # type: ignore[no-untyped-call]

    def _read(self, what: str, call: Callable[[], T]) -> T:
        def translated() -> T:
            try:
                return call()
            except Exception as error:
                if isinstance(error, requests.ConnectionError | requests.Timeout):
                    telemetry.count_request(self.source, None)  # no answer, so no hook ran
                raise translate_error(error, self.source, self.settings.timeout) from None

        return call_idempotent(translated, what=f"jira {what}", policy=self.retry)

    def _get(self, path: str, params: Json | None = None) -> Any:
        return self.client._get_json(path, params=params)

    def _get_object(self, path: str, params: Json | None = None) -> Json:
        data = self._get(path, params)
        if not isinstance(data, dict):
            raise SourceError(
                FailureKind.TRANSIENT, f"Jira sent an unexpected {path} answer ({self.source})"
            )
        return data

    # --- site facts ------------------------------------------------------------------

    def server_info(self) -> Json:
        return self._read("serverInfo", lambda: self._get_object("serverInfo"))

    def myself(self) -> Json:
        return self._read("myself", lambda: self._get_object("myself"))

    def fields(self) -> list[Json]:
        def call() -> list[Json]:
            data = self._get("field")
            if not isinstance(data, list):
                raise SourceError(
                    FailureKind.TRANSIENT, f"Jira sent an unexpected field list ({self.source})"
                )
            return [f for f in data if isinstance(f, dict)]

        return self._read("field", call)

    # --- search ------------------------------------------------------------------------

    def search_cloud(
        self, jql: str, fields: Sequence[str], expand: str | None, size: int, token: str | None
    ) -> SearchPage:
        """One page of the enhanced search (`/search/jql`): `nextPageToken` and `isLast`."""
        params: Json = {"jql": jql, "maxResults": size, "fields": list(fields)}
        if expand:
            params["expand"] = expand
        if token:
            params["nextPageToken"] = token

        def call() -> SearchPage:
            data = self._get_object("search/jql", params)
            following = None if data.get("isLast", True) else data.get("nextPageToken")
            if following is not None and (following == token or not isinstance(following, str)):
                # The server sent back the page we had (the same token): not progress.
                raise SourceError(
                    FailureKind.TRANSIENT, f"Jira repeated a search page ({self.source})"
                )
            return SearchPage(_issues(data, self.source), following)

        return self._read("search/jql", call)

    def search_server(
        self, jql: str, fields: Sequence[str], expand: str | None, size: int, start: int
    ) -> SearchPage:
        """One page of the classic search (`/search`): `startAt`, `maxResults`, `total`."""
        params: Json = {"jql": jql, "startAt": start, "maxResults": size, "fields": list(fields)}
        if expand:
            params["expand"] = expand

        def call() -> SearchPage:
            data = self._get_object("search", params)
            if data.get("startAt", start) != start:
                raise SourceError(
                    FailureKind.TRANSIENT, f"Jira answered for another page ({self.source})"
                )
            issues = _issues(data, self.source)
            total = data.get("total")
            end = start + len(issues)
            # A short page is not the end: only `total` (or an empty page) says so.
            more = bool(issues) and isinstance(total, int) and end < total
            return SearchPage(issues, end if more else None)

        return self._read("search", call)

    # --- per issue -----------------------------------------------------------------------

    def remaining_comments(self, issue_id: str, start: int) -> list[Json]:
        """The comments after the first `start` that the search embedded."""
        comments: list[Json] = []
        for page in self._comment_pages(issue_id, start):
            comments.extend(page)
        return comments

    def _comment_pages(self, issue_id: str, start: int) -> Iterator[list[Json]]:
        while True:
            params: Json = {
                "startAt": start,
                "maxResults": COMMENT_PAGE_SIZE,
                "expand": "properties",  # syncd marks its own comments with a property
            }
            self.item_calls += 1
            data = self._read(
                "comments", partial(self._get_object, f"issue/{issue_id}/comment", params)
            )
            page = [c for c in data.get("comments") or [] if isinstance(c, dict)]
            yield page
            start += len(page)
            total = data.get("total")
            if not page or not isinstance(total, int) or start >= total:
                return


def _issues(data: Json, source: str) -> list[Any]:
    issues = data.get("issues")
    if not isinstance(issues, list):
        raise SourceError(
            FailureKind.TRANSIENT, f"Jira sent a search page without issues ({source})"
        )
    # A non-object item is kept: the mapper quarantines it with a reason.
    return issues
