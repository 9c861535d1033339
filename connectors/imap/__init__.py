"""Email threads as tasks from IMAP folders (imapclient)."""

from __future__ import annotations

from syncd.connectors.imap.connector import ImapConnector
from syncd.connectors.imap.settings import ImapSettings

__all__ = ["ImapConnector", "ImapSettings"]
