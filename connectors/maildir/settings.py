"""`[sources.<name>]` with `kind = "maildir"`: a local Maildir (Maildir++ subfolders)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from syncd.connectors.mail.settings import MailSettings


class MaildirSettings(MailSettings):
    kind: Literal["maildir"]
    path: Path
    # "" (or "INBOX") is the Maildir itself; other names are its `.Name` subfolders.
    folders: list[str] = Field(default=[""], min_length=1)
    # The mailbox's own address: mail To: it is addressed to a team, not a person.
    address: str | None = None
