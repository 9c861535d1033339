"""Service load benchmark: signed GitHub webhooks at a fixed rate into `syncd run`.

    python benchmarks/service.py [--rate 200] [--seconds 60] [--poll 30s] [--ledger URL]

The sandbox runs in this process; `syncd run` runs in a subprocess on a SQLite
ledger (or `--ledger`), polling the sandbox every `--poll` (the polls bring in a
world of 2,000 issues first) and evaluating four rules after every poll and every
webhook batch, as in normal operation. Each event opens a new issue in the
sandbox and posts the signed `issues.opened` delivery GitHub would send (the
whole REST-shaped issue, `X-GitHub-Delivery`, `X-Hub-Signature-256`) from an
open-loop asyncio client over 64 keep-alive connections: a delivery is due at its
scheduled moment whether or not earlier ones were answered, as GitHub's senders
do, and its latency counts from then (waiting for a free connection included). The
client runs in a child process: the sandbox in this one holds the GIL for long
stretches while it renders the service's polls, which would inflate the figures.

Every delivery is committed to the ledger's webhook inbox before its 2xx, so:

* time-to-2xx: from the POST until the answer (the price of the group commit);
* baseline, same run: signed `ping` deliveries (one per ten events, on four
  connections of their own), verified and answered without being stored: the
  HTTP and verification path alone, on the same loaded service;
* event-to-ledger: from the POST until the issue is a task in the ledger
  (its `first_seen_at`; same machine, same clock).

A loss is an issue not in the ledger 60 s after the last event. The load
average is printed at start and end: the load generator and the service share
the machine's two cores with whatever else runs.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx

from syncd.ledger.repository import Ledger
from syncd.sandbox import Sandbox, World
from syncd.sandbox.github import Renderer

SECRET = "bench-secret"
TOKEN = "sandbox-github-token"
REPO = "acme/bench"
RULES = (
    '[[rules]]\nid = "single-owner"\nkind = "single_owner"\n\n'
    '[[rules]]\nid = "due-date"\nkind = "due_date"\n\n'
    '[[rules]]\nid = "priority"\nkind = "priority"\n\n'
    '[[rules]]\nid = "stale"\nkind = "stale"\ndays = 5\n'
)


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


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--poll", default="30s", help="the service's poll_interval")
    parser.add_argument("--ledger", help="ledger URL (default: a fresh SQLite file)")
    parser.add_argument("--without-rules", action="store_true", help="diagnosis: no rules")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="syncd-bench-service-"))
    ledger_url = args.ledger or f"sqlite:///{workdir / 'ledger.db'}"
    world = World.from_dict({
        "tokens": {"github": TOKEN},
        "people": [{"id": "alice", "name": "Alice", "github": "alice-c"}],
        "github": {"viewer": "syncd-bot", "rate_limit": 10**9, "repos": [{
            "full_name": REPO, "labels": ["P1"],
            "issues": [{"title": f"Existing {n}", "user": "alice-c", "created_at": "-30d",
                        "updated_at": f"-{n}m", "assignees": ["alice-c"] if n % 2 else []}
                       for n in range(1, 2001)]}]},
    })  # fmt: skip
    load_start = load_average()
    with Sandbox(world) as sandbox:
        port = free_port()
        config = workdir / "syncd.toml"
        config.write_text(
            f'[ledger]\nurl = "{ledger_url}"\n\n'
            f'[service]\nlisten = "127.0.0.1:{port}"\npoll_interval = "{args.poll}"\n\n'
            f'[sources.gh]\nkind = "github"\nbase_url = "{sandbox.urls["github"]}"\n'
            f'token = "{TOKEN}"\nrepos = ["{REPO}"]\nwebhook_secret = "{SECRET}"\n\n'
            '[people.alice]\ngithub = "alice-c"\n\n' + ("" if args.without_rules else RULES)
        )
        service = subprocess.Popen(
            [sys.executable, "-m", "syncd", "--log-format", "json", "--log-level", "WARNING",
             "run", "-c", str(config)],
            stderr=(workdir / "service.log").open("wb"),
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url)
            rss_start = rss_mb(service.pid)
            polls_before = polls_run(url)
            sent, answered, pings = send(sandbox, url, args.rate, args.seconds)
            load_end = load_average()
            seen = wait_for_ledger(ledger_url, set(sent), timeout=60)
            rss_end = rss_mb(service.pid)
            polls = polls_run(url) - polls_before
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(20)
    report(args, sent, answered, pings, seen, polls, (rss_start, rss_end), (load_start, load_end))


def report(
    args: argparse.Namespace,
    sent: dict[str, float],
    answered: dict[str, tuple[float, int]],
    pings: list[float],
    seen: dict[str, float],
    polls: int,
    rss: tuple[float, float],
    load: tuple[str, str],
) -> None:
    to_2xx = [(at - sent[key]) * 1000 for key, (at, status) in answered.items() if status < 300]
    to_ledger = [(seen[key] - t) * 1000 for key, t in sent.items() if key in seen]
    stamps = sorted(sent.values())
    span = stamps[-1] - stamps[0] if len(stamps) > 1 else float("nan")
    print(json.dumps({
        "rate_target": args.rate, "seconds": args.seconds, "poll_interval": args.poll,
        "rules": 0 if args.without_rules else RULES.count("[[rules]]"),
        "events": len(sent), "sent_rate": round((len(stamps) - 1) / span, 1),
        "non_2xx": sum(1 for _, status in answered.values() if status >= 300),
        "unanswered": len(sent) - len(answered), "lost": len(sent) - len(to_ledger),
        "polls_during_load": polls,
        "to_2xx_ms_p50": round(percentile(to_2xx, 0.50), 1),
        "to_2xx_ms_p99": round(percentile(to_2xx, 0.99), 1),
        "to_2xx_ms_max": round(max(to_2xx, default=float("nan")), 1),
        "baseline_ping_not_stored_ms_p50": round(percentile(pings, 0.50), 1),
        "baseline_ping_not_stored_ms_p99": round(percentile(pings, 0.99), 1),
        "event_to_ledger_ms_p50": round(percentile(to_ledger, 0.50), 1),
        "event_to_ledger_ms_p99": round(percentile(to_ledger, 0.99), 1),
        "rss_mb_start": round(rss[0], 1), "rss_mb_end": round(rss[1], 1),
        "load_average_start": load[0], "load_average_end": load[1],
    }, indent=2))  # fmt: skip


def wait_healthy(url: str) -> None:
    deadline = time.monotonic() + 60
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


def signed(event: str, body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "User-Agent": "GitHub-Hookshot/bench",
            "X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": f"sha256={digest}"}  # fmt: skip


class Opener:
    """Opens issues in the sandbox and builds the `issues.opened` body GitHub would post.

    The repository and sender objects are rendered once: rendering the repository
    counts its issues, which would make the load generator the bottleneck.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        self.world = sandbox.world
        self.render = Renderer(self.world, sandbox.urls["github"])
        with self.world.lock:
            repo = self.world.repo(REPO)
            self.repository = self.render.repo(repo) if repo else None
            self.sender = self.render.user(self.world.gh_viewer)

    def open(self, title: str) -> tuple[str, bytes]:
        issue = self.world.add_gh_issue(REPO, title)
        with self.world.lock:
            rendered = self.render.issue(issue)
        payload = {"action": "opened", "issue": rendered, "repository": self.repository,
                   "sender": self.sender}  # fmt: skip
        return f"{REPO}#{issue.number}", json.dumps(payload, separators=(",", ":")).encode()


class Connections:
    """A small HTTP/1.1 keep-alive client over asyncio streams.

    httpx's async client costs a few milliseconds of CPU per request, which at
    200/s on two shared cores made the load generator, not the service, the
    bottleneck. Requests wait in a queue for one of `size` connections; a
    request's latency is measured from the moment it was due, queueing included.
    """

    def __init__(self, host: str, port: int, size: int = 64) -> None:
        self.host, self.port, self.size = host, port, size
        self.queue: asyncio.Queue[tuple[str, bytes, dict[str, str], asyncio.Future[int]]] = (
            asyncio.Queue()
        )
        self.workers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.workers = [asyncio.create_task(self._worker()) for _ in range(self.size)]

    async def close(self) -> None:
        for worker in self.workers:
            worker.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> asyncio.Future[int]:
        """The answer's status code, later; -1 when the connection failed."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((path, body, headers, future))
        return future

    async def _worker(self) -> None:
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while True:
            path, body, headers, future = await self.queue.get()
            head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            request = (
                f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{head}"
                f"Content-Length: {len(body)}\r\n\r\n".encode() + body
            )
            # A kept-alive connection the server has closed meanwhile (uvicorn drops idle
            # ones after 5 s) fails on first use: reconnect and send once more.
            for fresh in (streams is None, True):
                try:
                    if streams is None:
                        streams = await asyncio.open_connection(self.host, self.port)
                    streams[1].write(request)
                    future.set_result(await _read_answer(streams[0]))
                    break
                except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                    if streams is not None:
                        streams[1].close()
                    streams = None
                    if fresh:
                        future.set_result(-1)
                        break


async def _read_answer(reader: asyncio.StreamReader) -> int:
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


def send(
    sandbox: Sandbox, url: str, rate: int, seconds: int
) -> tuple[dict[str, float], dict[str, tuple[float, int]], list[float]]:
    """Open `rate` issues a second here; a child process posts each delivery as it comes.

    The sandbox (which also answers the service's polls) holds this process's GIL
    for long stretches while it renders a page of thousands of issues; measuring in
    the same process would charge those stalls to the service. Returns send times by
    issue key, answer times and statuses by key, and the unstored baseline's latencies.
    """
    context = multiprocessing.get_context("spawn")
    events: multiprocessing.Queue[tuple[str, bytes] | None] = context.Queue()
    results: multiprocessing.Queue[Any] = context.Queue()
    child = context.Process(target=sender_process, args=(url, events, results))
    child.start()
    opener = Opener(sandbox)
    started = time.monotonic()
    for i in range(rate * seconds):
        pause = started + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        events.put(opener.open(f"Bench event {i}"))
    events.put(None)
    sent, answered, pings = results.get(timeout=600)
    child.join(30)
    return sent, answered, pings


def sender_process(
    url: str, events: multiprocessing.Queue[Any], results: multiprocessing.Queue[Any]
) -> None:
    results.put(asyncio.run(post_all(url, events)))


async def post_all(
    url: str, events: multiprocessing.Queue[Any]
) -> tuple[dict[str, float], dict[str, tuple[float, int]], list[float]]:
    """Post each event as it arrives (open loop), and a `ping` after every tenth."""
    sent: dict[str, float] = {}
    answered: dict[str, tuple[float, int]] = {}
    pings: list[float] = []
    host, port = url.removeprefix("http://").split(":")
    connections = Connections(host, int(port))
    connections.start()
    # The baseline has connections of its own: queued behind slow stores, it would
    # measure the same queue, not the unstored path.
    ping_connections = Connections(host, int(port), size=4)
    ping_connections.start()
    ping_body = b'{"zen":"Design for failure.","hook_id":1}'

    async def post(key: str, body: bytes) -> None:
        sent[key] = time.time()
        status = await connections.post("/webhooks/gh", body, signed("issues", body))
        if status > 0:
            answered[key] = (time.time(), status)

    async def ping() -> None:
        started = time.time()
        status = await ping_connections.post("/webhooks/gh", ping_body, signed("ping", ping_body))
        if status == 200:
            pings.append((time.time() - started) * 1000)

    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    for i in itertools.count():
        event = await loop.run_in_executor(None, events.get)
        if event is None:
            break
        tasks.append(asyncio.create_task(post(*event)))
        if i % 10 == 5:
            tasks.append(asyncio.create_task(ping()))
    await asyncio.gather(*tasks)
    await connections.close()
    await ping_connections.close()
    return sent, answered, pings


def wait_for_ledger(url: str, keys: set[str], timeout: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    seen: dict[str, float] = {}
    while True:
        ledger = Ledger.open(url, auto_upgrade=False)
        try:
            seen = {t.key: t.first_seen_at.replace(tzinfo=UTC).timestamp()
                    if t.first_seen_at.tzinfo is None else t.first_seen_at.timestamp()
                    for t in ledger.tasks(sources=["gh"]) if t.key in keys}  # fmt: skip
        finally:
            ledger.close()
        if len(seen) >= len(keys) or time.monotonic() > deadline:
            return seen
        time.sleep(0.5)


if __name__ == "__main__":
    main()
