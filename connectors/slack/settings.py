"""`[sources.<name>]` with `kind = "slack"`."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, SecretStr

from syncd.config import Duration, SourceSettings


class SlackSettings(SourceSettings):
    kind: Literal["slack"]
    base_url: str = "https://slack.com/api/"
    token: SecretStr
    channels: list[str] = Field(min_length=1)
    signing_secret: SecretStr | None = None
    # Which messages become tasks: every top-level message, those with a reaction,
    # or those that mention the bot (whose user id comes from auth.test).
    capture: Literal["all", "reaction", "mention"] = "all"
    capture_reaction: str = "ticket"
    # Someone other than the requester marks the request done with this reaction
    # or a reply containing one of the done phrases.
    done_reaction: str = "white_check_mark"
    done_phrases: list[str] = ["done", "fixed", "resolved", "deployed"]
    # The requester confirms with this reaction (default: the done reaction) or a
    # reply containing one of the verify phrases.
    verify_reaction: str | None = None
    verify_phrases: list[str] = ["confirmed", "verified", "works now", "looks good"]
    # Reactions, edits and late replies do not move `oldest`; re-read this window.
    lookback: Duration = timedelta(days=14)
    lookback_every: Duration = timedelta(hours=1)
    # Messages per conversations.history page (Slack advises at most 200).
    page_size: int = Field(default=200, ge=1, le=999)
    timeout: float = 30.0
