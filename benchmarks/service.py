"""Service load benchmark: signed GitHub webhooks at a fixed rate into `syncd run`.

    python benchmarks/service.py [--rate 200] [--seconds 60]

The sandbox runs in this process; `syncd run` (hourly polls, so only webhooks
bring changes in promptly) runs in a subprocess on a SQLite ledger. Each event
opens a new issue in the sandbox, whose webhook sender posts the signed `issues`
delivery the real GitHub would (the whole issue in REST shape, `X-Hub-Signature-256`);
the service ingests it directly, without a poll. Event-to-ledger latency is the
issue's `first_seen_at` in the ledger minus the moment its webhook was sent (same
machine, same clock). A loss is an issue not in the ledger 30 s after the last
event. Printed: delivered rate (deliveries answered per second of sending),
p50/p99 latency, losses, non-2xx answers, polls the service ran during the load,
and the service's RSS at start and end.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

import httpx

from syncd.ledger.repository import Ledger
from syncd.sandbox import Sandbox, World

SECRET = "bench-secret"
TOKEN = "sandbox-github-token"
REPO = "acme/bench"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="syncd-bench-service-"))
    world = World.from_dict({
        "tokens": {"github": TOKEN},
        # Webhook-triggered polls are coalesced now, but the limit stays lifted so that a
        # regression shows up as slow polls rather than as rate-limit failures.
        "github": {"viewer": "syncd-bot", "rate_limit": 10**9,
                   "repos": [{"full_name": REPO, "issues": []}]},
    })  # fmt: skip
    with Sandbox(world) as sandbox:
        port = free_port()
        config = workdir / "syncd.toml"
        config.write_text(
            f'[ledger]\nurl = "sqlite:///{workdir / "ledger.db"}"\n\n'
            f'[service]\nlisten = "127.0.0.1:{port}"\npoll_interval = "1h"\n\n'
            f'[sources.gh]\nkind = "github"\nbase_url = "{sandbox.urls["github"]}"\n'
            f'token = "{TOKEN}"\nrepos = ["{REPO}"]\nwebhook_secret = "{SECRET}"\n'
        )
        service = subprocess.Popen(
            [sys.executable, "-m", "syncd", "--log-format", "json", "--log-level", "WARNING",
             "run", "-c", str(config)],
            stderr=(workdir / "service.log").open("wb"),
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        rss_start = rss_mb(service.pid)
        polls_before = polls_run(url)
        sandbox.webhooks.configure("github", f"{url}/webhooks/gh", SECRET)
        sent, bad, delivered_rate = send(sandbox, args.rate, args.seconds)
        seen = wait_for_ledger(workdir / "ledger.db", len(sent), timeout=30)
        rss_end = rss_mb(service.pid)
        polls = polls_run(url) - polls_before
        service.send_signal(signal.SIGTERM)
        service.wait(20)
    latencies = [(seen[n] - t) * 1000 for n, t in sent.items() if n in seen]
    print(json.dumps({
        "rate_target": args.rate, "seconds": args.seconds, "events": len(sent),
        "delivered_rate": delivered_rate, "non_2xx": bad,
        "lost": len(sent) - len(latencies), "polls_during_load": polls,
        "latency_ms_p50": round(percentile(latencies, 0.50), 1),
        "latency_ms_p99": round(percentile(latencies, 0.99), 1),
        "rss_mb_start": round(rss_start, 1), "rss_mb_end": round(rss_end, 1),
    }, indent=2))  # fmt: skip


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").json()["status"] == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("the service did not become healthy")


def polls_run(url: str) -> int:
    """Polls of the source so far, from the service's Prometheus metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(int(float(line.rsplit(" ", 1)[1])) for line in text.splitlines()
               if line.startswith("syncd_polls_total{"))  # fmt: skip


def send(sandbox: Sandbox, rate: int, seconds: int) -> tuple[dict[str, float], int, float]:
    """Open an issue `rate` times a second, paced, not bursty; the sandbox posts each
    one's webhook. Returns send times by issue key, non-2xx answers, delivered rate."""
    started = time.monotonic()
    for i in range(rate * seconds):
        pause = started + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        sandbox.world.add_gh_issue(REPO, f"Bench event {i}")
    if not sandbox.webhooks.wait(timeout=120):
        raise SystemExit("the sandbox could not deliver every webhook within 120 s")
    deliveries = sandbox.webhooks.of("github", "issues")
    sent = {f"{REPO}#{d.payload['issue']['number']}": d.sent_at for d in deliveries
            if d.sent_at is not None}  # fmt: skip
    bad = sum(d.status is None or d.status >= 300 for d in deliveries)
    stamps = sorted(sent.values())
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else float("nan")
    return sent, bad, round((len(stamps) - 1) / span, 1)


def wait_for_ledger(db: Path, expected: int, timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    seen: dict[str, float] = {}
    while True:
        ledger = Ledger.open(f"sqlite:///{db}", auto_upgrade=False)
        try:
            seen = {t.key: t.first_seen_at.replace(tzinfo=UTC).timestamp()
                    if t.first_seen_at.tzinfo is None else t.first_seen_at.timestamp()
                    for t in ledger.tasks(sources=["gh"])}  # fmt: skip
        finally:
            ledger.close()
        if len(seen) >= expected or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


if __name__ == "__main__":
    main()
