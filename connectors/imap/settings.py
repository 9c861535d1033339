"""`[sources.<name>]` with `kind = "imap"`."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr

from syncd.config import SourceSettings


class ImapSettings(SourceSettings):
    kind: Literal["imap"]
    host: str
    port: int = 993
    ssl: bool = True
    username: str
    password: SecretStr
    folders: list[str] = Field(default=["INBOX"], min_length=1)
    # A thread moved here, or flagged so, is done.
    done_folder: str | None = None
    done_flag: str | None = None
    # Where follow-up replies are appended, so a crash never sends one twice.
    sent_folder: str | None = "Sent"
    # Addresses that are teams, lists or shared mailboxes, never one owner.
    team_addresses: list[str] = []
    timeout: float = 30.0
