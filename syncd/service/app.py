"""The service's HTTP face: `POST /webhooks/<source>`, `/healthz` and `/metrics`.

The app never touches the ledger: a verified, relevant webhook is handed to the
backend (which queues it for direct ingest or marks its source due for a poll)
and answered at once.
"""

from __future__ import annotations

from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from syncd.logs import get_logger
from syncd.service import verify
from syncd.service.metrics import CONTENT_TYPE_LATEST

MAX_BODY = 1 << 20  # 1 MiB: far above any real webhook, small enough to refuse floods cheaply

log = get_logger("syncd.service.webhooks")


class Backend(Protocol):
    """What the app needs from the running service."""

    def webhook_secret(self, source: str) -> tuple[str, str] | None:
        """(kind, secret) when `source` accepts webhooks, else None."""

    def accept(self, source: str, event: str, body: bytes) -> str:
        """Take a verified, relevant delivery; returns what became of it (for the log)."""

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
        handling = backend.accept(name, verdict.event, body) if verdict.relevant else "ignored"
        backend.count_webhook(name, "accepted" if verdict.relevant else "ignored")
        log.info("webhook", source=name, webhook_event=verdict.event, handling=handling)
        return JSONResponse(verdict.reply or {"ok": True})

    async def healthz(_request: Request) -> Response:
        return JSONResponse(backend.health())

    async def metrics(_request: Request) -> Response:
        return Response(backend.metrics(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/webhooks/{source}", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
        ]
    )


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


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)
