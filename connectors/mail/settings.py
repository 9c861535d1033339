"""Keys every mailbox source has (`kind = "imap"` and `kind = "maildir"`)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from syncd.config import Duration, SourceSettings

DEFAULT_CONFIRM_PHRASES = [
    "confirmed",
    "confirm it works",
    "works now",
    "working now",
    "it works",
    "that fixed it",
    "this fixed it",
    "fixed, thanks",
    "all good now",
    "resolved, thanks",
    "looks good now",
]


class MailSettings(SourceSettings):
    # Folders read as requests; "INBOX" is the inbox, others by their name on the server.
    folders: list[str] = Field(default=["INBOX"], min_length=1)
    # A thread with a message in this folder, or flagged so, is done.
    done_folder: str | None = None
    done_flag: str | None = None
    # Addresses that are teams, lists or shared mailboxes, never one owner
    # (the source's own address is one too).
    team_addresses: list[str] = []
    # A reply from the requester with one of these (case-insensitive) verifies the task.
    confirm_phrases: list[str] = DEFAULT_CONFIRM_PHRASES
    # A message without In-Reply-To/References joins a thread with the same subject
    # (Re:/Fwd: stripped) whose last message is at most this old.
    subject_window: Duration = timedelta(days=14)
    # Messages per committed page.
    page_size: int = Field(default=200, ge=1, le=5000)
