"""The line between `syncd run`'s two processes: JSON messages, one a line, over a Unix socket.

The HTTP process (`syncd.service.front`) tells the main process what it stored and
counted, and asks it for `/healthz` and `/metrics`; the main process answers.
`post` never blocks its caller (a writer thread sends), so the HTTP event loop
cannot stall on a busy main process; `ask` blocks the calling thread until the
answer, or raises `TimeoutError`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

Message = dict[str, Any]


class Channel:
    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._reader = sock.makefile("rb")
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._asked: dict[int, Future[Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        threading.Thread(target=self._send_all, name="syncd-channel-send", daemon=True).start()

    def post(self, message: Message) -> None:
        """Send a message (any thread, without waiting)."""
        self._outbox.put(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    def ask(self, what: str, timeout: float) -> Any:
        """The other end's answer to `what` (its `on_ask`); needs `listen` running here."""
        asked: Future[Any] = Future()
        with self._lock:
            ident = next(self._ids)
            self._asked[ident] = asked
        self.post({"op": "ask", "id": ident, "what": what})
        try:
            return asked.result(timeout)
        finally:
            with self._lock:
                self._asked.pop(ident, None)

    def listen(self, on_message: Callable[[Message], None], on_ask: Callable[[str], Any]) -> None:
        """Handle what arrives until the other end is gone (EOF); answers questions."""
        for message in self._messages():
            op = message.get("op")
            if op == "ask":
                self.post({"op": "answer", "id": message["id"], "value": on_ask(message["what"])})
            elif op == "answer":
                with self._lock:
                    asked = self._asked.get(message["id"])
                if asked is not None and asked.set_running_or_notify_cancel():
                    asked.set_result(message["value"])
            else:
                on_message(message)

    def close(self) -> None:
        self._outbox.put(None)
        with contextlib.suppress(OSError):  # the other end is gone already
            self._sock.shutdown(socket.SHUT_RDWR)

    def _messages(self) -> Iterator[Message]:
        try:
            for line in self._reader:
                yield json.loads(line)
        except (OSError, ValueError):
            return  # closed under us, or cut mid-line by a dying peer: the end either way

    def _send_all(self) -> None:
        while (data := self._outbox.get()) is not None:
            try:
                self._sock.sendall(data)
            except OSError:
                return  # the other end is gone; `listen` sees the EOF


__all__ = ["Channel", "Message"]
