"""Signed GitHub `issues` deliveries for the webhook inbox tests, built from a recorded one."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from corpus_root import CORPUS

REPO = "Codertocat/Hello-World"  # the recorded payload's repository
SECRET = "inbox-webhook-secret"


@cache
def _template() -> dict[str, Any]:
    path = CORPUS / "github-webhooks" / "issues" / "opened.payload.json"
    payload: dict[str, Any] = json.loads(path.read_text())
    return payload


@dataclass(frozen=True)
class GitHubDelivery:
    """One delivery as GitHub would post it: a fresh `X-GitHub-Delivery` id per event."""

    number: int
    title: str
    body: bytes
    delivery_id: str

    @property
    def key(self) -> str:
        return f"{REPO}#{self.number}"

    def headers(self, secret: str = SECRET) -> dict[str, str]:
        digest = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return {
            "X-GitHub-Event": "issues",
            "X-GitHub-Delivery": self.delivery_id,
            "X-Hub-Signature-256": f"sha256={digest}",
            "Content-Type": "application/json",
        }


def issue_opened(number: int, title: str | None = None) -> GitHubDelivery:
    """The recorded `issues.opened` delivery, renumbered: a new issue no poll knows."""
    payload = copy.deepcopy(_template())
    issue = payload["issue"]
    title = title or f"Opened by webhook {number}"
    api = f"https://api.github.com/repos/{REPO}/issues/{number}"
    issue.update(
        id=900_000_000 + number,
        node_id=f"I_test{number}",
        number=number,
        title=title,
        url=api,
        html_url=f"https://github.com/{REPO}/issues/{number}",
        comments_url=f"{api}/comments",
        events_url=f"{api}/events",
        labels_url=f"{api}/labels{{/name}}",
    )
    body = json.dumps(payload, separators=(",", ":")).encode()
    return GitHubDelivery(number, title, body, str(uuid.uuid4()))


def config_text(ledger_url: str, listen: str, github_url: str, poll: str = "1h") -> str:
    return (
        f'[ledger]\nurl = "{ledger_url}"\n\n'
        f'[service]\nlisten = "{listen}"\npoll_interval = "{poll}"\n\n'
        f'[sources.gh]\nkind = "github"\nbase_url = "{github_url}"\n'
        f'token = "sandbox-github-token"\nrepos = ["{REPO}"]\nwebhook_secret = "{SECRET}"\n'
    )


def write_config(path: Path, ledger_url: str, listen: str, github_url: str, **kw: str) -> Path:
    path.write_text(config_text(ledger_url, listen, github_url, **kw))
    return path
