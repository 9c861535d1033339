"""World mutations, webhooks out, serve(), and the world file."""

from __future__ import annotations

import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.sandbox import Sandbox, World, WorldError
from syncd.sandbox.clock import utcnow


def test_relative_dates_follow_now() -> None:
    world = World.from_dict({"github": {"repos": [{"full_name": "o/r", "issues": [
        {"number": 1, "title": "t", "created_at": "-3d", "updated_at": "-4h"}]}]}})
    issue = world.gh_issue("o/r", 1)
    assert abs((utcnow() - issue.created_at).total_seconds() - 3 * 86400) < 60
    assert abs((utcnow() - issue.updated_at).total_seconds() - 4 * 3600) < 60


def test_transfer_keeps_id_and_bumps_updated(world: World) -> None:
    issue = world.gh_issue("example-org/api", 3)
    before, issue_id = issue.updated_at, issue.id
    moved = world.transfer_gh_issue("example-org/api", 3, "example-org/web")
    assert moved.id == issue_id and moved.number == 2 and moved.updated_at > before
    assert world.gh_issue("example-org/api", 3) is None
    assert world.gh_moved_issue("example-org/api", 3) is moved


def test_move_jira_issue_new_key_same_id_old_key_resolves(world: World) -> None:
    issue = world.jira_issue("OPS-3")
    issue_id = issue.id
    moved = world.move_jira_issue("OPS-3", "DEV")
    assert moved.id == issue_id and moved.key == "DEV-2"
    assert world.jira_issue("OPS-3") is moved  # old key still resolves, like Jira
    assert moved.changelog[-1].items[0]["fromString"] == "OPS-3"


def test_every_mutation_bumps_updated(world: World) -> None:
    stamps = []
    for mutate in (lambda: world.close_gh_issue("example-org/api", 1, "not_planned"),
                   lambda: world.reopen_gh_issue("example-org/api", 1),
                   lambda: world.reassign_gh_issue("example-org/api", 1, ["bob"])):
        mutate()
        stamps.append(world.gh_issue("example-org/api", 1).updated_at)
    assert stamps == sorted(stamps) and len(set(stamps)) == 3
    issue = world.gh_issue("example-org/api", 1)
    assert issue.state_reason == "reopened" and issue.assignees == ["bob-o"]
    jira_before = world.jira_issue("OPS-1").updated
    world.reassign_jira_issue("OPS-1", "carol")
    assert world.jira_issue("OPS-1").updated > jira_before
    assert world.jira_issue("OPS-1").assignee == world.people["carol"].jira


def test_slack_message_reply_reaction(world: World) -> None:
    parent = world.add_slack_message("C0123ABCD", "new ask", "bob")
    reply = world.add_slack_reply("C0123ABCD", parent.ts, "mine", "alice")
    world.add_slack_reaction("C0123ABCD", parent.ts, "eyes", "carol")
    assert parent.reply_ts == [reply.ts] and parent.reactions == {"eyes": ["U01CAROL"]}
    world.delete_slack_message("C0123ABCD", reply.ts)
    assert parent.reply_ts == []


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Receiver.received
    server.shutdown()


def _hmac(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def test_github_webhooks_are_signed(sandbox: Sandbox, receiver: Any) -> None:
    url, received = receiver
    sandbox.webhooks.configure("github", url, "s3cret")
    sandbox.world.close_gh_issue("example-org/api", 1)
    sandbox.world.add_gh_comment("example-org/api", 1, "done?", "bob")
    assert sandbox.webhooks.wait()
    (h1, b1), (h2, b2) = received
    assert (h1["x-github-event"], json.loads(b1)["action"]) == ("issues", "closed")
    assert (h2["x-github-event"], json.loads(b2)["action"]) == ("issue_comment", "created")
    for headers, body in received:
        assert headers["x-hub-signature-256"] == "sha256=" + _hmac("s3cret", body)
        assert headers["x-github-delivery"]
    assert json.loads(b2)["comment"]["body"] == "done?"


def test_slack_events_are_signed(sandbox: Sandbox, receiver: Any) -> None:
    url, received = receiver
    sandbox.webhooks.configure("slack", url, "slack-secret")
    message = sandbox.world.add_slack_message("C0123ABCD", "help!", "bob")
    assert sandbox.webhooks.wait()
    headers, body = received[0]
    stamp = headers["x-slack-request-timestamp"]
    expected = "v0=" + _hmac("slack-secret", f"v0:{stamp}:".encode() + body)
    assert headers["x-slack-signature"] == expected
    payload = json.loads(body)
    assert payload["type"] == "event_callback"
    assert (payload["event"]["type"], payload["event"]["ts"]) == ("message", message.ts)


def test_jira_webhooks_carry_shared_secret_signature(sandbox: Sandbox, receiver: Any) -> None:
    url, received = receiver
    sandbox.webhooks.configure("jira", url, "jira-secret")
    sandbox.world.transition_jira_issue("OPS-1", "Done")
    sandbox.world.add_jira_comment("OPS-1", "closing", "alice")
    assert sandbox.webhooks.wait()
    events = [json.loads(b)["webhookEvent"] for _, b in received]
    assert events == ["jira:issue_updated", "comment_created"]
    for headers, body in received:
        assert headers["x-hub-signature"] == "sha256=" + _hmac("jira-secret", body)
    assert json.loads(received[0][1])["changelog"]["items"][0]["toString"] == "Done"


def test_client_writes_also_deliver_webhooks(sandbox: Sandbox, receiver: Any) -> None:
    import httpx

    url, received = receiver
    sandbox.webhooks.configure("slack", url, "x")
    httpx.post(sandbox.urls["slack"] + "chat.postMessage",
               data={"channel": "C0123ABCD", "text": "from the bot"},
               headers={"Authorization": "Bearer xoxb-sandbox"})
    assert sandbox.webhooks.wait()
    assert json.loads(received[0][1])["event"]["text"] == "from the bot"


def test_no_writes_when_only_reading(sandbox: Sandbox) -> None:
    import httpx

    httpx.get(sandbox.urls["github"] + "/repos/example-org/api/issues",
              headers={"Authorization": "token sandbox-github-token"})
    sandbox.writes.assert_none()
    assert sandbox.request_log.counts("github") == {"GET /repos/{owner}/{repo}/issues": 1}
    sandbox.request_log.reset()
    assert sandbox.request_log.count() == 0


def test_serve_prints_urls_and_stops_on_sigterm(tmp_path: Any) -> None:
    import signal
    import subprocess
    import sys

    import httpx

    world = tmp_path / "world.json"
    world.write_text(json.dumps({"github": {"repos": [{"full_name": "o/r"}]}}))
    proc = subprocess.Popen([sys.executable, "-c",
                             "import sys; from pathlib import Path; from syncd.sandbox import "
                             "serve; serve(Path(sys.argv[1]))", str(world)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        urls = json.loads(proc.stdout.readline())
        assert set(urls) == {"github", "jira", "slack"} and urls["slack"].endswith("/api/")
        assert all(u.startswith("http://127.0.0.1:") for u in urls.values())
        response = httpx.get(urls["github"] + "/repos/o/r",
                             headers={"Authorization": "token sandbox-github-token"})
        assert response.json()["full_name"] == "o/r"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0


# --- the world file's faults, webhook targets and timeline ----------------------------


def scenario_world(extra: dict[str, Any]) -> dict[str, Any]:
    data = json.loads((Path(__file__).parents[2] / "syncd/sandbox/worlds/default.json").read_text())
    return {**data, **extra}


def test_world_file_faults_are_on_from_the_first_request() -> None:
    world = World.from_dict(scenario_world({"faults": [
        {"service": "github", "kind": "error", "status": 503, "route": "/repos/*/issues",
         "times": 1}]}))  # fmt: skip
    headers = {"Authorization": "token sandbox-github-token"}
    with Sandbox(world) as sandbox:
        url = sandbox.urls["github"] + "/repos/example-org/api/issues"
        assert httpx.get(url, headers=headers).status_code == 503
        assert httpx.get(url, headers=headers).status_code == 200, "times = 1: only once"


def test_timeline_changes_the_world_and_sends_its_webhooks(receiver: Any) -> None:
    url, received = receiver
    world = World.from_dict(scenario_world({
        "webhooks": [{"service": "github", "url": url, "secret": "s3cret"}],
        "timeline": [
            {"after": "100ms", "do": "close_gh_issue",
             "args": {"full_name": "example-org/api", "number": 1}},
            {"after": "50ms", "every": "50ms", "times": 3, "do": "add_gh_comment",
             "args": {"full_name": "example-org/api", "number": 2, "body": "ping",
                      "user": "bob"}},
        ],
    }))  # fmt: skip
    with Sandbox(world) as sandbox:
        deadline = time.monotonic() + 10
        while len(sandbox.timeline.done) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sandbox.webhooks.wait()
        assert [action for action, _ in sandbox.timeline.done].count("add_gh_comment") == 3
        assert sandbox.world.gh_issue("example-org/api", 1).state == "closed"
    events = [(h["x-github-event"], json.loads(b)["action"]) for h, b in received]
    assert events.count(("issue_comment", "created")) == 3
    assert ("issues", "closed") in events
    for headers, body in received:
        assert headers["x-hub-signature-256"] == "sha256=" + _hmac("s3cret", body)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"timeline": [{"do": "drop_table"}]}, "timeline[0].do: 'drop_table' is not a change"),
        ({"timeline": [{"do": "close_gh_issue", "args": {"full_name": "o/r"}}]},
         "timeline[0].args: missing a required argument: 'number'"),
        ({"timeline": [{"do": "add_gh_issue", "after": "soon",
                        "args": {"full_name": "o/r", "title": "t"}}]},
         "timeline[0].after: 'soon' is not a duration"),
        ({"faults": [{"service": "github", "kind": "explode"}]}, "faults[0].kind: unknown fault"),
        ({"faults": [{"service": "gitlab", "kind": "error"}]}, "faults[0].service: 'gitlab'"),
        ({"webhooks": [{"service": "jira", "url": "http://127.0.0.1:1/"}]},
         "webhooks[0]: missing secret"),
    ],
)  # fmt: skip
def test_a_wrong_scenario_fails_when_the_world_loads(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(WorldError) as raised:
        World.from_dict(scenario_world(extra))
    assert message in str(raised.value)


def serve_world_file(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "syncd", "sandbox", "--world", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_syncd_sandbox_rejects_a_broken_world_file_with_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "world.json"
    broken.write_text('{"timeline": [{"do": "drop_table"}]}')
    result = serve_world_file(broken)
    assert result.returncode == 2
    assert "timeline[0].do" in result.stderr
    broken.write_text('{"github": {"repos": [}')
    result = serve_world_file(broken)
    assert result.returncode == 2
    assert "line 1" in result.stderr, result.stderr
