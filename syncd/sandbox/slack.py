"""Slack Web API simulator: ``/api/<method>``, form or JSON bodies, ``ok: false`` errors."""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from syncd.sandbox.context import Context, build_app, json_response, read_body
from syncd.sandbox.faults import Fault
from syncd.sandbox.world import Json, SlackChannel, SlackMessage, SlackUser, World

# Per-minute request budgets of Slack's rate-limit tiers; "special" methods get their own.
TIER_LIMITS = {1: 1, 2: 20, 3: 50, 4: 100}
METHOD_TIERS = {"auth.test": 4, "conversations.history": 3, "conversations.replies": 3,
                "users.list": 2, "users.info": 4, "reactions.get": 3, "chat.getPermalink": 4,
                "chat.postMessage": 4, "chat.update": 3, "conversations.open": 3}
SCOPES = "channels:history,channels:read,chat:write,reactions:read,users:read,users:read.email"


class SlackError(Exception):
    def __init__(self, error: str, status: int = 200) -> None:
        super().__init__(error)
        self.error, self.status = error, status


class Tiers:
    """Sliding one-minute windows per method, used when tier limits are switched on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[str, deque[float]] = {}

    def retry_after(self, method: str, limit: int) -> int:
        """0 when the call may go ahead (and is counted), else seconds to wait."""
        now = time.monotonic()
        with self._lock:
            calls = self._calls.setdefault(method, deque())
            while calls and calls[0] <= now - 60:
                calls.popleft()
            if len(calls) >= limit:
                return max(1, int(calls[0] + 60 - now) + 1)
            calls.append(now)
            return 0


class SlackRenderer:
    def __init__(self, world: World) -> None:
        self.world = world

    def message(self, message: SlackMessage, metadata: bool = False) -> Json:
        data: Json = {"type": "message", "text": message.text, "ts": message.ts}
        if message.user:
            data["user"] = message.user
        if message.bot_id:
            data["bot_id"] = message.bot_id
            data["app_id"] = "A0SANDBOX"
        if message.subtype:
            data["subtype"] = message.subtype
        data["team"] = self.world.slack_team["id"]
        if message.edited:
            data["edited"] = dict(message.edited)
        if message.thread_ts:
            data["thread_ts"] = message.thread_ts
            if message.is_reply:
                parent = self.world.channels[message.channel].messages.get(message.thread_ts)
                data["parent_user_id"] = parent.user if parent else None
            else:
                data.update(self._thread_summary(message))
        if message.reactions:
            data["reactions"] = [{"name": name, "users": list(users), "count": len(users)}
                                 for name, users in message.reactions.items() if users]
        if metadata and message.metadata:
            data["metadata"] = {"event_type": message.metadata.get("event_type", ""),
                                "event_payload": message.metadata.get("event_payload", {})}
        return data

    def _thread_summary(self, message: SlackMessage) -> Json:
        channel = self.world.channels[message.channel]
        users = []
        for ts in message.reply_ts:
            user = channel.messages[ts].user
            if user and user not in users:
                users.append(user)
        return {"reply_count": len(message.reply_ts), "reply_users_count": len(users),
                "latest_reply": message.reply_ts[-1] if message.reply_ts else message.ts,
                "reply_users": users, "is_locked": False, "subscribed": False}

    def user(self, user: SlackUser) -> Json:
        first, _, last = user.real_name.partition(" ")
        avatar = f"https://avatars.slack-edge.com/{user.id}"
        profile: Json = {
            "avatar_hash": user.id.lower()[:12], "status_text": "", "status_emoji": "",
            "real_name": user.real_name, "display_name": user.name,
            "real_name_normalized": user.real_name, "display_name_normalized": user.name,
            "first_name": first, "last_name": last, "title": "", "phone": "", "skype": "",
            "image_24": f"{avatar}_24.png", "image_32": f"{avatar}_32.png",
            "image_48": f"{avatar}_48.png", "image_72": f"{avatar}_72.png",
            "image_192": f"{avatar}_192.png", "image_512": f"{avatar}_512.png",
            "team": self.world.slack_team["id"],
        }
        if user.email:
            profile["email"] = user.email
        if user.is_bot:
            profile["bot_id"] = self.world.slack_bot["bot_id"]
        return {
            "id": user.id, "team_id": self.world.slack_team["id"], "name": user.name,
            "deleted": user.deleted, "color": "9f69e7", "real_name": user.real_name,
            "tz": user.tz, "tz_label": "Coordinated Universal Time", "tz_offset": 0,
            "profile": profile, "is_admin": False, "is_owner": False,
            "is_primary_owner": False, "is_restricted": False, "is_ultra_restricted": False,
            "is_bot": user.is_bot, "is_app_user": False, "updated": 1700000000,
            "has_2fa": False,
        }


def _cursor(kind: str, value: str) -> str:
    return base64.b64encode(f"{kind}:{value}".encode()).decode()


def _uncursor(cursor: str | None, kind: str) -> str | None:
    if not cursor:
        return None
    try:
        found, _, value = base64.b64decode(cursor).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as err:
        raise SlackError("invalid_cursor") from err
    if found != kind or not value:
        raise SlackError("invalid_cursor")
    return value


def _limit(params: Json, default: int, high: int = 999) -> int:
    try:
        value = int(params.get("limit") or default)
    except ValueError as err:
        raise SlackError("invalid_limit") from err
    return default if value <= 0 else min(value, high)


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes")


Method = Callable[["SlackSim", Json], Awaitable[Json]]


class SlackSim:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.world = ctx.world
        self.render = SlackRenderer(self.world)
        self.tiers = Tiers()

    def token(self, request: Request, params: Json) -> str | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value:
            return value
        token = params.get("token")
        return str(token) if token else None

    def wrap(self, name: str, method: Method) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            params: Json = dict(request.query_params)
            if request.method == "POST":
                params.update(await read_body(request))
            headers = {"X-Slack-Req-Id": uuid.uuid4().hex, "X-OAuth-Scopes": SCOPES,
                       "X-Accepted-OAuth-Scopes": "",
                       "Access-Control-Expose-Headers": "x-slack-req-id, retry-after"}
            token = self.token(request, params)
            if token is None:
                return json_response({"ok": False, "error": "not_authed"}, headers=headers)
            if token not in self.world.tokens["slack"]:
                return json_response({"ok": False, "error": "invalid_auth"}, headers=headers)
            wait = self._throttle(name)
            if wait:
                headers["Retry-After"] = str(wait)
                return json_response({"ok": False, "error": "ratelimited"}, 429, headers)
            try:
                with self.world.lock:
                    body = await method(self, params)
            except SlackError as err:
                return json_response({"ok": False, "error": err.error}, err.status, headers)
            return json_response({"ok": True, **body}, headers=headers)

        return endpoint

    def _throttle(self, name: str) -> int:
        if not self.world.settings.get("slack_enforce_tiers"):
            return 0
        limits = {**TIER_LIMITS, **{int(k): v for k, v in
                                     self.world.settings.get("slack_tier_limits", {}).items()}}
        return self.tiers.retry_after(name, limits[METHOD_TIERS.get(name, 3)])

    def answer_fault(self, fault: Fault) -> tuple[int, dict[str, str], bytes]:
        if fault.kind == "rate_limit":
            return 429, {"Content-Type": "application/json; charset=utf-8",
                         "Retry-After": str(fault.retry_after)}, \
                json.dumps({"ok": False, "error": "ratelimited"}).encode()
        return fault.status, {"Content-Type": "text/html"}, \
            f"<html><body>{fault.status} Server Error</body></html>".encode()

    def channel(self, params: Json) -> SlackChannel:
        channel = self.world.channel(str(params.get("channel", "")))
        if channel is None:
            raise SlackError("channel_not_found")
        return channel


async def auth_test(sim: SlackSim, params: Json) -> Json:
    team, bot = sim.world.slack_team, sim.world.slack_bot
    return {"url": f"https://{team['domain']}.slack.com/", "team": team["name"],
            "user": bot["name"], "team_id": team["id"], "user_id": bot["user_id"],
            "bot_id": bot["bot_id"], "is_enterprise_install": False}


def _bounds(params: Json) -> tuple[str, str | None, bool]:
    oldest = str(params.get("oldest") or "0")
    latest = str(params["latest"]) if params.get("latest") else None
    try:
        float(oldest)
        if latest is not None:
            float(latest)
    except ValueError as err:
        raise SlackError("invalid_ts_oldest") from err
    return oldest, latest, _truthy(params.get("inclusive"))


def _window(stamps: list[str], oldest: str, latest: str | None, inclusive: bool) -> list[str]:
    """The timestamps between oldest and latest; both exclusive unless ``inclusive``."""
    low, high = float(oldest), float(latest) if latest else float("inf")
    if inclusive:
        start = bisect.bisect_left(stamps, low, key=float)
        end = bisect.bisect_right(stamps, high, key=float)
    else:
        start = bisect.bisect_right(stamps, low, key=float)
        end = bisect.bisect_left(stamps, high, key=float)
    return stamps[start:end]


async def history(sim: SlackSim, params: Json) -> Json:
    channel = sim.channel(params)
    oldest, latest, inclusive = _bounds(params)
    window = _window(channel.top_ts, oldest, latest, inclusive)
    before = _uncursor(params.get("cursor"), "next_ts")
    if before is not None:
        window = [ts for ts in window if float(ts) <= float(before)]
    limit = _limit(params, 100)
    newest_first = window[::-1]
    page, rest = newest_first[:limit], newest_first[limit:]
    metadata = _truthy(params.get("include_all_metadata"))
    body: Json = {"messages": [sim.render.message(channel.messages[ts], metadata) for ts in page],
                  "has_more": bool(rest), "pin_count": 0, "channel_actions_ts": None,
                  "channel_actions_count": 0,
                  "response_metadata": {"next_cursor": _cursor("next_ts", rest[0]) if rest
                                        else ""}}
    if latest:
        body["latest"] = latest
    if params.get("oldest"):
        body["oldest"] = oldest
    return body


async def replies(sim: SlackSim, params: Json) -> Json:
    channel = sim.channel(params)
    parent = channel.messages.get(str(params.get("ts", "")))
    if parent is None:
        raise SlackError("thread_not_found")
    if parent.is_reply:
        parent = channel.messages[parent.thread_ts or ""]
    oldest, latest, inclusive = _bounds(params)
    thread = [parent.ts, *parent.reply_ts]
    window = _window(thread, oldest, latest, inclusive) if params.get("oldest") or latest \
        else thread
    after = _uncursor(params.get("cursor"), "next_ts")
    if after is not None:
        window = [ts for ts in window if float(ts) >= float(after)]
    limit = _limit(params, 1000)
    page, rest = window[:limit], window[limit:]
    metadata = _truthy(params.get("include_all_metadata"))
    return {"messages": [sim.render.message(channel.messages[ts], metadata) for ts in page],
            "has_more": bool(rest),
            "response_metadata": {"next_cursor": _cursor("next_ts", rest[0]) if rest else ""}}


async def users_list(sim: SlackSim, params: Json) -> Json:
    users = sorted(sim.world.slack_users.values(), key=lambda u: u.id)
    after = _uncursor(params.get("cursor"), "user")
    if after is not None:
        users = [u for u in users if u.id >= after]
    limit = _limit(params, 0, 1000) if params.get("limit") else len(users) or 1
    page, rest = users[:limit], users[limit:]
    return {"members": [sim.render.user(u) for u in page], "cache_ts": int(time.time()),
            "response_metadata": {"next_cursor": _cursor("user", rest[0].id) if rest else ""}}


async def users_info(sim: SlackSim, params: Json) -> Json:
    user = sim.world.slack_users.get(str(params.get("user", "")))
    if user is None:
        raise SlackError("user_not_found")
    return {"user": sim.render.user(user)}


def _message(sim: SlackSim, params: Json, key: str) -> tuple[SlackChannel, SlackMessage]:
    channel = sim.channel(params)
    message = channel.messages.get(str(params.get(key, "")))
    if message is None:
        raise SlackError("message_not_found")
    return channel, message


async def reactions_get(sim: SlackSim, params: Json) -> Json:
    channel, message = _message(sim, params, "timestamp")
    return {"type": "message", "channel": channel.id, "message": sim.render.message(message)}


async def permalink(sim: SlackSim, params: Json) -> Json:
    channel, message = _message(sim, params, "message_ts")
    link = (f"https://{sim.world.slack_team['domain']}.slack.com/archives/{channel.id}"
            f"/p{message.ts.replace('.', '')}")
    if message.is_reply:
        link += f"?thread_ts={message.thread_ts}&cid={channel.id}"
    return {"channel": channel.id, "permalink": link}


def _metadata(params: Json) -> Json | None:
    raw = params.get("metadata")
    if raw in (None, ""):
        return None
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError as err:
        raise SlackError("invalid_metadata_format") from err
    if not isinstance(data, dict) or "event_type" not in data:
        raise SlackError("invalid_metadata_schema")
    return {"event_type": data["event_type"], "event_payload": data.get("event_payload", {})}


async def post_message(sim: SlackSim, params: Json) -> Json:
    channel = sim.channel(params)
    text = str(params.get("text") or "")
    if not text and not params.get("blocks") and not params.get("attachments"):
        raise SlackError("no_text")
    thread_ts = str(params["thread_ts"]) if params.get("thread_ts") else None
    if thread_ts and thread_ts not in channel.messages:
        raise SlackError("thread_not_found")
    metadata = _metadata(params)
    message = sim.world.add_slack_message(channel.id, text, None, thread_ts, metadata, bot=True)
    sim.ctx.writes.record("slack", "chat.postMessage", channel.id, dict(params))
    return {"channel": channel.id, "ts": message.ts,
            "message": sim.render.message(message, metadata=True)}


async def update_message(sim: SlackSim, params: Json) -> Json:
    channel, message = _message(sim, params, "ts")
    if message.user != sim.world.slack_bot["user_id"]:
        raise SlackError("cant_update_message")
    text = str(params["text"]) if params.get("text") is not None else None
    sim.world.edit_slack_message(channel.id, message.ts, text, _metadata(params))
    sim.ctx.writes.record("slack", "chat.update", channel.id, dict(params))
    return {"channel": channel.id, "ts": message.ts, "text": message.text,
            "message": sim.render.message(message, metadata=True)}


async def conversations_open(sim: SlackSim, params: Json) -> Json:
    """A direct message channel with one user, created on first open (``D`` + user id)."""
    users = [u.strip() for u in str(params.get("users") or "").split(",") if u.strip()]
    if not users:
        raise SlackError("users_list_not_supplied")
    if len(users) > 1:
        raise SlackError("not_implemented")  # group DMs are not simulated
    user = sim.world.slack_users.get(sim.world.slack_user_id(users[0]))
    if user is None or user.deleted:
        raise SlackError("user_not_found" if user is None else "user_disabled")
    dm_id = "D" + user.id.removeprefix("U")
    existed = dm_id in sim.world.channels
    if not existed:
        sim.world.channels[dm_id] = SlackChannel(id=dm_id, name=user.id)
    return {"no_op": existed, "already_open": existed, "channel": {"id": dm_id}}


METHODS: dict[str, Method] = {
    "auth.test": auth_test, "conversations.history": history,
    "conversations.replies": replies, "users.list": users_list, "users.info": users_info,
    "reactions.get": reactions_get, "chat.getPermalink": permalink,
    "chat.postMessage": post_message, "chat.update": update_message,
    "conversations.open": conversations_open,
}


async def unknown_method(request: Request) -> Response:
    return json_response({"ok": False, "error": "unknown_method",
                          "req_method": request.path_params.get("method", "")}, 404)


def create_app(ctx: Context) -> ASGIApp:
    sim = SlackSim(ctx)
    routes = [Route(f"/api/{name}", sim.wrap(name, method), methods=["GET", "POST"])
              for name, method in METHODS.items()]
    routes.append(Route("/api/{method}", unknown_method, methods=["GET", "POST"]))
    return build_app("slack", routes, ctx, sim.answer_fault)
