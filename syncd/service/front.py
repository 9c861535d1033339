"""The HTTP process of `syncd run`: verify, store in the webhook inbox, answer.

`syncd run` binds the listening socket, then starts this module as a child
process (`python -m syncd.service.front`) handing it that socket and one end of a
`Channel`. Here uvicorn serves the app with its own ledger connection and its own
`GroupCommit`, so the acknowledgement path (verify, group commit, 2xx) never waits
for the interpreter lock held by ingest, polls and rules in the main process.
What it stored and counted goes to the main process over the channel (its ingest
worker looks at once); `/healthz` and `/metrics` are asked of the main process
(the HTTP connection counters, kept here, are added to the latter).

Lifecycle: SIGTERM from the main process stops it (a request in hand is finished,
what waits for the writer is stored); the main process's death kills it
(PR_SET_PDEATHSIG, and the channel's EOF); SIGINT is left to the main process;
SIGHUP re-reads the config (the webhook secrets).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import sys
import threading
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from syncd.clock import SystemClock
from syncd.config import ConfigError, Settings, load_config
from syncd.ledger.db import create_ledger_engine
from syncd.ledger.repository import Ledger
from syncd.logs import LogFormat, configure_logging, get_logger
from syncd.service.app import create_app, secret_of
from syncd.service.channel import Channel, Message
from syncd.service.http import http_limits, serve_in_thread
from syncd.service.inbox import GroupCommit, Incoming, stored_within

ASK_TIMEOUT = 5.0  # seconds the main process has to answer /healthz or /metrics
COUNTS_EVERY = 0.25  # seconds between sending the webhook counts (one message, not one each)
PR_SET_PDEATHSIG = 1

log = get_logger("syncd.service.front")


class FrontBackend:
    """The app's `Backend` in the HTTP process."""

    def __init__(
        self, settings: Settings, inbox: GroupCommit, channel: Channel, registry: CollectorRegistry
    ) -> None:
        self.settings, self.inbox, self.channel, self.registry = settings, inbox, channel, registry
        self.clock = SystemClock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._counts_lock = threading.Lock()

    def webhook_secret(self, source: str) -> tuple[str, str] | None:
        return secret_of(self.settings, source)

    async def accept(self, source: str, event: str, delivery_id: str, body: bytes) -> str:
        return await stored_within(self.inbox.submit(Incoming(source, delivery_id, event, body)))

    def now_timestamp(self) -> float:
        return self.clock.now().timestamp()

    def health(self) -> dict[str, Any]:
        report: dict[str, Any] = self.channel.ask("health", ASK_TIMEOUT)
        return report

    def metrics(self) -> bytes:
        self.send_counts()  # the answer includes every request answered before this one
        main: str = self.channel.ask("metrics", ASK_TIMEOUT)
        return generate_latest(self.registry) + main.encode()

    def count_webhook(self, source: str, outcome: str) -> None:
        with self._counts_lock:
            self._counts[source, outcome] += 1

    def send_counts(self) -> None:
        """What was counted since the last call, in one message (the channel keeps order)."""
        with self._counts_lock:
            counts, self._counts = self._counts, Counter()
        if counts:
            rows = [[source, outcome, n] for (source, outcome), n in counts.items()]
            self.channel.post({"op": "counts", "counts": rows})


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when the main process dies, SIGKILL included."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)


def serve(config_path: Path, listening: socket.socket, channel: Channel) -> None:
    settings = load_config(config_path)
    ledger = Ledger(create_ledger_engine(settings.ledger.url))  # migrated by the main process
    inbox = GroupCommit(ledger, SystemClock(), on_stored=lambda: channel.post({"op": "stored"}))
    registry = CollectorRegistry()
    backend = FrontBackend(settings, inbox, channel, registry)
    server, thread = serve_in_thread(
        create_app(backend), listening, http_limits(settings.service), registry
    )
    wake, stopping, reloading = threading.Event(), threading.Event(), threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        (reloading if signum == signal.SIGHUP else stopping).set()
        wake.set()

    def on_message(message: Message) -> None:
        log.warning("unexpected message from the main process", op=message.get("op"))

    def main_gone() -> None:
        channel.listen(on_message, on_ask=lambda what: None)
        stopping.set()  # EOF: the main process is gone or done
        wake.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    threading.Thread(target=main_gone, name="syncd-channel", daemon=True).start()
    channel.post({"op": "ready", "pid": os.getpid()})
    try:
        while not stopping.is_set() and thread.is_alive():
            wake.wait(COUNTS_EVERY)
            wake.clear()
            backend.send_counts()
            if reloading.is_set():
                reloading.clear()
                backend.settings = _reloaded(config_path, backend.settings)
    finally:
        server.should_exit = True
        thread.join(3)
        backend.send_counts()
        inbox.close()  # what is waiting is stored before the process ends
        channel.close()
        ledger.close()


def _reloaded(config_path: Path, running: Settings) -> Settings:
    try:
        return load_config(config_path)
    except ConfigError as error:  # the main process logs the refusal as an error
        log.warning("the HTTP process keeps its running config", error=str(error))
        return running


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m syncd.service.front")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--channel-fd", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--log-format", default="auto")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the main process too
    fmt: LogFormat = args.log_format
    configure_logging(fmt, args.log_level)
    listening = socket.socket(fileno=args.listen_fd)
    channel = Channel(socket.socket(fileno=args.channel_fd))
    try:
        serve(args.config, listening, channel)
    except Exception:
        log.exception("the HTTP process failed")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
