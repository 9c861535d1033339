"""Slack messages as tasks (Web API through httpx)."""

from __future__ import annotations

from syncd.connectors.slack.connector import SlackConnector
from syncd.connectors.slack.settings import SlackSettings

__all__ = ["SlackConnector", "SlackSettings"]
