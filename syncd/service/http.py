"""The HTTP server's defences against slow and abusive clients.

uvicorn (h11) bounds only the idle time between requests (`timeout_keep_alive`) and
the size of an incomplete request head (16 KiB in h11). A client that never finishes
its headers, or sends its body a byte at a time, holds its connection for ever (no
timer runs while a request is being read), and `limit_concurrency` counts
every open connection: slow clients at the limit would turn `/healthz` into 503s.
So the protocol here adds:

- a deadline for the request head (`header_timeout`, from the connection or from the
  request's first byte after a keep-alive pause) and one for the whole body
  (`body_timeout`, from the end of the head; answered 408 unless a reply started);
- a cap on open connections that evicts rather than refuses: at the cap, the
  connection that has waited longest on its client (for a head or a body, or idle
  between requests) is closed to make room. A request that arrives whole, as a health
  check's does, is never waiting on its client, so slow clients cannot crowd it out.
  Only when every connection is busy in the app is a new one refused (503, closed);
- a lingering close after a reply sent before the request body ended (a 413, a 404):
  the connection stops taking requests, discards briefly what is already in flight so
  the client can read the reply instead of a reset, then closes.

`guard` wraps the ASGI app: a declared Content-Length over the limit is answered 413
before the app runs, and a client gone mid-body is not logged as an app error.
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import h11
import uvicorn
from prometheus_client import CollectorRegistry, Counter
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from syncd.config import ServiceSettings
from syncd.logs import get_logger
from syncd.service.app import MAX_BODY

log = get_logger("syncd.service.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Phase = Literal["head", "body", "idle", "busy", "closing"]
CUT_REASONS = ("head_timeout", "body_timeout", "evicted", "refused")

# After an early reply: how long, and how much, to keep discarding the client's body.
LINGER_SECONDS = 1.0
LINGER_BYTES = 256 * 1024

REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n"
    b"retry-after: 1\r\n\r\n"
)


@dataclass(frozen=True)
class HttpLimits:
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive: float = 5.0
    max_connections: int = 512
    max_body: int = MAX_BODY


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with read deadlines, an evicting connection cap and a
    lingering close; `protocol_for` binds the limits."""

    limits: ClassVar[HttpLimits] = HttpLimits()
    cuts: ClassVar[Counter | None] = None
    # The connections waiting on their client, longest-waiting first (eviction order).
    waiting: ClassVar[dict[GuardedH11Protocol, None]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.phase: Phase = "head"
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False
        self._discarded = 0

    # --- admission -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if not self._make_room():
            self._refused = True
            transport.write(REFUSED)
            transport.close()
            self._cut("refused")
            return
        super().connection_made(transport)
        self._enter("head")

    def _make_room(self) -> bool:
        if len(self.connections) < self.limits.max_connections:
            return True
        longest = next(iter(self.waiting), None)
        if longest is None:
            return False
        longest.evict()
        return True

    def evict(self) -> None:
        self.connections.discard(self)  # counted out now; connection_lost comes later
        self._cut("evicted")
        self._close()

    def _cut(self, reason: str) -> None:
        log.debug("connection cut", reason=reason, client=self.client, phase=self.phase)
        if self.cuts is not None:
            self.cuts.labels(reason).inc()

    # --- phases and deadlines --------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.phase == "closing":
            self._discard(data)
            return
        super().data_received(data)
        self._follow_request()

    def _follow_request(self) -> None:
        """Arm the deadline that fits where the client's request stands."""
        if self.transport.is_closing():
            self._enter("closing")
        elif self.conn.their_state is h11.IDLE:
            # A first byte after a keep-alive pause starts a new head (uvicorn stopped
            # its keep-alive timer); a head still arriving keeps its deadline.
            if self.phase != "head":
                self._enter("head")
        elif self.conn.their_state is h11.SEND_BODY:
            self._enter("body")
        else:
            self._enter("busy")

    def _enter(self, phase: Phase) -> None:
        if phase == self.phase and self._deadline is not None:
            return  # the deadline already running stays
        self.phase = phase
        self._cancel_deadline()
        if phase == "busy":
            self.waiting.pop(self, None)
        elif self not in self.waiting:
            self.waiting[self] = None
        if phase == "head":
            self._deadline = self.loop.call_later(self.limits.header_timeout, self._head_late)
        elif phase == "body":
            self._deadline = self.loop.call_later(self.limits.body_timeout, self._body_late)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _wait_anew(self) -> None:
        """Start waiting on the client now: last in eviction order."""
        self.waiting.pop(self, None)
        self.waiting[self] = None

    def _head_late(self) -> None:
        self._deadline = None
        self._cut("head_timeout")
        self._close()

    def _body_late(self) -> None:
        self._deadline = None
        self._cut("body_timeout")
        if self.cycle is not None and not self.cycle.response_started:
            self._reply(408, b"request body not received in time\n")
        self._close()

    def _reply(self, status: int, text: bytes) -> None:
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(text)).encode()),
            (b"connection", b"close"),
        ]
        try:
            for event in (
                h11.Response(status_code=status, headers=headers),
                h11.Data(data=text),
                h11.EndOfMessage(),
            ):
                self.transport.write(self.conn.send(event) or b"")
        except h11.LocalProtocolError:
            pass  # the connection is past the point of a reply; closing says enough

    def _close(self) -> None:
        self._cancel_deadline()
        self.phase = "closing"
        self.waiting.pop(self, None)
        if self.cycle is not None:
            # The app's receive() ends with a disconnect and its sends go nowhere.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()

    def shutdown(self) -> None:
        """Stopping: a request the app is working on is finished; a client still
        sending one (or idle) is closed now rather than awaited."""
        if self.phase == "busy":
            super().shutdown()
        else:
            self._close()

    # --- after the reply -------------------------------------------------------------

    def on_response_complete(self) -> None:
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            self.server_state.total_requests += 1
            self._linger()
            return
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            # uvicorn's keep-alive timer bounds the pause before the next request.
            self._cancel_deadline()
            self.phase = "idle"
            self._wait_anew()
        else:
            self._follow_request()  # a pipelined request, or the connection closing

    def _linger(self) -> None:
        """Replied before the body ended: take no further request, let the reply be
        read, close soon."""
        self._cancel_deadline()
        self.phase = "closing"
        self._wait_anew()
        self.flow.resume_reading()
        self._deadline = self.loop.call_later(LINGER_SECONDS, self._close)
        if self.transport.get_write_buffer_size() == 0:  # else the timer alone ends it
            try:
                self.transport.write_eof()  # the client reads the end of the reply now
            except OSError:  # the client is gone already
                self._close()

    def _discard(self, data: bytes) -> None:
        self._discarded += len(data)
        if self._discarded > LINGER_BYTES:
            self._close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self.phase = "closing"
        self.waiting.pop(self, None)
        if self._refused:
            return
        super().connection_lost(exc)


def protocol_for(
    limits: HttpLimits, registry: CollectorRegistry | None = None
) -> type[GuardedH11Protocol]:
    """The protocol class uvicorn is given (`http=`) for one server: bound to these
    limits, counting its cuts in `registry`."""

    class Configured(GuardedH11Protocol):
        pass

    Configured.limits = limits
    Configured.waiting = {}
    if registry is not None:
        Configured.cuts = Counter(
            "syncd_http_connections_cut",
            "Connections the HTTP server closed on a slow or abusive client, by reason "
            "(head_timeout, body_timeout, evicted, refused).",
            ["reason"],
            registry=registry,
        )
        for reason in CUT_REASONS:
            Configured.cuts.labels(reason)
    return Configured


def guard(app: ASGIApp, limits: HttpLimits) -> ASGIApp:
    """`app` behind a request-size check made before any body is read."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _declared_length(scope) > limits.max_body:
            await _too_large(send, limits.max_body)
            return
        try:
            await app(scope, receive, send)
        except ClientDisconnect:
            log.debug("client gone before its request body ended", path=scope.get("path"))

    return guarded


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


async def _too_large(send: Send, limit: int) -> None:
    body = b'{"error":"body larger than %d bytes"}' % limit  # as the app words it
    await send({
        "type": "http.response.start",
        "status": 413,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class ServiceError(Exception):
    """The service cannot start (for example, the listen address is taken)."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the process's main thread owns the signals."""

    def install_signal_handlers(self) -> None:
        return None


def http_limits(settings: ServiceSettings) -> HttpLimits:
    return HttpLimits(
        header_timeout=settings.http_header_timeout.total_seconds(),
        body_timeout=settings.http_body_timeout.total_seconds(),
        keep_alive=settings.http_keep_alive.total_seconds(),
        max_connections=settings.http_max_connections,
        max_body=MAX_BODY,
    )


def serve_in_thread(
    app: ASGIApp, sock: socket.socket, limits: HttpLimits, registry: CollectorRegistry | None
) -> tuple[uvicorn.Server, threading.Thread]:
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
