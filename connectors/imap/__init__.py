"""Email threads as tasks (imapclient)."""

from __future__ import annotations

from syncd.connectors.imap.settings import ImapSettings


class ImapConnector:
    kind = "imap"
    settings_model = ImapSettings


__all__ = ["ImapConnector", "ImapSettings"]
