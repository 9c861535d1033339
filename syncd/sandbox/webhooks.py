"""Outgoing webhooks: world changes delivered as the services sign them.

* GitHub: ``issues`` / ``issue_comment`` with ``X-GitHub-Event``, ``X-GitHub-Delivery`` and
  ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`` (plus the legacy SHA-1
  ``X-Hub-Signature``).
* Slack: Events API ``event_callback`` with ``X-Slack-Request-Timestamp`` and
  ``X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:<timestamp>:<body>">``.
* Jira: ``jira:issue_updated`` / ``jira:issue_deleted`` / ``comment_created`` /
  ``comment_updated``, signed like Jira Cloud's webhook secret feature:
  ``X-Hub-Signature: sha256=<hex HMAC-SHA256 of the body>``.

Deliveries run on a worker thread so a receiver may call back into the sandbox.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx

from syncd.sandbox.context import Context
from syncd.sandbox.github import Renderer
from syncd.sandbox.jira import JiraRenderer
from syncd.sandbox.slack import SlackRenderer
from syncd.sandbox.world import Change, GhComment, GhIssue, JiraComment, Json, World


@dataclass
class Delivery:
    service: str
    event: str
    url: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    error: str | None = None
    sent_at: float | None = None  # time.time() just before the POST

    @property
    def payload(self) -> Json:
        data: Json = json.loads(self.body)
        return data


@dataclass
class _Target:
    url: str
    secret: str


def github_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass
class Webhooks:
    """Configure a target per service; mutations then deliver signed webhooks."""

    world: World
    ctx: Context
    deliveries: list[Delivery] = field(default_factory=list)
    _targets: dict[str, _Target] = field(default_factory=dict)
    _queue: queue.Queue[Delivery | None] = field(default_factory=queue.Queue)
    _thread: threading.Thread | None = None
    _pending: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def configure(self, service: str, url: str, secret: str) -> None:
        if service not in ("github", "jira", "slack"):
            raise ValueError(f"unknown service {service!r}")
        self._targets[service] = _Target(url, secret)

    def disable(self, service: str) -> None:
        self._targets.pop(service, None)

    def start(self) -> None:
        self.world.subscribe(self._on_change)
        self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.world.unsubscribe(self._on_change)
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None

    def wait(self, timeout: float = 10.0) -> bool:
        """Block until every queued delivery was attempted; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # ---- building

    def _on_change(self, change: Change) -> None:
        target = self._targets.get(change.service)
        if target is None:
            return
        with self.world.lock:
            built = self._build(change)
        if built is None:
            return
        event, payload = built
        body = json.dumps(payload, separators=(",", ":")).encode()
        delivery = Delivery(change.service, event, target.url,
                            self._headers(change.service, event, target.secret, body), body)
        with self._cond:
            self._pending += 1
        self.deliveries.append(delivery)
        self._queue.put(delivery)

    def _headers(self, service: str, event: str, secret: str, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if service == "github":
            headers.update({
                "User-Agent": "GitHub-Hookshot/sandbox", "X-GitHub-Event": event,
                "X-GitHub-Delivery": str(uuid.uuid4()), "X-GitHub-Hook-ID": "1",
                "X-Hub-Signature-256": github_signature(secret, body),
                "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body,
                                                      hashlib.sha1).hexdigest()})
        elif service == "slack":
            stamp = str(int(time.time()))
            headers.update({"User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
                            "X-Slack-Request-Timestamp": stamp,
                            "X-Slack-Signature": slack_signature(secret, stamp, body)})
        else:
            headers.update({"User-Agent": "Atlassian Webhook HTTP Client",
                            "X-Atlassian-Webhook-Identifier": str(uuid.uuid4()),
                            "X-Hub-Signature": github_signature(secret, body)})
        return headers

    def _build(self, change: Change) -> tuple[str, Json] | None:
        if change.service == "github":
            return self._github(change)
        if change.service == "jira":
            return self._jira(change)
        return self._slack(change)

    def _github(self, change: Change) -> tuple[str, Json] | None:
        render = Renderer(self.world, self.ctx.base_urls.get("github", ""))
        sender = render.user(self.world.gh_viewer)
        if change.action.startswith("comment_"):
            comment = change.detail.get("comment") or self.world.gh_comments.get(change.ref)
            if not isinstance(comment, GhComment):
                return None
            issue = self.world.gh_issues.get(comment.issue_id)
            if issue is None:
                return None
            payload: Json = {"action": change.action.removeprefix("comment_"),
                             "issue": render.issue(issue), "comment": render.comment(comment)}
            if change.action == "comment_edited":
                payload["changes"] = {"body": {"from": change.detail.get("from")}}
            return "issue_comment", self._gh_wrap(render, issue, payload, sender)
        issue = change.detail.get("issue") or self.world.gh_issues.get(change.ref)
        if not isinstance(issue, GhIssue):
            return None
        payload = {"action": change.action, "issue": render.issue(issue)}
        if "changes" in change.detail:
            payload["changes"] = change.detail["changes"]
        if change.action == "transferred":
            repo = self.world.repo(issue.repo)
            payload["changes"] = {"new_issue": render.issue(issue),
                                  "new_repository": render.repo(repo) if repo else None}
        if change.action == "assigned" and issue.assignees:
            payload["assignee"] = render.user(issue.assignees[-1])
        return "issues", self._gh_wrap(render, issue, payload, sender,
                                       change.detail.get("from_repo"))

    def _gh_wrap(self, render: Renderer, issue: GhIssue, payload: Json, sender: Json | None,
                 repo_name: str | None = None) -> Json:
        repo = self.world.repo(repo_name or issue.repo)
        payload["repository"] = render.repo(repo) if repo else None
        payload["sender"] = sender
        return payload

    def _jira(self, change: Change) -> tuple[str, Json] | None:
        render = JiraRenderer(self.world, self.ctx.base_urls.get("jira", ""), 2)
        issue = change.detail.get("issue") or self.world.jira_issues.get(change.ref)
        if issue is None:
            return None
        stamp = int(time.time() * 1000)
        user = render.user(self.world.jira_viewer)
        comment = change.detail.get("comment")
        if isinstance(comment, JiraComment):
            event = change.action
            return event, {"timestamp": stamp, "webhookEvent": event,
                           "comment": render.comment(issue, comment),
                           "issue": render.brief(issue)}
        event = "jira:issue_deleted" if change.action == "issue_deleted" else "jira:issue_updated"
        payload: Json = {"timestamp": stamp, "webhookEvent": event,
                         "issue_event_type_name": "issue_generic", "user": user,
                         "issue": render.issue(issue, None)}
        if change.detail.get("items") is not None or change.detail.get("moved_from"):
            last = issue.changelog[-1] if issue.changelog else None
            payload["changelog"] = {"id": last.id if last else "0",
                                    "items": [dict(i) for i in (last.items if last else [])]}
        return event, payload

    def _slack(self, change: Change) -> tuple[str, Json] | None:
        render = SlackRenderer(self.world)
        channel_id, ts = change.ref
        channel = self.world.channels.get(channel_id)
        if channel is None:
            return None
        event: Json
        if change.action == "message":
            message = channel.messages[ts]
            event = {**render.message(message), "channel": channel_id, "event_ts": ts,
                     "channel_type": "channel"}
        elif change.action == "message_changed":
            message = channel.messages[ts]
            event = {"type": "message", "subtype": "message_changed", "hidden": True,
                     "channel": channel_id, "message": render.message(message),
                     "previous_message": {"type": "message", **change.detail["previous"]},
                     "event_ts": change.detail["event_ts"], "ts": change.detail["event_ts"],
                     "channel_type": "channel"}
        elif change.action == "message_deleted":
            previous = render.message(change.detail["previous"])
            event = {"type": "message", "subtype": "message_deleted", "hidden": True,
                     "channel": channel_id, "deleted_ts": ts, "previous_message": previous,
                     "event_ts": change.detail["event_ts"], "ts": change.detail["event_ts"],
                     "channel_type": "channel"}
        else:
            message = channel.messages[ts]
            event = {"type": "reaction_added", "user": change.detail["user"],
                     "reaction": change.detail["reaction"], "item_user": message.user,
                     "item": {"type": "message", "channel": channel_id, "ts": ts},
                     "event_ts": change.detail["event_ts"]}
        return "event_callback", self._slack_wrap(event)

    def _slack_wrap(self, event: Json) -> Json:
        team = self.world.slack_team["id"]
        return {"token": "sandbox-verification-token", "team_id": team,
                "api_app_id": "A0SANDBOX", "event": event, "type": "event_callback",
                "event_id": "Ev" + uuid.uuid4().hex[:10].upper(),
                "event_time": int(time.time()),
                "authorizations": [{"enterprise_id": None, "team_id": team,
                                    "user_id": self.world.slack_bot["user_id"], "is_bot": True,
                                    "is_enterprise_install": False}],
                "is_ext_shared_channel": False, "event_context": uuid.uuid4().hex}

    # ---- delivering

    def _run(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while True:
                delivery = self._queue.get()
                if delivery is None:
                    return
                self._deliver(client, delivery)
                with self._cond:
                    self._pending -= 1
                    self._cond.notify_all()

    def _deliver(self, client: httpx.Client, delivery: Delivery) -> None:
        delivery.sent_at = time.time()
        try:
            response = client.post(delivery.url, content=delivery.body, headers=delivery.headers)
            delivery.status = response.status_code
        except httpx.HTTPError as err:
            delivery.error = f"{type(err).__name__}: {err}"

    def of(self, service: str | None = None, event: str | None = None) -> list[Delivery]:
        return [d for d in self.deliveries if (service is None or d.service == service)
                and (event is None or d.event == event)]

