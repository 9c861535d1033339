"""GitHub webhook deliveries -> tasks to ingest directly, or a poll: on the recorded payloads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from corpus_root import CORPUS

from syncd.connectors.github import GitHubConnector, GitHubSettings
from syncd.connectors.github.webhook import webhook_items
from syncd.connectors.payload import MappingError
from syncd.model import Status
from syncd.people import PeopleDirectory, Person

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WEBHOOKS = CORPUS / "github-webhooks"
SETTINGS = GitHubSettings.model_validate(
    {"kind": "github", "token": "t", "repos": ["Codertocat/Hello-World"]}
)
PEOPLE = PeopleDirectory([Person(id="coder", name="Coder", handles={"github": "Codertocat"})])


def load(event: str, name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((WEBHOOKS / event / f"{name}.payload.json").read_text())
    return payload


def items(event: str, payload: Any, settings: GitHubSettings = SETTINGS) -> Any:
    return webhook_items(event, payload, source="gh", settings=settings, people=PEOPLE, now=NOW)


def corpus_files() -> list[Path]:
    files = sorted(WEBHOOKS.glob("*/*.payload.json"))
    assert len(files) >= 40, f"the webhook corpus at {WEBHOOKS} looks incomplete"
    return files


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_recorded_delivery_maps_polls_or_is_rejected_with_a_reason(path: Path) -> None:
    try:
        result = items(path.parent.name, json.loads(path.read_text()))
    except MappingError as error:
        assert str(error)
        return
    for task in result.tasks:
        assert task.source == "gh" and task.key == "Codertocat/Hello-World#1"
        assert task.updated_at is not None and task.raw
    assert result.tasks or result.poll or path.parent.name in ("issues", "issue_comment")


def test_an_opened_issue_is_a_task_with_no_poll() -> None:
    result = items("issues", load("issues", "opened"))
    assert not result.poll
    [task] = result.tasks
    assert (task.title, task.status, task.reporter) == ("Spelling error in the README file",
                                                        Status.OPEN, "coder")  # fmt: skip


def test_the_connector_class_offers_the_mapping() -> None:
    assert GitHubConnector.webhook_items is webhook_items


def test_a_comment_is_activity_by_its_author() -> None:
    payload = load("issue_comment", "created")
    [task] = items("issue_comment", payload).tasks
    assert task.participants == ["coder"]
    assert task.last_activity_at == datetime.fromisoformat(
        payload["comment"]["created_at"].replace("Z", "+00:00")
    )


@pytest.mark.parametrize(("event", "name"), [("issues", "deleted"), ("issue_comment", "deleted"),
                                             ("issues", "transferred"), ("label", "created")])  # fmt: skip
def test_what_a_payload_cannot_tell_asks_for_a_poll(event: str, name: str) -> None:
    result = items(event, load(event, name))
    assert result.poll and not result.tasks


def test_an_issue_with_sub_issues_is_polled_not_ingested_without_its_children() -> None:
    payload = load("issues", "edited")
    payload["issue"]["sub_issues_summary"] = {"total": 2, "completed": 0, "percent_completed": 0}
    result = items("issues", payload)
    assert result.poll and not result.tasks


def test_a_closed_issue_is_ingested_and_polled_for_its_closing_pull_request() -> None:
    payload = load("issues", "reopened")
    payload["issue"].update(state="closed", closed_at=payload["issue"]["updated_at"])
    result = items("issues", payload)
    assert result.poll and result.tasks[0].status is Status.DONE


def test_a_repository_the_source_does_not_sync_is_ignored() -> None:
    other = GitHubSettings.model_validate({"kind": "github", "token": "t", "repos": ["a/b"]})
    result = items("issues", load("issues", "opened"), other)
    assert not result.tasks and not result.poll


def test_a_payload_without_an_issue_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match="no issue object"):
        items("issues", {"action": "opened"})
    with pytest.raises(MappingError, match="JSON object"):
        items("issues", [1, 2])
