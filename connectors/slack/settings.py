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
    # or those that mention the bot.
    capture: Literal["all", "reaction", "mention"] = "all"
    capture_reaction: str = "ticket"
    done_reaction: str = "white_check_mark"
    done_phrases: list[str] = ["done", "fixed", "resolved", "deployed"]
    verify_phrases: list[str] = ["confirmed", "verified", "works now", "looks good"]
    # Reactions, edits and late replies do not move `oldest`; re-read this window.
    lookback: Duration = timedelta(days=14)
    lookback_every: Duration = timedelta(hours=1)
    timeout: float = 30.0
