"""GitHub issues as tasks (PyGithub)."""

from __future__ import annotations

from syncd.connectors.github.settings import GitHubSettings


class GitHubConnector:
    kind = "github"
    settings_model = GitHubSettings


__all__ = ["GitHubConnector", "GitHubSettings"]
