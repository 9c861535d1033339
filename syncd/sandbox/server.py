"""Run the simulators on loopback: ``Sandbox`` for Python, ``serve`` for the command line."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from syncd.sandbox import github, jira, slack
from syncd.sandbox.context import Context
from syncd.sandbox.faults import Faults
from syncd.sandbox.recording import RequestLog, Writes
from syncd.sandbox.scenario import Timeline, apply
from syncd.sandbox.webhooks import Webhooks
from syncd.sandbox.world import World

SERVICES = ("github", "jira", "slack")
HOST = "127.0.0.1"  # loopback only, never a public interface


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to whoever owns the process."""

    def install_signal_handlers(self) -> None:
        return None


class Sandbox:
    """The three simulators served from background threads.

    ``with Sandbox(world) as sb:`` gives ``sb.urls`` (base URLs per service),
    ``sb.world``, ``sb.faults``, ``sb.writes``, ``sb.request_log`` and ``sb.webhooks``.
    """

    def __init__(self, world: World | None = None) -> None:
        self.world = world or World.default()
        self.ctx = Context(self.world)
        self.webhooks = Webhooks(self.world, self.ctx)
        scenario = self.world.scenario
        self.timeline = Timeline(self.world, scenario.timeline if scenario else [])
        self.urls: dict[str, str] = {}
        self._servers: list[tuple[_Server, threading.Thread]] = []

    @property
    def faults(self) -> Faults:
        return self.ctx.faults

    @property
    def writes(self) -> Writes:
        return self.ctx.writes

    @property
    def request_log(self) -> RequestLog:
        return self.ctx.log

    def set_github_remaining(self, remaining: int, token: str | None = None) -> None:
        """Set the GitHub core quota left for a token (default: the world's first token)."""
        sim: github.GitHubSim = self.ctx.sims["github"]
        sim.rate.set_remaining(token or self.world.tokens["github"][0], remaining)

    def apps(self) -> dict[str, ASGIApp]:
        return {"github": github.create_app(self.ctx), "jira": jira.create_app(self.ctx),
                "slack": slack.create_app(self.ctx)}

    def start(self) -> Sandbox:
        for service, app in self.apps().items():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((HOST, 0))
            port = sock.getsockname()[1]
            base = f"http://{HOST}:{port}"
            self.ctx.base_urls[service] = base
            self.urls[service] = base + "/api/" if service == "slack" else base
            self._launch(app, sock)
        if self.world.scenario is not None:
            apply(self.world.scenario, self)
        self.webhooks.start()
        self.timeline.start()
        return self

    def _launch(self, app: ASGIApp, sock: socket.socket) -> None:
        # h11 so that a truncated body is sent as such (the fault relies on it).
        config = uvicorn.Config(app, log_level="warning", access_log=False, http="h11",
                                lifespan="off", timeout_keep_alive=30)
        server = _Server(config)
        thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])),
                                  name="sandbox-server", daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("sandbox server did not start")
            time.sleep(0.01)
        self._servers.append((server, thread))

    def stop(self) -> None:
        self.timeline.stop()
        self.webhooks.stop()
        for server, _ in self._servers:
            server.should_exit = True
        for _, thread in self._servers:
            thread.join(timeout=10)
        self._servers.clear()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def serve(world_path: Path | None = None) -> None:
    """Serve until SIGINT/SIGTERM; print one JSON line with the base URLs when ready."""
    world = World.load(world_path) if world_path else World.default()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    try:
        with Sandbox(world) as sandbox:
            sys.stdout.write(json.dumps(sandbox.urls) + "\n")
            sys.stdout.flush()
            while not stop.wait(0.5):
                pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
