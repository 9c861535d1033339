"""GitHub issues as tasks (PyGithub)."""

from __future__ import annotations

from syncd.connectors.github.connector import GitHubConnector
from syncd.connectors.github.settings import GitHubSettings

__all__ = ["GitHubConnector", "GitHubSettings"]
