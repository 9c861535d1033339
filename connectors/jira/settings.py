"""`[sources.<name>]` with `kind = "jira"`."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr

from syncd.config import Duration, SourceSettings
from syncd.model import Priority

DEFAULT_PRIORITY_MAP: dict[str, Priority] = {
    "Highest": Priority.HIGH,
    "Blocker": Priority.HIGH,
    "Critical": Priority.HIGH,
    "High": Priority.HIGH,
    "Major": Priority.MEDIUM,
    "Medium": Priority.MEDIUM,
    "Low": Priority.LOW,
    "Minor": Priority.LOW,
    "Lowest": Priority.LOW,
    "Trivial": Priority.LOW,
}


class JiraSettings(SourceSettings):
    kind: Literal["jira"]
    url: str
    email: str | None = None
    token: SecretStr
    jql: str
    # "auto" asks serverInfo: Cloud uses /search/jql, Server/Data Center the classic /search.
    deployment: Literal["auto", "cloud", "server"] = "auto"
    webhook_secret: SecretStr | None = None
    priority_map: dict[str, Priority] = DEFAULT_PRIORITY_MAP
    # Status names (case-insensitive) that mean blocked or verified; others go by category.
    blocked_statuses: list[str] = ["Blocked", "On Hold", "Waiting"]
    verified_statuses: list[str] = ["Verified", "QA Passed", "Closed"]
    # Custom fields, by id (customfield_10042) or display name ("Acceptance Criteria").
    acceptance_field: str | None = None
    team_field: str | None = None
    verified_field: str | None = None
    # JQL has minute precision and search is eventually consistent: re-read a window.
    lookback: Duration = timedelta(minutes=10)
    page_size: int = Field(default=100, ge=1, le=5000)
    full_listing_every: Duration = timedelta(hours=24)
    timeout: float = 30.0
