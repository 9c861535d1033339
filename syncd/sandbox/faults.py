"""Switchable faults and the ASGI middleware that applies them and logs requests.

A fault is chosen per service and per route (a glob on the request path, optionally a
method) and can be limited to the next N matching requests.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncd.sandbox.recording import LoggedRequest, RequestLog

KINDS = ("rate_limit", "error", "delay", "malformed_json", "truncated_page", "short_page",
         "repeat_page")


@dataclass(slots=True)
class Fault:
    service: str
    kind: str
    route: str = "*"
    method: str | None = None
    remaining: int | None = None  # None: until cleared
    status: int = 500
    retry_after: int = 1
    seconds: float = 0.0

    def matches(self, service: str, method: str, path: str) -> bool:
        if self.service != service or (self.method and self.method.upper() != method):
            return False
        return fnmatch.fnmatchcase(path, self.route)


class Faults:
    """The fault switchboard shared by the three simulators."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, service: str, kind: str, route: str = "*", *, times: int | None = None,
            method: str | None = None, status: int = 500, retry_after: int = 1,
            seconds: float = 0.0) -> Fault:
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; expected one of {KINDS}")
        fault = Fault(service, kind, route, method, times, status, retry_after, seconds)
        with self._lock:
            self._faults.append(fault)
        return fault

    def rate_limit(self, service: str, route: str = "*", *, retry_after: int = 1,
                   times: int | None = None) -> Fault:
        """HTTP 429 with ``Retry-After`` (GitHub's secondary limit, Jira's and Slack's 429)."""
        return self.add(service, "rate_limit", route, times=times, retry_after=retry_after)

    def error(self, service: str, status: int = 500, route: str = "*", *,
              times: int | None = None) -> Fault:
        """A 5xx answer (500, 502, 503)."""
        return self.add(service, "error", route, times=times, status=status)

    def delay(self, service: str, seconds: float, route: str = "*", *,
              times: int | None = None) -> Fault:
        """Answer only after ``seconds``: longer than a client's timeout makes it time out."""
        return self.add(service, "delay", route, times=times, seconds=seconds)

    def malformed_json(self, service: str, route: str = "*", *, times: int | None = None) -> Fault:
        return self.add(service, "malformed_json", route, times=times)

    def truncated_page(self, service: str, route: str = "*", *, times: int | None = None) -> Fault:
        """The body stops half-way although ``Content-Length`` announced all of it."""
        return self.add(service, "truncated_page", route, times=times)

    def short_page(self, service: str, route: str = "*", *, times: int | None = None) -> Fault:
        """A valid page with half its items while the pagination still says 'more'."""
        return self.add(service, "short_page", route, times=times)

    def repeat_page(self, service: str, route: str = "*", *, times: int | None = None) -> Fault:
        """The body of the previous answer on this path again (cursor included)."""
        return self.add(service, "repeat_page", route, times=times)

    def clear(self, service: str | None = None) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if service and f.service != service]

    def active(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, service: str, method: str, path: str) -> Fault | None:
        """The first fault matching this request, consuming one of its uses."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(service, method, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                        if fault.remaining <= 0:
                            self._faults.remove(fault)
                    return fault
        return None


# A service's answer to an injected fault: (status, headers, body).
FaultAnswer = Callable[[Fault], tuple[int, dict[str, str], bytes]]


class ServiceMiddleware:
    """Logs each request under its route template and applies the service's faults."""

    def __init__(self, app: ASGIApp, service: str, routes: list[Route], faults: Faults,
                 log: RequestLog, answer: FaultAnswer) -> None:
        self.app, self.service, self.routes = app, service, routes
        self.faults, self.log, self.answer = faults, log, answer
        self._previous: dict[tuple[str, str], tuple[Message, bytes]] = {}

    def _route_name(self, scope: Scope) -> str:
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return f"{scope['method']} {_plain(route.path)}"
        return f"{scope['method']} {scope['path']}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        logged = [False]

        def record(status: int) -> None:
            # Logged before the answer leaves, so a client never outruns the log.
            if not logged[0]:
                logged[0] = True
                query = scope.get("query_string", b"").decode("latin-1")
                self.log.record(LoggedRequest(self.service, method, self._route_name(scope),
                                              path, query, status))

        async def logging_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                record(message["status"])
            await send(message)

        try:
            fault = self.faults.take(self.service, method, path)
            await self._serve(scope, receive, logging_send, fault)
        finally:
            record(500)

    async def _serve(self, scope: Scope, receive: Receive, send: Send,
                     fault: Fault | None) -> None:
        if fault is not None and fault.kind in ("rate_limit", "error"):
            status, headers, body = self.answer(fault)
            await _send_whole(send, status, headers, body)
            return
        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        start, body = await self._capture(scope, receive)
        key = (scope["method"], scope["path"])
        if fault is not None and fault.kind == "repeat_page" and key in self._previous:
            body = self._previous[key][1]
        elif start["status"] < 300:
            self._previous[key] = (start, body)
        await self._emit(send, start, body, fault.kind if fault else None)

    async def _capture(self, scope: Scope, receive: Receive) -> tuple[Message, bytes]:
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        return start, b"".join(chunks)

    async def _emit(self, send: Send, start: Message, body: bytes, kind: str | None) -> None:
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        declared = len(body)
        if kind == "malformed_json":
            body = body[: max(1, len(body) // 2)] + b"<html>oops"
            declared = len(body)
        elif kind == "short_page":
            body = _halve_items(body)
            declared = len(body)
        elif kind == "truncated_page":
            body = body[: len(body) // 2]  # declared length stays the full one
        headers.append((b"content-length", str(declared).encode()))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


async def _send_whole(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


_ITEM_KEYS = ("issues", "messages", "members", "comments", "values", "worklogs")


def _halve_items(body: bytes) -> bytes:
    """Drop the second half of a page's items, keeping its pagination metadata."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        return body
    if isinstance(data, list):
        data = data[: len(data) // 2]
    elif isinstance(data, dict):
        for key in _ITEM_KEYS:
            if isinstance(data.get(key), list):
                data[key] = data[key][: len(data[key]) // 2]
                break
    return json.dumps(data).encode()


def _plain(path: str) -> str:
    """``/issues/{number:int}`` -> ``/issues/{number}``: route names as people write them."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)
