"""SIGKILL `syncd run` during a burst of webhooks: no acknowledged delivery is lost.

The real service runs as a subprocess on a SQLite ledger against the sandbox,
whose GitHub API fails every request: polls cannot bring anything in, so each
issue reaches the ledger only through its webhook. Sender threads post signed
`issues.opened` deliveries as fast as they can, retrying (with the same delivery
id, as GitHub does) whatever was not answered 2xx: a refused connection while
the service is down, a request cut off by the kill. The service is SIGKILLed at
random moments and restarted; in the end every delivery that was ever answered
2xx must be in the ledger as the task it carried.

A short loop (3 kills) runs by default; the 20-kill loop is marked `slow`
(`python -m pytest -q -m slow`, which `.ci/run` runs as its own step).
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from inbox_support import GitHubDelivery, issue_opened, write_config

from syncd.ledger.repository import Ledger
from syncd.sandbox import Sandbox, World
from syncd.service import inbox


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Sender:
    """Threads posting new deliveries, each retried until it is answered 2xx.

    Once `finish` is called no new delivery is begun; the ones in flight are
    retried until acknowledged, as GitHub redelivers with the same delivery id.
    """

    url: str
    threads: int = 4
    acked: dict[str, GitHubDelivery] = field(default_factory=dict)
    refused: int = 0  # answers other than 2xx, and requests that got no answer
    _numbers: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _finishing: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for _ in range(self.threads):
            worker = threading.Thread(target=self._run, daemon=True)
            worker.start()
            self._workers.append(worker)

    def finish(self, timeout: float) -> bool:
        """Stop beginning new deliveries; True once every one begun was acknowledged."""
        self._finishing.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(deadline - time.monotonic(), 0))
        return not any(worker.is_alive() for worker in self._workers)

    def acked_count(self) -> int:
        with self._lock:
            return len(self.acked)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._finishing.is_set():
                with self._lock:
                    delivery = issue_opened(next(self._numbers))
                self._deliver(client, delivery)

    def _deliver(self, client: httpx.Client, delivery: GitHubDelivery) -> None:
        while True:
            try:
                answer = client.post(self.url, content=delivery.body,
                                     headers=delivery.headers())  # fmt: skip
                if 200 <= answer.status_code < 300:
                    with self._lock:
                        self.acked[delivery.delivery_id] = delivery
                    return
            except httpx.HTTPError:
                pass
            with self._lock:
                self.refused += 1
            time.sleep(0.02)  # the service is down or restarting: retry shortly


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "--log-format", "json", "run", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 60
    while b'"service started"' not in log.read_bytes():
        if process.poll() is not None:
            raise AssertionError(f"syncd run exited ({process.returncode}): {log.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("syncd run did not start within 60 s")
        time.sleep(0.05)
    return process


def ledger_titles(url: str) -> dict[str, str]:
    ledger = Ledger.open(url, auto_upgrade=False)
    try:
        return {task.key: task.title for task in ledger.tasks(sources=["gh"])}
    finally:
        ledger.close()


def kill_loop(tmp_path: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    world = World.from_dict({"tokens": {"github": "sandbox-github-token"},
                             "github": {"viewer": "syncd-bot", "repos": []}})  # fmt: skip
    with Sandbox(world) as sandbox:
        sandbox.faults.error("github", status=502)  # every poll fails
        listen = f"127.0.0.1:{free_port()}"
        config = write_config(tmp_path / "syncd.toml", ledger_url, listen, sandbox.urls["github"])
        sender = Sender(f"http://{listen}/webhooks/gh")
        acked_at_kill: list[int] = []
        process = start(config, tmp_path / "run0.log")
        sender.start()
        try:
            for round_ in range(kills):
                if round_:
                    process = start(config, tmp_path / f"run{round_}.log")
                # Into the burst: once this lifetime answered something, at a random moment.
                before = sender.acked_count()
                deadline = time.monotonic() + 30
                while sender.acked_count() == before:
                    assert time.monotonic() < deadline, "the restarted service answers nothing"
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 1.2))
                process.send_signal(signal.SIGKILL)
                process.wait()
                acked_at_kill.append(sender.acked_count())
            process = start(config, tmp_path / "final.log")
            assert sender.finish(60), "the deliveries in flight were never acknowledged"
            acked = dict(sender.acked)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                titles = ledger_titles(ledger_url)
                if all(titles.get(d.key) == d.title for d in acked.values()):
                    break
                time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            assert process.wait(20) == 0
        finally:
            sender.finish(0)
            if process.poll() is None:
                process.kill()
    lost = [d.key for d in acked.values() if titles.get(d.key) != d.title]
    seen = f"seed {seed}; acked before each kill: {acked_at_kill}; refused: {sender.refused}"
    assert lost == [], f"{len(lost)} acknowledged deliveries lost ({seen}): {lost[:10]}"
    print(f"{len(acked)} deliveries acknowledged, none lost; {seen}")
    left = Ledger.open(ledger_url, auto_upgrade=False)
    try:
        assert inbox.pending_count(left) == 0
    finally:
        left.close()


def test_sigkill_during_a_burst_loses_no_acknowledged_delivery(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    kill_loop(tmp_path, kills=3, seed=seed)


@pytest.mark.slow
def test_twenty_sigkills_during_a_burst_lose_no_acknowledged_delivery(tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    kill_loop(tmp_path, kills=20, seed=seed)
