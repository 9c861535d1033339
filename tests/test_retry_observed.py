"""Retries as the README describes them, observed at the simulators, not read from the code.

Reads: the default policy (5 attempts, jittered backoff from 0.5 s) against a
source that keeps answering 502. Writes: one attempt, never repeated blindly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from syncd.clock import FrozenClock
from syncd.config import load_config
from syncd.ledger.repository import Ledger
from syncd.retry import RetryPolicy
from syncd.sandbox import Sandbox, World
from syncd.sync import pull_all
from syncd.writer.base import Delivery, WriteError
from syncd.writer.registry import writer_registry

DEFAULT = RetryPolicy()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(World.default()) as served:
        yield served


def write_config(tmp_path: Path, sandbox: Sandbox) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
        f'[sources.gh]\nkind = "github"\nbase_url = "{sandbox.urls["github"]}"\n'
        'token = "sandbox-github-token"\nrepos = ["example-org/api"]\n\n'
        f'[sources.ops]\nkind = "jira"\nurl = "{sandbox.urls["jira"]}"\n'
        'email = "bot@acme.example"\ntoken = "sandbox-jira-token"\njql = "project = OPS"\n\n'
        f'[sources.chat]\nkind = "slack"\nbase_url = "{sandbox.urls["slack"]}"\n'
        'token = "xoxb-sandbox"\nchannels = ["C0123ABCD"]\n'
    )
    return path


SERVICE_OF = {"gh": "github", "ops": "jira", "chat": "slack"}


@pytest.mark.parametrize("source", ["gh", "ops", "chat"])
def test_a_read_is_tried_five_times_then_the_source_fails(
    tmp_path: Path, sandbox: Sandbox, source: str
) -> None:
    service = SERVICE_OF[source]
    settings = load_config(write_config(tmp_path, sandbox))
    sandbox.request_log.reset()
    sandbox.faults.error(service, 502)
    ledger = Ledger.open(settings.ledger.url)
    started = time.monotonic()
    try:
        summaries, _people = pull_all(settings, ledger, [source], FrozenClock(datetime.now(UTC)))
    finally:
        sandbox.faults.clear(service)
        ledger.close()
    elapsed = time.monotonic() - started
    assert summaries[source].failed
    failed = [e for e in sandbox.request_log.entries(service) if e.status == 502]
    assert len(failed) == DEFAULT.attempts == 5
    assert len({e.route for e in failed}) == 1  # the same call, repeated; nothing after it
    # Four waits, each at most 0.5 s · 2^(n-1): 7.5 s in all at worst (plus the requests).
    assert elapsed < 7.5 + 5


@pytest.mark.parametrize("channel", ["github", "jira", "slack"])
def test_a_write_is_posted_once(tmp_path: Path, sandbox: Sandbox, channel: str) -> None:
    settings = load_config(write_config(tmp_path, sandbox))
    target = {
        "github": {"source": "gh", "repo": "example-org/api", "number": 1},
        "jira": {"source": "ops", "key": "OPS-1"},
        "slack": {"source": "chat", "channel": "C0123ABCD", "thread_ts": "1"},
    }[channel]
    delivery = Delivery(
        idempotency_key="retry-test", channel=channel, target=target,
        recipient=None, mention=None, body="hello",
    )  # fmt: skip
    service = channel
    sandbox.request_log.reset()
    sandbox.faults.error(service, 502, times=1)
    try:
        with writer_registry(settings) as writer_for, pytest.raises(WriteError):
            writer_for(delivery).post(delivery)
    finally:
        sandbox.faults.clear(service)
    posts = [e for e in sandbox.request_log.entries(service) if e.method == "POST"]
    assert [e.status for e in posts] == [502]
