"""HTTP abuse benchmark: slow and flooding clients against `syncd run`, on loopback.

    python benchmarks/http_abuse.py [--slow 100] [--heads 50] [--flood 1000] [--interval 5]

`syncd run` (default HTTP limits, hourly polls of a sandbox GitHub source) runs in a
subprocess. First a baseline: health checks on fresh connections, one after another,
with nothing else going on. Then the abuse, all at once: `--slow` clients that send a
request head and then one body byte every `--interval` seconds (the issue's case),
`--heads` clients that send their head one byte every `--interval` seconds, until every
one is cut off (or `--give-up` seconds pass); then `--flood` connections opened as fast
as possible that send nothing; then four requests declaring a 50 MiB body. Health
checks go on throughout both phases. Printed: health-check latency (p50/p99/max) and
failures per phase, how long slow clients stayed connected, the most sockets the
service held, the CPU seconds it spent per phase, its cut counters and errors logged.

Run it with PYTHONPATH pointing at another checkout to measure that code the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

from syncd.sandbox import Sandbox, World

TOKEN = "sandbox-github-token"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)] if ordered else float("nan")


def sockets_of(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):
            count += os.readlink(fd).startswith("socket:")
    return count


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def health_check(port: int) -> tuple[float, bool]:
    started = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: b\r\nconnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        ok = answer.startswith(b"HTTP/1.1 200 ")
    except (OSError, TimeoutError):
        ok = False
    return time.monotonic() - started, ok


async def trickle(port: int, head: bytes, interval: float, give_up: float) -> float:
    """Send `head`, then a byte every `interval`; seconds until the server closed."""
    started = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return 0.0
    try:
        writer.write(head)
        while time.monotonic() - started < give_up:
            try:
                if not await asyncio.wait_for(reader.read(4096), interval):
                    break
            except TimeoutError:
                writer.write(b"x")
    except ConnectionError:
        pass
    finally:
        writer.close()
    return time.monotonic() - started


async def declared_too_large(port: int) -> float:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"POST /webhooks/gh HTTP/1.1\r\nhost: b\r\ncontent-length: 52428800\r\n\r\n")
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n"), 30)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    return time.monotonic() - started


@dataclass
class Prober:
    """Health checks back to back on fresh connections, until stopped."""

    port: int
    results: list[tuple[float, bool]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while not self.stop.is_set():
            self.results.append(await health_check(self.port))
            await asyncio.sleep(0.1)

    def summary(self) -> dict[str, float | int]:
        seconds = [s * 1000 for s, _ in self.results]
        return {"n": len(self.results), "failed": sum(not ok for _, ok in self.results),
                "p50_ms": round(percentile(seconds, 0.5), 1),
                "p99_ms": round(percentile(seconds, 0.99), 1),
                "max_ms": round(max(seconds, default=float("nan")), 1)}  # fmt: skip


async def while_probing(port: int, work: Awaitable[T]) -> tuple[T, Prober]:
    prober = Prober(port)
    probing = asyncio.create_task(prober.run())
    result = await work
    prober.stop.set()
    await probing
    return result, prober


async def slow_clients(args: argparse.Namespace, port: int) -> dict[str, object]:
    body = b"POST /webhooks/gh HTTP/1.1\r\nhost: b\r\ncontent-length: 1000\r\n\r\n{"
    head = b"POST /webhooks/gh HTTP/1.1\r\nhost: b\r\n"
    slow = [trickle(port, body, args.interval, args.give_up) for _ in range(args.slow)]
    heads = [trickle(port, head, args.interval, args.give_up) for _ in range(args.heads)]
    opened = await asyncio.gather(*slow, *heads)
    return {
        "slow_body_open_s_max": round(max(opened[: args.slow], default=0), 1),
        "slow_head_open_s_max": round(max(opened[args.slow :], default=0), 1),
        "still_open_at_give_up": sum(s >= args.give_up for s in opened),
    }


async def flood(args: argparse.Namespace, port: int, pid: int) -> dict[str, object]:
    streams = []
    peak = 0
    for n in range(args.flood):
        with contextlib.suppress(OSError):
            streams.append(await asyncio.open_connection("127.0.0.1", port))
        if n % 100 == 0:
            peak = max(peak, sockets_of(pid))
    await asyncio.sleep(1)
    peak = max(peak, sockets_of(pid))
    for _, writer in streams:
        writer.close()
    return {"flood_connected": len(streams), "service_sockets_peak": peak}


async def abuse(args: argparse.Namespace, port: int, pid: int) -> dict[str, object]:
    baseline = [await health_check(port) for _ in range(100)]
    baseline_s = [s * 1000 for s, _ in baseline]
    cpu = cpu_seconds(pid)
    slow, slow_probes = await while_probing(port, slow_clients(args, port))
    slow_cpu, cpu = cpu_seconds(pid) - cpu, cpu_seconds(pid)
    flooded, flood_probes = await while_probing(port, flood(args, port, pid))
    flood_cpu = cpu_seconds(pid) - cpu
    oversize = await asyncio.gather(*(declared_too_large(port) for _ in range(4)))
    return {
        "baseline_healthz": {"n": len(baseline), "failed": sum(not ok for _, ok in baseline),
                             "p50_ms": round(percentile(baseline_s, 0.5), 1),
                             "p99_ms": round(percentile(baseline_s, 0.99), 1)},
        "slow_clients": slow | {"healthz": slow_probes.summary(),
                                "service_cpu_s": round(slow_cpu, 2)},
        "flood": flooded | {"healthz": flood_probes.summary(),
                            "service_cpu_s": round(flood_cpu, 2)},
        "oversize_413_s_max": round(max(oversize), 3),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow", type=int, default=100)
    parser.add_argument("--heads", type=int, default=50)
    parser.add_argument("--flood", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--give-up", type=float, default=60.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="syncd-http-abuse-"))
    world = World.from_dict({
        "tokens": {"github": TOKEN},
        "github": {"viewer": "syncd-bot", "repos": [{"full_name": "acme/a", "issues": []}]},
    })  # fmt: skip
    with Sandbox(world) as sandbox:
        port = free_port()
        config = workdir / "syncd.toml"
        config.write_text(
            f'[ledger]\nurl = "sqlite:///{workdir / "ledger.db"}"\n\n'
            f'[service]\nlisten = "127.0.0.1:{port}"\npoll_interval = "1h"\n\n'
            f'[sources.gh]\nkind = "github"\nbase_url = "{sandbox.urls["github"]}"\n'
            f'token = "{TOKEN}"\nrepos = ["acme/a"]\nwebhook_secret = "s"\n'
        )
        service = subprocess.Popen(
            [sys.executable, "-m", "syncd", "--log-format", "json", "--log-level", "WARNING",
             "run", "-c", str(config)],
            stderr=(workdir / "service.log").open("wb"),
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url)
            results = asyncio.run(abuse(args, port, service.pid))
            metrics = httpx.get(f"{url}/metrics", timeout=10).text
        finally:
            service.send_signal(signal.SIGTERM)
            service.wait(20)
        results["cuts"] = {
            line.split('"')[1]: float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("syncd_http_connections_cut_total{")
        }
        errors = (workdir / "service.log").read_text().count('"level": "error"')
        results["errors_logged"] = errors
    print(json.dumps(results, indent=2))


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


if __name__ == "__main__":
    main()
