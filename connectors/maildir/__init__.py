"""Email threads as tasks from a local Maildir (the standard library's `mailbox`)."""

from __future__ import annotations

from syncd.connectors.maildir.connector import MaildirConnector
from syncd.connectors.maildir.settings import MaildirSettings

__all__ = ["MaildirConnector", "MaildirSettings"]
