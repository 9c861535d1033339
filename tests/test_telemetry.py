"""Every API request a connector makes is counted by source and status for /metrics."""

from __future__ import annotations

from pathlib import Path

from syncd import telemetry
from syncd.clock import SystemClock
from syncd.config import load_config
from syncd.ledger.repository import Ledger
from syncd.sandbox import Sandbox, World
from syncd.service.metrics import Metrics
from syncd.sync import pull_all


def write_config(path: Path, sandbox: Sandbox) -> Path:
    path.write_text(
        f'[ledger]\nurl = "sqlite:///{path.parent / "ledger.db"}"\n\n'
        f'[sources.tm-gh]\nkind = "github"\nbase_url = "{sandbox.urls["github"]}"\n'
        'token = "sandbox-github-token"\nrepos = ["example-org/api"]\n\n'
        f'[sources.tm-ops]\nkind = "jira"\nurl = "{sandbox.urls["jira"]}"\n'
        'email = "bot@acme.example"\ntoken = "sandbox-jira-token"\njql = "project = OPS"\n\n'
        f'[sources.tm-chat]\nkind = "slack"\nbase_url = "{sandbox.urls["slack"]}"\n'
        'token = "xoxb-sandbox"\nchannels = ["C0123ABCD"]\n'
    )
    return path


def counted(before: dict[tuple[str, str], int], source: str) -> dict[str, int]:
    after, _ = telemetry.snapshot()
    return {
        status: n - before.get((name, status), 0)
        for (name, status), n in after.items()
        if name == source and n - before.get((name, status), 0)
    }


def test_requests_are_counted_per_source_and_status_as_the_server_saw_them(
    tmp_path: Path,
) -> None:
    with Sandbox(World.default()) as sandbox:
        settings = load_config(write_config(tmp_path / "syncd.toml", sandbox))
        sandbox.faults.error("github", status=502, route="/repos/*/issues", times=1)
        ledger = Ledger.open(settings.ledger.url)
        before, _ = telemetry.snapshot()
        try:
            summaries, _ = pull_all(settings, ledger, list(settings.sources), SystemClock())
        finally:
            ledger.close()
        assert not any(summary.failed for summary in summaries.values())
        served = {
            service: sandbox.request_log.count(service) for service in ("github", "jira", "slack")
        }
    github = counted(before, "tm-gh")
    assert github["502"] == 1, github
    assert sum(github.values()) == served["github"]
    assert sum(counted(before, "tm-ops").values()) == served["jira"]
    assert sum(counted(before, "tm-chat").values()) == served["slack"]
    _, remaining = telemetry.snapshot()
    assert 0 < remaining["tm-gh"] < 5000, "GitHub's X-RateLimit-Remaining is kept"


def test_metrics_export_requests_and_rate_limit_remaining() -> None:
    telemetry.count_request("tm-export", 200, {"X-RateLimit-Remaining": "4711"})
    telemetry.count_request("tm-export", None)
    text = Metrics().render({}).decode()
    assert 'syncd_api_requests_total{source="tm-export",status="200"} 1.0' in text
    assert 'syncd_api_requests_total{source="tm-export",status="none"} 1.0' in text
    assert 'syncd_rate_limit_remaining{source="tm-export"} 4711.0' in text
