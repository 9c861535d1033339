"""Load the recorded API corpus in ../shared/corpus and pick out the issue objects."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from corpus_root import CORPUS

_LINES_PER_EXCHANGE = 11
_PATH_LINE = 4  # 0-based: line 5 of an exchange is path?query
_BODY_LINE = 9  # 0-based: line 10 of an exchange is the response body
# Endpoints whose response body is an issue, a list of issues or a search result of issues.
_ISSUE_ENDPOINT = re.compile(
    r"/(?:issues(?:/\d+)?|search/issues|legacy/issues/search/.*|sub_issues?|dependencies/blocked_by)$"
)


@dataclass(frozen=True)
class Found:
    """One issue object and where it came from, for readable test ids."""

    origin: str
    payload: Any


def github_response_bodies() -> Iterator[tuple[str, str, Any]]:
    """(origin, request path, JSON body) of every exchange in the PyGithub recordings."""
    for path in sorted((CORPUS / "github").glob("*.txt")):
        lines = path.read_text(encoding="utf-8").split("\n")
        for index in range(0, len(lines) - _BODY_LINE, _LINES_PER_EXCHANGE):
            request_path = lines[index + _PATH_LINE].split("?", 1)[0]
            body = lines[index + _BODY_LINE]
            try:
                origin = f"{path.name}#{index // _LINES_PER_EXCHANGE}"
                yield origin, request_path, json.loads(body)
            except ValueError:
                continue  # an empty 204, an HTML error page, a deliberately broken body


def github_webhook_payloads() -> Iterator[tuple[str, Any]]:
    for path in sorted((CORPUS / "github-webhooks").rglob("*.json")):
        yield str(path.relative_to(CORPUS)), json.loads(path.read_text(encoding="utf-8"))


def github_issues() -> list[Found]:
    """Issue objects in recorded responses and webhook payloads.

    Everything an issue endpoint returned counts, even a stripped `{"id": 1}`; so do
    issue-shaped objects nested elsewhere (an event's `issue`, a webhook's `issue`).
    """
    found: dict[int, Found] = {}
    for origin, request_path, body in github_response_bodies():
        if _ISSUE_ENDPOINT.search(request_path):
            for item in _top_level_items(body):
                found.setdefault(id(item), Found(origin, item))
        for item in _walk(body, _looks_like_github_issue):
            found.setdefault(id(item), Found(origin, item))
    for origin, body in github_webhook_payloads():
        for item in _walk(body, _looks_like_github_issue):
            found.setdefault(id(item), Found(origin, item))
    return list(found.values())


def _top_level_items(body: Any) -> list[Any]:
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        return list(body["items"])  # search results
    if isinstance(body, dict) and isinstance(body.get("issues"), list):
        return list(body["issues"])  # the legacy search
    if isinstance(body, list):
        return body
    return [body] if isinstance(body, dict) and "message" not in body else []


def _looks_like_github_issue(node: dict[str, Any]) -> bool:
    url = node.get("url")
    return (
        "number" in node
        and isinstance(url, str)
        and "/issues/" in url
        and "/issues/comments/" not in url
        and "/issues/events/" not in url
    )


def jira_issues() -> list[Found]:
    """Top-level issues in the Jira corpus: issue files and `issues` of search results."""
    found = []
    for path in sorted((CORPUS / "jira").rglob("*.json")):
        if path.name == "swagger-v3.v3.json":
            continue  # the whole OpenAPI document; its examples are copied out as files
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            continue  # transitions.post.json is an empty 204 body
        origin = str(path.relative_to(CORPUS))
        found.extend(Found(origin, issue) for issue in _walk(body, _looks_like_jira_issue))
    return found


def _looks_like_jira_issue(node: dict[str, Any]) -> bool:
    return (
        isinstance(node.get("key"), str)
        and "id" in node
        and ("fields" in node or "/issue/" in str(node.get("self", "")))
    )


def _walk(node: Any, matches: Any) -> Iterator[dict[str, Any]]:
    """Yield matching dicts, not looking inside a match (its links are not issues of the page)."""
    if isinstance(node, dict):
        if matches(node):
            yield node
            return
        for value in node.values():
            yield from _walk(value, matches)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value, matches)
