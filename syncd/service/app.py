"""The service's HTTP face: `POST /webhooks/<source>`, `/healthz` and `/metrics`.

A verified, relevant webhook is handed to the backend, which commits it to the
ledger's webhook inbox (grouped with whatever else arrived meanwhile); only then
is it answered 200. A delivery that cannot be stored is answered 503 so that the
sender retries; a redelivery of a stored one (same delivery id) is answered 200
and stored once. Nothing blocks the event loop: the handler awaits the commit.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.config import Settings
from syncd.logs import get_logger
from syncd.service import verify
from syncd.service.inbox import STORED, InboxUnavailable
from syncd.service.metrics import CONTENT_TYPE_LATEST

MAX_BODY = 1 << 20  # 1 MiB: far above any real webhook, small enough to refuse floods cheaply
STORE_RETRY_AFTER = 5  # seconds, in a 503's Retry-After

log = get_logger("syncd.service.webhooks")


class Backend(Protocol):
    """What the app needs from the running service."""

    def webhook_secret(self, source: str) -> tuple[str, str] | None:
        """(kind, secret) when `source` accepts webhooks, else None."""

    async def accept(self, source: str, event: str, delivery_id: str, body: bytes) -> str:
        """Store a verified, relevant delivery; returns what became of it (for the log).

        Raises `InboxUnavailable` when it cannot be stored.
        """

    def now_timestamp(self) -> float: ...

    def health(self) -> dict[str, Any]: ...

    def metrics(self) -> bytes: ...

    def count_webhook(self, source: str, outcome: str) -> None: ...


def create_app(backend: Backend) -> Starlette:
    replays = verify.ReplayGuard()

    async def webhook(request: Request) -> Response:
        name = request.path_params["source"]
        target = backend.webhook_secret(name)
        if target is None:
            return _error(404, f"no source {name!r} accepts webhooks (is its secret set?)")
        body = await _bounded_body(request)
        if body is None:
            backend.count_webhook(name, "rejected")
            return _error(413, f"body larger than {MAX_BODY} bytes")
        kind, secret = target
        try:
            verdict = _verify(kind, secret, request, body, backend.now_timestamp(), replays)
        except verify.Rejected as rejected:
            backend.count_webhook(name, "rejected")
            log.warning("webhook rejected", source=name, reason=str(rejected))
            return _error(401, str(rejected))
        if not verdict.relevant:
            backend.count_webhook(name, "ignored")
            log.info("webhook", source=name, webhook_event=verdict.event, handling="ignored")
            return JSONResponse(verdict.reply or {"ok": True})
        try:
            handling = await backend.accept(name, verdict.event, verdict.delivery_id, body)
        except InboxUnavailable as unavailable:
            backend.count_webhook(name, "unavailable")
            log.warning("webhook not stored; answered 503", source=name,
                        delivery=verdict.delivery_id, reason=str(unavailable))  # fmt: skip
            return _error(503, f"cannot store the delivery now: {unavailable}",
                          retry_after=STORE_RETRY_AFTER)  # fmt: skip
        backend.count_webhook(name, "accepted" if handling == STORED else handling)
        log.info("webhook", source=name, webhook_event=verdict.event,
                 delivery=verdict.delivery_id, handling=handling)  # fmt: skip
        return JSONResponse({"ok": True})

    # Off the event loop: in `syncd run` the answer comes from the main process.
    async def healthz(_request: Request) -> Response:
        return JSONResponse(await asyncio.to_thread(backend.health))

    async def metrics(_request: Request) -> Response:
        return Response(await asyncio.to_thread(backend.metrics), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/webhooks/{source}", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


def secret_of(settings: Settings, source: str) -> tuple[str, str] | None:
    """(kind, secret) when `source` accepts webhooks (its secret is set), else None."""
    source_settings: Any = settings.sources.get(source)
    secret = getattr(source_settings, "webhook_secret", None) or getattr(
        source_settings, "signing_secret", None
    )
    if source_settings is None or secret is None:
        return None
    return source_settings.kind, secret.get_secret_value()


def _verify(
    kind: str,
    secret: str,
    request: Request,
    body: bytes,
    now: float,
    replays: verify.ReplayGuard,
) -> verify.Verdict:
    headers = request.headers
    if kind == "github":
        return verify.github(secret, headers, body)
    if kind == "jira":
        return verify.jira(secret, headers, body)
    if kind == "slack":
        return verify.slack(secret, headers, body, now, replays)
    raise verify.Rejected(f"source kind {kind!r} has no webhooks")


async def _bounded_body(request: Request) -> bytes | None:
    """The body, or None once it passes MAX_BODY (without reading the rest)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, *, retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)
