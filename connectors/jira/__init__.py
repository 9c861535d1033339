"""Jira issues as tasks (the `jira` library)."""

from __future__ import annotations

from syncd.connectors.jira.settings import JiraSettings


class JiraConnector:
    kind = "jira"
    settings_model = JiraSettings


__all__ = ["JiraConnector", "JiraSettings"]
