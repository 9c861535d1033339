"""`syncd run`: the poll loop on the main thread, uvicorn on a background thread, signals.

SIGTERM and SIGINT stop the loop after the page in hand is committed; a watchdog
ends the process if that takes longer than the promised 10 seconds (every page
commits atomically, so an exit at any point loses nothing). SIGHUP reloads the
config.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import threading
import time
from pathlib import Path
from types import FrameType

import uvicorn
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import SQLAlchemyError

from syncd.clock import SystemClock
from syncd.config import ServiceSettings, Settings
from syncd.failures import explain
from syncd.ledger.db import LedgerError, NotALedger
from syncd.ledger.repository import Ledger
from syncd.logs import get_logger
from syncd.rules.engine import CompiledRule
from syncd.service.app import MAX_BODY, create_app
from syncd.service.http import ASGIApp, HttpLimits, guard, protocol_for
from syncd.service.ledger import open_ledger
from syncd.service.locks import SourceLocks, source_locks
from syncd.service.loop import Service

SHUTDOWN_DEADLINE = 9.0  # seconds; the contract says "within 10"

log = get_logger("syncd.service")


class ServiceError(Exception):
    """The service cannot start (for example, the listen address is taken)."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the main thread owns the signals."""

    def install_signal_handlers(self) -> None:
        return None


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


def http_limits(settings: ServiceSettings) -> HttpLimits:
    return HttpLimits(
        header_timeout=settings.http_header_timeout.total_seconds(),
        body_timeout=settings.http_body_timeout.total_seconds(),
        keep_alive=settings.http_keep_alive.total_seconds(),
        max_connections=settings.http_max_connections,
        max_body=MAX_BODY,
    )


def start_http(
    service: Service, sock: socket.socket, limits: HttpLimits | None = None
) -> tuple[_Server, threading.Thread]:
    return serve_in_thread(
        create_app(service), sock, limits or HttpLimits(), service.metrics_state.registry
    )


def serve_in_thread(
    app: ASGIApp, sock: socket.socket, limits: HttpLimits, registry: CollectorRegistry | None
) -> tuple[_Server, threading.Thread]:
    """uvicorn serving `app` on `sock` from a daemon thread, behind the HTTP limits."""
    # No `limit_concurrency`: uvicorn counts every open connection against it, so slow
    # clients would turn health checks into 503s; the protocol caps connections instead.
    config = uvicorn.Config(
        guard(app, limits), http=protocol_for(limits, registry), ws="none", log_config=None,
        access_log=False, lifespan="off", timeout_graceful_shutdown=2,
        timeout_keep_alive=math.ceil(limits.keep_alive),
    )  # fmt: skip
    server = _Server(config)
    thread = threading.Thread(
        target=lambda: asyncio.run(server.serve(sockets=[sock])), name="syncd-http", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise ServiceError("the HTTP server did not start")
        time.sleep(0.01)
    return server, thread


def _watchdog() -> None:
    # Runs once a stop was requested; the loop normally exits long before.
    def expire() -> None:
        log.error("shutdown took too long; exiting now (committed pages are kept)")
        os._exit(1)

    timer = threading.Timer(SHUTDOWN_DEADLINE, expire)
    timer.daemon = True
    timer.start()


def install_signals(service: Service) -> None:
    def stop(signum: int, _frame: FrameType | None) -> None:
        if not service.stopping.is_set():
            log.info("shutdown requested", signal=signal.Signals(signum).name)
            service.request_stop()

    def reload(_signum: int, _frame: FrameType | None) -> None:
        log.info("reload requested", signal="SIGHUP")
        service.request_reload()

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
    server, thread = start_http(service, sock, http_limits(settings.service))
    install_signals(service)
    log.info(
        "service started",
        url=f"http://{host}:{port}",
        pid=os.getpid(),
        sources=list(settings.sources),
    )
    try:
        service.run()
    finally:
        server.should_exit = True
        thread.join(timeout=3)
        log.info("service stopped")
