"""`syncd run`: the poll loop on the main thread, the HTTP side in a child process, signals.

The main process binds the listening socket and hands it to a child process
(`syncd.service.front`) that verifies, stores and answers webhooks, so that the
acknowledgements never queue for the interpreter lock behind ingest, polls and
rules. The child reports what it stored over a `Channel` (the ingest worker here
looks at once) and asks this process for `/healthz` and `/metrics`.

SIGTERM and SIGINT stop the loop after the page in hand is committed, then the
child; a watchdog ends the process if that takes longer than the promised 10
seconds (every page commits atomically, so an exit at any point loses nothing;
the child dies with this process). SIGHUP reloads the config, in both processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from syncd.clock import SystemClock
from syncd.config import Settings
from syncd.failures import explain
from syncd.ledger.db import LedgerError, NotALedger
from syncd.ledger.repository import Ledger
from syncd.logs import current_logging, get_logger
from syncd.rules.engine import CompiledRule
from syncd.service.app import create_app
from syncd.service.channel import Channel, Message
from syncd.service.http import HttpLimits, ServiceError, serve_in_thread
from syncd.service.ledger import open_ledger
from syncd.service.locks import SourceLocks, source_locks
from syncd.service.loop import Service

SHUTDOWN_DEADLINE = 9.0  # seconds; the contract says "within 10"
FRONT_START = 30.0  # seconds the HTTP process may take to start serving
FRONT_STOP = 5.0  # seconds it may take to stop (uvicorn's 2 s grace, then the inbox)

log = get_logger("syncd.service")


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ServiceError(f"service.listen must be HOST:PORT, not {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def bind(listen: str) -> socket.socket:
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets that
    # say they are TCP, and accepted connections inherit `proto` from this one. With
    # proto 0, every response waited ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ServiceError(
            f"cannot listen on {listen} (service.listen): {error.strerror}"
        ) from None
    return sock


def start_http(
    service: Service, sock: socket.socket, limits: HttpLimits | None = None
) -> tuple[uvicorn.Server, threading.Thread]:
    """The app in this process, on a thread (tests; `syncd run` uses `Front`)."""
    return serve_in_thread(
        create_app(service), sock, limits or HttpLimits(), service.metrics_state.registry
    )


class Front:
    """The HTTP process, seen from the main process."""

    def __init__(self, service: Service, process: subprocess.Popen[bytes], channel: Channel):
        self.service, self.process, self.channel = service, process, channel
        self.ready = threading.Event()
        self.stopping = False
        self.lost = False  # the child ended without being asked to
        self._listener = threading.Thread(target=self._listen, name="syncd-front", daemon=True)
        self._listener.start()

    @classmethod
    def start(cls, service: Service, sock: socket.socket, config_path: Path) -> Front:
        """Start the child on `sock` (this process's copy is closed once it serves)."""
        mine, theirs = socket.socketpair()
        fmt, level = current_logging()
        command = [
            sys.executable, "-m", "syncd.service.front", "--config", str(config_path),
            "--listen-fd", str(sock.fileno()), "--channel-fd", str(theirs.fileno()),
            "--parent", str(os.getpid()), "--log-format", fmt, "--log-level", level,
        ]  # fmt: skip
        process = subprocess.Popen(command, pass_fds=(sock.fileno(), theirs.fileno()))
        theirs.close()
        front = cls(service, process, Channel(mine))
        if not front.ready.wait(FRONT_START) or front.lost:
            front.stop()
            raise ServiceError("the HTTP process did not start")
        sock.close()  # the child serves it; a stopped child must leave the port free
        return front

    def _listen(self) -> None:
        self.channel.listen(self._on_message, self._on_ask)
        # Not lost when stopping: a SIGTERM to the whole group (systemd) reaches the child too.
        self.lost = not (self.stopping or self.service.stopping.is_set())
        self.ready.set()  # a start still waiting sees `lost`
        if self.lost:
            log.error("the HTTP process exited; stopping", returncode=self.process.wait())
            self.service.request_stop()

    def _on_message(self, message: Message) -> None:
        op = message["op"]
        if op == "stored":
            self.service.ingest.notify()
        elif op == "counts":
            for source, outcome, count in message["counts"]:
                self.service.metrics_state.webhooks.labels(source, outcome).inc(count)
        elif op == "ready":
            self.ready.set()

    def _on_ask(self, what: str) -> Any:
        if what == "health":
            return self.service.health()
        if what == "metrics":
            return self.service.metrics().decode()
        return None

    def reload(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """SIGTERM; a child that takes longer than FRONT_STOP is killed."""
        self.stopping = True
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(FRONT_STOP)
        except subprocess.TimeoutExpired:
            log.warning("the HTTP process did not stop in time; killed")
            self.process.kill()
            self.process.wait()
        self.channel.close()


def _watchdog() -> None:
    # Runs once a stop was requested; the loop normally exits long before.
    def expire() -> None:
        log.error("shutdown took too long; exiting now (committed pages are kept)")
        os._exit(1)

    timer = threading.Timer(SHUTDOWN_DEADLINE, expire)
    timer.daemon = True
    timer.start()


def install_signals(service: Service, front: Front | None = None) -> None:
    def stop(signum: int, _frame: FrameType | None) -> None:
        if not service.stopping.is_set():
            log.info("shutdown requested", signal=signal.Signals(signum).name)
            service.request_stop()

    def reload(_signum: int, _frame: FrameType | None) -> None:
        log.info("reload requested", signal="SIGHUP")
        service.request_reload()
        if front is not None:
            front.reload()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, reload)


def run_service(config_path: Path, settings: Settings, rules: list[CompiledRule]) -> None:
    """Serve until SIGTERM or SIGINT."""
    try:
        ledger = open_ledger(settings.ledger.url)
    except NotALedger:
        raise  # a usage error (exit 2), reported by the command line
    except (LedgerError, SQLAlchemyError) as error:
        raise ServiceError(explain(error).message) from None
    try:
        _serve(config_path, settings, rules, ledger, source_locks(ledger))
    finally:
        ledger.close()


def _serve(
    config_path: Path,
    settings: Settings,
    rules: list[CompiledRule],
    ledger: Ledger,
    locks: SourceLocks,
) -> None:
    service = Service(settings, rules, ledger, SystemClock(), config_path=config_path, locks=locks)
    service.on_stop = _watchdog
    sock = bind(settings.service.listen)
    host, port = sock.getsockname()[:2]
    try:
        front = Front.start(service, sock, config_path)
    finally:
        sock.close()
    install_signals(service, front)
    log.info(
        "service started",
        url=f"http://{host}:{port}",
        pid=os.getpid(),
        http_pid=front.process.pid,
        sources=list(settings.sources),
    )
    try:
        service.run()
    finally:
        front.stop()
        log.info("service stopped")
    if front.lost:
        raise ServiceError("the HTTP process exited unexpectedly")


__all__ = ["Front", "ServiceError", "bind", "parse_listen", "run_service", "serve_in_thread",
           "start_http"]  # fmt: skip
