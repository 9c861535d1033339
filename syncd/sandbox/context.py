"""What every simulator app shares: the world, faults, logs and its own base URL."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from syncd.sandbox.faults import FaultAnswer, Faults, ServiceMiddleware
from syncd.sandbox.recording import RequestLog, Writes
from syncd.sandbox.world import World


@dataclass
class Context:
    world: World
    faults: Faults = field(default_factory=Faults)
    log: RequestLog = field(default_factory=RequestLog)
    writes: Writes = field(default_factory=Writes)
    base_urls: dict[str, str] = field(default_factory=dict)  # filled once the ports are bound
    sims: dict[str, Any] = field(default_factory=dict)  # service -> simulator object


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None,
                  media_type: str = "application/json; charset=utf-8") -> Response:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Response(body, status_code=status, headers=headers, media_type=media_type)


async def read_body(request: Request) -> dict[str, Any]:
    """A JSON object body, or form fields (Slack accepts both); empty when absent."""
    raw = await request.body()
    if not raw:
        return {}
    content_type = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in content_type:
        # The standard library parser: Slack clients send forms, no extra dependency needed.
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {"_": data}


def build_app(service: str, routes: list[Route], ctx: Context, answer: FaultAnswer) -> ASGIApp:
    """A Starlette app behind the middleware that logs requests and injects faults."""
    return ServiceMiddleware(Starlette(routes=routes), service, routes, ctx.faults, ctx.log,
                             answer)
