"""Tell the admin, once per outage, that a source is down.

A warning in a log is easy to miss. When a source has failed `[service].alert_after`
polls in a row, or refused its credentials (a revoked token does not heal by itself),
the person named in `[service].admin` gets one direct message (email, else Slack)
through the outbox, which delivers it exactly once. The outage's first failure is
kept in the ledger (cursor stream `_outage`) and is part of the message's
idempotency key, so a restart during the outage or a second replica tells nobody
twice; the source's next success ends the outage, and the next outage tells again.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from syncd.config import Settings
from syncd.errors import FailureKind
from syncd.ledger.repository import Ledger
from syncd.sync import SourceSummary
from syncd.writer.direct import direct_target, insert_message
from syncd.writer.sinks import encoder_for

OUTAGE_STREAM = "_outage"
log = structlog.get_logger("syncd.alerts")


def observe_source(
    ledger: Ledger,
    settings: Settings,
    name: str,
    summary: SourceSummary,
    consecutive_failures: int,
    now: datetime,
) -> bool:
    """Track the source's outage; True when this poll stored the admin's alert."""
    outage = ledger.cursor(name, OUTAGE_STREAM)
    if not summary.failed:
        if outage is not None:
            ledger.forget_cursor(name, OUTAGE_STREAM)
        return False
    if outage is None:
        outage = {"since": now.isoformat()}
        ledger.save_cursor(name, OUTAGE_STREAM, outage, now)
    refused = summary.failure_kind == FailureKind.AUTHENTICATION
    if not refused and consecutive_failures < settings.service.alert_after:
        return False
    return _alert_admin(ledger, settings, name, summary, outage["since"], consecutive_failures, now)


def _alert_admin(
    ledger: Ledger,
    settings: Settings,
    name: str,
    summary: SourceSummary,
    since: str,
    consecutive_failures: int,
    now: datetime,
) -> bool:
    admin = settings.service.admin
    if admin is None:
        return False
    target = direct_target(admin, settings, f"syncd: source {name} is failing")
    if target is None:
        log.warning("admin cannot be reached", admin=admin, source=name)
        return False
    channel, where = target
    encode = encoder_for(channel)  # the error may quote what the source answered
    body = (
        f"syncd cannot sync source {encode(name)} (failing since {since}, "
        f"{consecutive_failures} polls in a row): {encode(str(summary.error or ''))}. Its tasks "
        f"stay as they were until it syncs again. This is the only message for this outage."
    )
    with ledger.sessions.begin() as session:
        stored = insert_message(
            ledger, session.connection(), key=f"source-alert:{name}:{since}", kind="source-alert",
            person_id=admin, channel=channel, target=where, body=body, now=now,
        )  # fmt: skip
    if stored:
        log.warning("admin alerted", admin=admin, source=name, channel=channel)
    return stored
