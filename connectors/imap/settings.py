"""`[sources.<name>]` with `kind = "imap"`."""

from __future__ import annotations

from typing import Literal

from pydantic import SecretStr

from syncd.connectors.mail.settings import MailSettings


class ImapSettings(MailSettings):
    """Folders, done folder and flag, team addresses and confirm phrases: see MailSettings."""

    kind: Literal["imap"]
    host: str
    port: int = 993
    ssl: bool = True
    username: str
    password: SecretStr
    # Where follow-up replies are appended, so a crash never sends one twice.
    sent_folder: str | None = "Sent"
    timeout: float = 30.0
