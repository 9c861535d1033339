"""The admin is told once per outage, in a direct message, when a source keeps failing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from test_service import free_port, make_world, write_config

from syncd.clock import FrozenClock
from syncd.config import Settings, load_config
from syncd.ledger.models import OutboxItem
from syncd.ledger.repository import Ledger
from syncd.rules.engine import compile_rules
from syncd.sandbox import Sandbox
from syncd.service.alerts import OUTAGE_STREAM
from syncd.service.loop import Service

START = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def alert_settings(tmp_path: Path, sandbox: Sandbox) -> Settings:
    config = write_config(tmp_path / "syncd.toml", sandbox, port=free_port(), poll="5m", slack=True)
    text = config.read_text().replace(
        'poll_interval = "5m"\n', 'poll_interval = "5m"\nadmin = "alice"\n'
    )
    config.write_text(text)
    return load_config(config)


def alerts_posted(sandbox: Sandbox) -> list[str]:
    texts = [
        str(w.payload.get("text", "")) for w in sandbox.writes.list("slack", "chat.postMessage")
    ]
    return [text for text in texts if "cannot sync source gh" in text]


def alert_rows(ledger: Ledger) -> list[OutboxItem]:
    with ledger.sessions() as session:
        query = select(OutboxItem).where(OutboxItem.rule_id == "source-alert")
        return list(session.scalars(query))


def fail_then_poll(service: Service, clock: FrozenClock) -> None:
    clock.advance(timedelta(hours=1))  # past any backoff
    report = service.cycle()
    assert report is not None and report.sources["gh"].failed


def test_a_refused_token_tells_the_admin_at_once_and_only_once(tmp_path: Path) -> None:
    with Sandbox(make_world()) as sandbox:
        settings = alert_settings(tmp_path, sandbox)
        ledger = Ledger.open(settings.ledger.url)
        clock = FrozenClock(START)
        try:
            service = Service(settings, compile_rules(settings.rules), ledger, clock)
            assert service.cycle() is not None
            sandbox.faults.error("github", status=401)
            fail_then_poll(service, clock)
            assert len(alerts_posted(sandbox)) == 1
            message = alerts_posted(sandbox)[0]
            assert "401" in message or "token" in message.lower(), message
            assert sandbox.writes.list("slack", "chat.postMessage")[-1].target.startswith("D")
            fail_then_poll(service, clock)
            # A restart during the outage (a new service on the same ledger) stays quiet too.
            restarted = Service(settings, compile_rules(settings.rules), ledger, clock)
            fail_then_poll(restarted, clock)
            assert len(alerts_posted(sandbox)) == 1
            assert [row.state for row in alert_rows(ledger)] == ["sent"]
        finally:
            ledger.close()


def test_other_failures_tell_after_alert_after_polls_and_each_outage_once(tmp_path: Path) -> None:
    with Sandbox(make_world()) as sandbox:
        settings = alert_settings(tmp_path, sandbox)
        ledger = Ledger.open(settings.ledger.url)
        clock = FrozenClock(START)
        service = Service(settings, compile_rules(settings.rules), ledger, clock)
        try:
            assert service.cycle() is not None
            sandbox.faults.error("github", status=404)  # the repo vanished: not retried
            for _ in range(settings.service.alert_after - 1):
                fail_then_poll(service, clock)
            assert alerts_posted(sandbox) == [], "a short hiccup tells nobody"
            assert ledger.cursor("gh", OUTAGE_STREAM) is not None
            fail_then_poll(service, clock)
            assert len(alerts_posted(sandbox)) == 1
            sandbox.faults.clear()
            clock.advance(timedelta(hours=1))
            recovered = service.cycle()
            assert recovered is not None and not recovered.failed
            assert ledger.cursor("gh", OUTAGE_STREAM) is None, "a success ends the outage"
            sandbox.faults.error("github", status=404)
            for _ in range(settings.service.alert_after):
                fail_then_poll(service, clock)
            assert len(alerts_posted(sandbox)) == 2, "the next outage is told again"
        finally:
            ledger.close()


def test_an_admin_who_is_not_configured_is_a_config_error(tmp_path: Path) -> None:
    import pytest

    from syncd.config import ConfigError

    config = tmp_path / "syncd.toml"
    config.write_text('[service]\nadmin = "alise"\n\n[people.alice]\nemail = "a@example.org"\n')
    with pytest.raises(
        ConfigError, match=r"syncd.toml:2: service.admin: no person 'alise'.*'alice'"
    ):
        load_config(config)
