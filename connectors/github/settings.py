"""`[sources.<name>]` with `kind = "github"`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from syncd.config import Duration, SourceSettings
from syncd.model import Priority, Status

_REPO = re.compile(r"^[A-Za-z0-9_.\-]+/[A-Za-z0-9_.\-]+$")

DEFAULT_PRIORITY_LABELS: dict[str, Priority] = {
    "p0": Priority.HIGH,
    "p1": Priority.HIGH,
    "p2": Priority.MEDIUM,
    "p3": Priority.LOW,
    "p4": Priority.LOW,
    "priority: critical": Priority.HIGH,
    "priority: high": Priority.HIGH,
    "priority: medium": Priority.MEDIUM,
    "priority: low": Priority.LOW,
    "priority:critical": Priority.HIGH,
    "priority:high": Priority.HIGH,
    "priority:medium": Priority.MEDIUM,
    "priority:low": Priority.LOW,
    "critical": Priority.HIGH,
    "urgent": Priority.HIGH,
}

DEFAULT_STATUS_LABELS: dict[str, Status] = {
    "in progress": Status.IN_PROGRESS,
    "in-progress": Status.IN_PROGRESS,
    "status: in progress": Status.IN_PROGRESS,
    "blocked": Status.BLOCKED,
    "status: blocked": Status.BLOCKED,
    "verified": Status.VERIFIED,
}


class GitHubSettings(SourceSettings):
    kind: Literal["github"]
    base_url: str = "https://api.github.com"
    token: SecretStr
    repos: list[str] = Field(min_length=1)
    webhook_secret: SecretStr | None = None
    # Label names are compared case-insensitively.
    priority_labels: dict[str, Priority] = DEFAULT_PRIORITY_LABELS
    status_labels: dict[str, Status] = DEFAULT_STATUS_LABELS
    # Logins whose comments are not human activity (in addition to `*[bot]` accounts).
    bot_logins: list[str] = []
    # `since` lags writes slightly: re-read this much before the cursor.
    since_overlap: Duration = timedelta(minutes=2)
    per_page: int = Field(default=100, ge=1, le=100)
    # How often a complete listing looks for deleted or transferred-away issues.
    full_listing_every: Duration = timedelta(hours=24)
    timeout: float = 30.0

    @field_validator("repos")
    @classmethod
    def _repos_are_owner_slash_name(cls, repos: list[str]) -> list[str]:
        for repo in repos:
            if not _REPO.match(repo):
                raise ValueError(f"{repo!r} is not 'owner/name'")
        return repos

    @field_validator("priority_labels", "status_labels")
    @classmethod
    def _fold_label_case(cls, labels: dict[str, object]) -> dict[str, object]:
        return {name.lower(): value for name, value in labels.items()}
