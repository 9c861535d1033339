"""`syncd demo` end to end, offline, as a newcomer runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def syncd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "syncd", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    result = syncd("demo", "--dir", "demo", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # Every source pulled, rules evaluated, follow-ups posted where the work lives.
    for source in ("gh", "jira", "chat", "support"):
        assert f"│ {source} " in out
    assert "Ownerless tasks (5)" in out
    # 7 follow-ups of the policy rules, plus deadline_risk's one for MIG-5.
    assert "Follow-ups posted (8)" in out
    assert "MIG-1 is at risk: blocked by MIG-2, which is overdue" in out
    # MIG-5 (open 150 days, idle 45, due in 8 days) is heading for a miss; the warning
    # carries the forecast's reason, and the deadline-risk table shows it too.
    assert "MIG-5 is heading for a missed deadline:" in out
    assert "no activity for 45 days" in out
    assert "│ deadline-risk │    1 │" in out
    assert "1 at risk of" in out and "│ MIG-5 │ dev" in out
    assert "email (SMTP)" in out and "Re: Staging site down after the DNS test" in out
    demo = tmp_path / "demo"
    assert "<svg" in (demo / "report.html").read_text()

    # The ledger stays: the suggested next commands work offline.
    audit = syncd(
        "audit", "-c", "demo/syncd.toml", "--report", "ownerless", "--format", "json", cwd=tmp_path
    )
    assert audit.returncode == 0, audit.stderr
    ownerless = json.loads(audit.stdout)["tasks"]
    assert {t["source"] for t in ownerless} == {"gh", "jira", "chat", "support"}
    tasks = json.loads(
        syncd("tasks", "-c", "demo/syncd.toml", "--format", "json", cwd=tmp_path).stdout
    )
    # The 11 tasks of the story, 12 finished ones (the team's history) and MIG-5.
    assert len(tasks["tasks"]) == 24
    risk = json.loads(
        syncd("forecast", "-c", "demo/syncd.toml", "--format", "json", cwd=tmp_path).stdout
    )
    assert [t["key"] for t in risk["at_risk"]] == ["MIG-5"]

    # Running it again tells the same story from scratch.
    again = syncd("demo", "--dir", "demo", cwd=tmp_path)
    assert again.returncode == 0 and "Follow-ups posted (8)" in again.stdout
