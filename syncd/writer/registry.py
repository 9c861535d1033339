"""Which writer delivers a follow-up: one per (channel, source), built on first use.

Writers hold clients and credentials, so a reconcile opens each at most once and
closes them all at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from syncd.config import Settings
from syncd.writer.base import ChannelWriter, Delivery, WriteError
from syncd.writer.outbox import WriterFor


class WriterRegistry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._writers: dict[tuple[str, str], ChannelWriter] = {}

    def __call__(self, delivery: Delivery) -> ChannelWriter:
        source = str(delivery.target.get("source", ""))
        key = (delivery.channel, source)
        if key not in self._writers:
            self._writers[key] = self._build(delivery.channel, source)
        return self._writers[key]

    def _build(self, channel: str, source: str) -> ChannelWriter:
        if channel == "email":
            return self._email_writer()
        settings: Any = self.settings.sources.get(source)
        if settings is None:
            raise WriteError(
                f"no source {source!r} is configured for a {channel} follow-up", permanent=True
            )
        if channel == "github":
            from syncd.writer.github import GitHubWriter

            return GitHubWriter(source, settings)
        if channel == "jira":
            from syncd.writer.jira import JiraWriter

            return JiraWriter(source, settings)
        if channel == "slack":
            from syncd.writer.slack import SlackWriter

            return SlackWriter(source, settings)
        raise WriteError(f"no writer for channel {channel!r}", permanent=True)

    def _email_writer(self) -> ChannelWriter:
        from syncd.writer.email import EmailWriter

        if self.settings.smtp is None:
            raise WriteError("email follow-ups need an [smtp] table", permanent=True)
        sent_source = next(
            (
                s
                for s in self.settings.sources.values()
                if s.kind == "imap" and getattr(s, "sent_folder", None)
            ),
            None,
        )
        return EmailWriter(self.settings.smtp, sent_source)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


@contextmanager
def writer_registry(settings: Settings) -> Iterator[WriterFor]:
    registry = WriterRegistry(settings)
    try:
        yield registry
    finally:
        registry.close()
