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
    assert "Follow-ups posted (7)" in out
    assert "MIG-1 is at risk: blocked by MIG-2, which is overdue" in out
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
    assert len(tasks["tasks"]) == 11

    # Running it again tells the same story from scratch.
    again = syncd("demo", "--dir", "demo", cwd=tmp_path)
    assert again.returncode == 0 and "Follow-ups posted (7)" in again.stdout
