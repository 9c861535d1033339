"""Slack messages as tasks (Web API through httpx)."""

from __future__ import annotations

from syncd.connectors.slack.settings import SlackSettings


class SlackConnector:
    kind = "slack"
    settings_model = SlackSettings


__all__ = ["SlackConnector", "SlackSettings"]
