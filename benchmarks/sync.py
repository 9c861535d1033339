"""Sync benchmark: a first sync from the sandbox, then an incremental one with 1% changed.

    python benchmarks/sync.py [--github 20000] [--jira 20000] [--sources gh,ops]

Each phase runs `syncd reconcile` in a subprocess (so its peak RSS is its own)
against the sandbox served by this process, whose request log counts what the
sync asked for. Printed per phase and source: requests made against the minimum
(ceil(N / page size) per listing plus a constant), per-item calls, wall time,
items per second, peak RSS. Targets (issue 4): requests <= 1.05 x minimum + 2 per
stream; incremental <= 5% of the first sync's time; a poll with nothing changed
costs one request per stream; peak RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncd.sandbox import Sandbox, World
from syncd.sandbox.generate import generate_world

GITHUB_TOKEN = "sandbox-github-token"
JIRA_TOKEN = "sandbox-jira-token"
REPO = "example-org/big-0"
GITHUB_PAGE = 100
JIRA_PAGE = 100


@dataclass
class Phase:
    name: str
    seconds: float
    peak_rss_mb: float
    report: dict[str, Any]
    requests: dict[str, Counter[str]]


def write_config(directory: Path, sandbox: Sandbox, sources: list[str]) -> Path:
    parts = [f'[ledger]\nurl = "sqlite:///{directory / "ledger.db"}"\n']
    if "gh" in sources:
        parts.append(
            f'[sources.gh]\nkind = "github"\nbase_url = "{sandbox.urls["github"]}"\n'
            f'token = "{GITHUB_TOKEN}"\nrepos = ["{REPO}"]\nper_page = {GITHUB_PAGE}\n'
        )
    if "ops" in sources:
        parts.append(
            f'[sources.ops]\nkind = "jira"\nurl = "{sandbox.urls["jira"]}"\n'
            f'email = "bot@acme.example"\ntoken = "{JIRA_TOKEN}"\n'
            f'jql = "project in (OPS, DEV)"\npage_size = {JIRA_PAGE}\n'
        )
    path = directory / "syncd.toml"
    path.write_text("\n".join(parts))
    return path


def run_phase(name: str, config: Path, sandbox: Sandbox) -> Phase:
    sandbox.request_log.reset()
    command = [sys.executable, "-m", "syncd", "--log-level", "ERROR", "reconcile", "-c",
               str(config), "--format", "json"]  # fmt: skip
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    returncode = os.waitstatus_to_exitcode(status)
    if returncode not in (0, 1):
        raise SystemExit(f"{name}: reconcile failed ({returncode}):\n{stderr}")
    report = json.loads(stdout)
    requests = {service: sandbox.request_log.counts(service) for service in ("github", "jira")}
    return Phase(name, seconds, usage.ru_maxrss / 1024, report, requests)  # KiB on Linux


def github_minimum(items: int) -> int:
    # The issue listing, plus one repo-wide comments and one events listing per repository.
    return max(1, math.ceil(items / GITHUB_PAGE)) + 2


def jira_minimum(items: int) -> int:
    # The search pages, plus serverInfo, myself and field lookups.
    return math.ceil(items / JIRA_PAGE) + 3


def change_share(world: World, share: float, seed: int = 5) -> tuple[int, int]:
    """Edit `share` of the GitHub issues and of the Jira issues; returns the counts."""
    rng = random.Random(seed)
    repo = world.repo(REPO)
    gh_numbers = sorted(repo.issues) if repo else []
    gh_changed = rng.sample(gh_numbers, int(len(gh_numbers) * share))
    for number in gh_changed:
        world.edit_gh_issue(REPO, number, title=f"edited {number}")
    with world.lock:
        jira_keys = sorted(issue.key for issue in world.jira_issues.values())
    jira_changed = rng.sample(jira_keys, int(len(jira_keys) * share))
    for key in jira_changed:
        world.edit_jira_issue(key, summary=f"edited {key}")
    return len(gh_changed), len(jira_changed)


def print_phase(phase: Phase, minimums: dict[str, int], first: Phase | None) -> None:
    print(
        f"\n== {phase.name}: {phase.seconds:.1f}s wall, peak RSS {phase.peak_rss_mb:.0f} MB (target <= 300)"
    )
    for source, stats in phase.report["sources"].items():
        service = "github" if source == "gh" else "jira"
        made = sum(phase.requests[service].values())
        per_item = sum(
            n for route, n in phase.requests[service].items()
            if ("/comments" in route and "{number}" in route)
            or "sub_issues" in route or "blocked_by" in route
        )  # fmt: skip
        minimum = minimums[source]
        items = stats["fetched"]
        print(
            f"  {source}: fetched {items:,} (new {stats['new']:,}, updated {stats['updated']:,}, "
            f"unchanged {stats['unchanged']:,}); requests {made} vs minimum {minimum} "
            f"(target <= {1.05 * minimum + 2:.0f}); per-item calls {per_item}; "
            f"sync {stats['seconds']:.2f}s (process {phase.seconds:.2f}s), "
            f"{items / max(stats['seconds'], 1e-9):,.0f} items/s"
            + (f"; failed: {stats['error']}" if stats["failed"] else "")
        )
        for route, count in sorted(phase.requests[service].items()):
            print(f"      {count:6d}  {route}")
    if first is not None:
        for source, stats in phase.report["sources"].items():
            before = first.report["sources"][source]["seconds"]
            print(
                f"  {source}: sync time vs first sync: {stats['seconds'] / before:.1%} "
                f"(target <= 5%; whole process incl. start-up: {phase.seconds / first.seconds:.1%})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--github", type=int, default=20_000)
    parser.add_argument("--jira", type=int, default=20_000)
    parser.add_argument("--sources", default="gh,ops", help="comma-separated: gh, ops")
    args = parser.parse_args()
    sources = args.sources.split(",")

    started = time.perf_counter()
    document = generate_world(
        github_issues=args.github, jira_issues=args.jira, slack_messages=0, seed=1
    )
    document["tokens"] = {"github": GITHUB_TOKEN, "jira": JIRA_TOKEN}
    world = World.from_dict(document)
    print(
        f"world: {args.github:,} GitHub items, {args.jira:,} Jira issues "
        f"(generated in {time.perf_counter() - started:.1f}s)"
    )
    with tempfile.TemporaryDirectory() as tmp, Sandbox(world) as sandbox:
        config = write_config(Path(tmp), sandbox, sources)
        first = run_phase("first sync", config, sandbox)
        print_phase(
            first, {"gh": github_minimum(args.github), "ops": jira_minimum(args.jira)}, None
        )
        gh_changed, jira_changed = change_share(world, 0.01)
        second = run_phase(
            f"incremental ({gh_changed:,} + {jira_changed:,} changed)", config, sandbox
        )
        # Each edit is also one event in the repo-wide events listing: those pages count too.
        gh_minimum = github_minimum(gh_changed) + max(0, math.ceil(gh_changed / 100) - 1)
        print_phase(second, {"gh": gh_minimum, "ops": jira_minimum(jira_changed)}, first)
        quiet = run_phase("poll with nothing changed", config, sandbox)
        print_phase(quiet, {"gh": 1, "ops": 1}, first)


if __name__ == "__main__":
    main()
