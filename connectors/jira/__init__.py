"""Jira issues as tasks (the `jira` library)."""

from __future__ import annotations

from syncd.connectors.jira.connector import JiraConnector
from syncd.connectors.jira.settings import JiraSettings

__all__ = ["JiraConnector", "JiraSettings"]
