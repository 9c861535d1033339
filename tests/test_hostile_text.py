"""The hostile corpus through every sink: each encoder, every writer's real output, every
report format and the CLI tables. Nothing active may survive; the meaning must stay readable.

Follow-ups go the whole way: hostile titles and team fields in the ledger, the real rule
engine and planner (default and author-written templates), the outbox, and the real
writers posting to the sandbox's GitHub, Jira and Slack and to an SMTP server; the
assertions read what those peers received.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiosmtpd.controller import Controller
from hostile import (
    LONGEST_VALUE,
    PAYLOADS,
    SAFE_URL_SCHEMES,
    URLS,
    Payload,
    acting_characters,
    github_problems,
    jira_problems,
    outside_code_spans,
    slack_problems,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from syncd.cli import app
from syncd.clock import FrozenClock
from syncd.config import Settings, load_config
from syncd.connectors.github import markup as github
from syncd.connectors.jira import markup as jira
from syncd.connectors.mail.headers import header_value
from syncd.connectors.slack import markup as slack
from syncd.demo import CapturedMail, _free_port
from syncd.errors import FailureKind
from syncd.ledger.models import OutboxItem
from syncd.ledger.repository import Ledger
from syncd.model import Status, Task
from syncd.plaintext import printable
from syncd.reconcile import reconcile
from syncd.reports import build_report, render
from syncd.reports.escape import FORMULA_START, csv_cell, markdown_cell, safe_href
from syncd.rules.engine import compile_rules, evaluate
from syncd.sandbox import Sandbox, World
from syncd.service.alerts import observe_source
from syncd.sync import SourceSummary, people_directory
from syncd.writer.digest import _item_text
from syncd.writer.github import marker
from syncd.writer.outbox import drain, enqueue
from syncd.writer.plan import _templates, plan_followups
from syncd.writer.registry import writer_registry

ALICE_JIRA = "712020:0f1e2d3c-4b5a-4c6d-8e7f-000000000001"
NOW = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
IDS = [p.name for p in PAYLOADS]
# A template author using filters that would hand raw text on in a plain jinja template.
AUTHOR_TEMPLATE = (
    "Author: {{ task.title|safe }} / {{ task.title|upper }} / "
    '{{ task.team|replace("&", "&")|safe }} / {% set t = task.title %}{{ t }}.'
)


def readable(payload: Payload, text: str) -> None:
    assert "printer" in text.lower(), text[:200]
    for word in payload.visible:
        assert word.lower() in text.lower(), (word, text[:300])


# --- each encoder on the corpus -----------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS, ids=IDS)
def test_each_encoder_leaves_nothing_active_and_the_words_readable(payload: Payload) -> None:
    for name, encoded, problems in (
        ("slack", out := slack.escape(payload.text), slack_problems(out)),
        ("jira", out := jira.escape(payload.text), jira_problems(out)),
        ("github", out := github.escape(payload.text), github_problems(out)),
        ("email", out := header_value(payload.text), acting_characters(out)),
    ):
        assert problems == [], (name, encoded)
        readable(payload, encoded)
        assert len(printable(encoded, limit=None)) <= 3 * LONGEST_VALUE, name


def test_long_values_are_cut_visibly() -> None:
    text = "printer " + "A" * 20_000
    for encoded in (slack.escape(text), jira.escape(text), github.escape(text)):
        assert encoded.endswith("…") and len(encoded) <= LONGEST_VALUE
    assert len(header_value(text)) <= 200


def test_mentions_are_only_built_from_handles_of_the_right_shape() -> None:
    assert slack.mention("U01ALICE") == "<@U01ALICE>"
    assert jira.mention(ALICE_JIRA) == f"[~accountid:{ALICE_JIRA}]"
    assert github.mention("@alice-c") == "@alice-c"
    assert github.mention("octocat_fabrikam") == "@octocat_fabrikam"  # a managed user
    for bad in ("!channel", "U1> <!here", "alice", ""):
        with pytest.raises(ValueError):
            slack.mention(bad)
    for bad in ("x] [~admin", "a b", ""):
        with pytest.raises(ValueError):
            jira.mention(bad)
    for bad in ("org/team", "a b", "-x", "x" * 40, ""):
        with pytest.raises(ValueError):
            github.mention(bad)


def test_github_code_spans_hold_any_backticks() -> None:
    assert github.code_span("@a") == "`@a`"
    assert github.code_span("a`@b") == "``a`@b``"
    assert github.code_span("`@b") == "`` `@b ``"
    assert outside_code_spans(github.escape("`x @octocat` ``y @z")).count("@") == 0


# --- follow-ups: ledger → rules → planner → outbox → real writers → what the peers got --------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(World.default()) as served:
        yield served


class Mail(CapturedMail):
    port = 0


@pytest.fixture(scope="module")
def mail() -> Iterator[Mail]:
    captured = Mail()
    captured.port = _free_port()
    controller = Controller(captured, hostname="127.0.0.1", port=captured.port)
    controller.start()
    try:
        yield captured
    finally:
        controller.stop()


def write_config(tmp_path: Path, sandbox: Sandbox, mail: Mail, digest: bool) -> Path:
    followup = '{ via = "source", every = "2d", escalate_to = "alice" }'
    authored = (
        '{ via = "source", every = "2d", escalate_to = "alice", template = '
        + json.dumps(AUTHOR_TEMPLATE)
        + " }"
    )
    path = tmp_path / "syncd.toml"
    path.write_text(
        f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
        f'[sources.gh]\nkind = "github"\nbase_url = "{sandbox.urls["github"]}"\n'
        'token = "sandbox-github-token"\nrepos = ["example-org/api"]\n\n'
        f'[sources.ops]\nkind = "jira"\nurl = "{sandbox.urls["jira"]}"\n'
        'email = "bot@acme.example"\ntoken = "sandbox-jira-token"\njql = "project = OPS"\n\n'
        f'[sources.chat]\nkind = "slack"\nbase_url = "{sandbox.urls["slack"]}"\n'
        'token = "xoxb-sandbox"\nchannels = ["C0123ABCD"]\n\n'
        f'[sources.mail]\nkind = "maildir"\npath = "{tmp_path / "Maildir"}"\n\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {mail.port}\n'
        'from = "syncd <syncd@acme.example>"\nstarttls = false\n\n'
        f'[people.alice]\nname = "Alice"\ngithub = "alice-c"\njira = "{ALICE_JIRA}"\n'
        f'slack = "U01ALICE"\nemail = "alice@acme.example"\ndigest = {str(digest).lower()}\n\n'
        f'[[rules]]\nid = "owner"\nkind = "single_owner"\nfollowup = {followup}\n\n'
        f'[[rules]]\nid = "authored"\nkind = "single_owner"\nfollowup = {authored}\n'
    )
    return path


def hostile_tasks(sandbox: Sandbox, text: str) -> list[Task]:
    """One task in each kind of source, its title and team field the payload."""
    thread = sandbox.world.channel("C0123ABCD").top_ts[0]  # type: ignore[union-attr]
    where = [
        ("gh", "example-org/api#1"),
        ("ops", "OPS-1"),
        ("chat", f"C0123ABCD/{thread}"),
        ("mail", "hostile-thread@example.com"),
    ]
    # A fresh identity per test: syncd would rightly not post a series the target holds.
    run = uuid.uuid4().hex[:8]
    return [
        Task(source=source, external_id=f"x-{source}-{run}", key=key, title=text, team=text,
             owners=[], status=Status.OPEN, url="javascript:alert(1)", created_at=NOW)
        for source, key in where
    ]  # fmt: skip


def plan_and_deliver(settings: Settings, sandbox: Sandbox, text: str) -> dict[str, Any]:
    """Store the hostile tasks, evaluate, plan, enqueue and drain; the outbox rows after."""
    ledger = Ledger.open(settings.ledger.url)
    try:
        for task in hostile_tasks(sandbox, text):
            ledger.ingest_page(task.source, [task], now=NOW)
        rules = compile_rules(settings.rules)
        evaluate(ledger, rules, settings.policy, NOW)
        planned = plan_followups(ledger, rules, settings, people_directory(settings), NOW)
        assert len(planned.planned) == 8, [p.task_key for p in planned.planned]
        enqueue(ledger, planned.planned, NOW)
        with writer_registry(settings) as writer_for:
            result = drain(ledger, writer_for, NOW + timedelta(days=7))
        assert result.failed == 0, result.errors
        with ledger.sessions() as session:
            rows = session.scalars(select(OutboxItem)).all()
            return {
                row.idempotency_key: (row.channel, row.remote_id, row.state, row.body)
                for row in rows
            }
    finally:
        ledger.close()


def github_comment(sandbox: Sandbox, remote_id: str) -> str:
    issue = sandbox.world.gh_issue("example-org/api", 1)
    assert issue is not None
    return next(c.body for c in issue.comments if str(c.id) == remote_id)


@pytest.mark.parametrize("payload", PAYLOADS, ids=IDS)
def test_follow_ups_carry_nothing_active_to_any_writer(
    payload: Payload, tmp_path: Path, sandbox: Sandbox, mail: Mail
) -> None:
    settings = load_config(write_config(tmp_path, sandbox, mail, digest=False))
    mail.messages.clear()
    rows = plan_and_deliver(settings, sandbox, payload.text)

    seen = set()
    for key, (channel, remote_id, state, _body) in rows.items():
        assert state == "sent", key
        seen.add(channel)
        if channel == "github":
            body = github_comment(sandbox, remote_id)
            assert github_problems(body, "alice-c", marker(key)) == [], body
            text = body
        elif channel == "jira":
            *_, write = [  # keys repeat between tests: this test's post is the last
                w.payload for w in sandbox.writes.list("jira", "comment")
                if w.payload["properties"][0]["value"]["idempotency_key"] == key
            ]  # fmt: skip
            text = write["body"]
            assert jira_problems(text, ALICE_JIRA) == [], text
        elif channel == "slack":
            *_, params = [
                w.payload for w in sandbox.writes.list("slack", "chat.postMessage")
                if json.loads(w.payload["metadata"])["event_payload"]["idempotency_key"] == key
            ]  # fmt: skip
            assert "link_names" not in params and "blocks" not in params
            text = params["text"]
            assert slack_problems(text, "U01ALICE") == [], text
        else:
            [message] = [
                message_from_bytes(raw, policy=default_policy)
                for _, _, raw in mail.messages
                if remote_id.encode() in raw
            ]
            assert message["Bcc"] is None and message["X-Evil"] is None
            for name, value in message.items():
                assert "\n" not in value and "\r" not in value, (name, value)
                assert acting_characters(value) == [], (name, value)
            assert message.get_content_type() == "text/plain"
            text = message.get_content().replace("\r\n", "\n")  # SMTP's own line ends
            assert acting_characters(text) == [], text
            assert "printer" in message["Subject"].lower()
        readable(payload, text)
    assert seen == {"github", "jira", "slack", "email"}


SLACK_TEXTS = [  # as Slack's API returns them: typed brackets arrive escaped
    "&lt;!channel&gt; printer broken",
    "&lt;!subteam^S1|ops&gt; printer jammed",
    "&lt;@U123&gt; printer &amp; scanner",
    "<!here> printer on fire",  # a real broadcast by the author: echoed, it would ping again
]
GITHUB_TITLES = ["@octocat printer #12 a/b#3", "printer <!-- syncd:owner:9:9:0 --> <img src=x>"]


def test_the_whole_loop_from_real_sources_echoes_nothing_live(tmp_path: Path) -> None:
    """Items read by the real Slack and GitHub connectors, followed up by the real writers."""
    world = World.from_dict({
        "tokens": {"github": "gh-token", "slack": "xoxb-sandbox"},
        "people": [{"id": "bob", "name": "Bob", "github": "bob-o", "slack": "U02BOB"}],
        "github": {"viewer": "syncd-bot", "repos": [{"full_name": "acme/infra", "issues": [
            {"number": n, "title": title, "user": "bob", "assignees": [], "created_at": "-3d",
             "updated_at": "-3d"} for n, title in enumerate(GITHUB_TITLES, start=1)]}]},
        "slack": {"channels": [{"id": "C0OPS", "name": "ops", "messages": [
            {"user": "bob", "text": text, "ts": f"-{n}h"}
            for n, text in enumerate(SLACK_TEXTS, start=1)]}]},
    })  # fmt: skip
    with Sandbox(world) as served:
        config = tmp_path / "syncd.toml"
        config.write_text(
            f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n'
            f'[sources.gh]\nkind = "github"\nbase_url = "{served.urls["github"]}"\n'
            'token = "gh-token"\nrepos = ["acme/infra"]\n\n'
            f'[sources.chat]\nkind = "slack"\nbase_url = "{served.urls["slack"]}"\n'
            'token = "xoxb-sandbox"\nchannels = ["C0OPS"]\n\n'
            '[people.bob]\nname = "Bob"\ngithub = "bob-o"\nslack = "U02BOB"\n\n'
            '[[rules]]\nid = "owner"\nkind = "single_owner"\n'
            'followup = { via = "source", every = "2d", template = "About {{ task.title }}: '
            'who owns it?" }\n'
        )
        settings = load_config(config)
        ledger = Ledger.open(settings.ledger.url)
        try:
            with writer_registry(settings) as writer_for:
                report = reconcile(
                    settings, ledger, ["gh", "chat"], compile_rules(settings.rules),
                    FrozenClock(datetime.now(UTC)), writer_for=writer_for,
                )  # fmt: skip
            titles = {task.title for task in ledger.tasks(sources=["chat"], statuses=[])}
        finally:
            ledger.close()
        assert "<!channel> printer broken" in titles  # the connector unescaped it for display
        assert report.delivery.sent == len(SLACK_TEXTS) + len(GITHUB_TITLES), report.delivery
        replies = [w.payload["text"] for w in served.writes.list("slack", "chat.postMessage")]
        comments = [w.payload["body"] for w in served.writes.list("github", "issue_comment")]
    assert len(replies) == len(SLACK_TEXTS) and len(comments) == len(GITHUB_TITLES)
    for text in replies:
        assert slack_problems(text, "U02BOB") == [], text
        assert "printer" in text
    assert any("&lt;!channel&gt; printer broken" in text for text in replies)
    for body in comments:
        assert github_problems(body.split("\n\n<!-- syncd:")[0], "bob-o") == [], body
        assert body.count("<!-- syncd:") == 1 and "printer" in body


def test_a_digest_item_is_written_for_the_digest_channel(
    tmp_path: Path, sandbox: Sandbox, mail: Mail
) -> None:
    """Alice reads a daily digest by email: her GitHub follow-ups are written as plain text."""
    settings = load_config(write_config(tmp_path, sandbox, mail, digest=True))
    ledger = Ledger.open(settings.ledger.url)
    try:
        for task in hostile_tasks(sandbox, "<!channel> @octocat printer"):
            ledger.ingest_page(task.source, [task], now=NOW)
        rules = compile_rules(settings.rules)
        evaluate(ledger, rules, settings.policy, NOW)
        planned = plan_followups(ledger, rules, settings, people_directory(settings), NOW).planned
    finally:
        ledger.close()
    github_items = [p for p in planned if p.delivery.channel == "github"]
    assert github_items and all(p.digest for p in github_items)
    for item in github_items:
        assert item.delivery.target["encoded_for"] == "email"
        assert "<!channel> @octocat printer" in item.delivery.body  # plain text, as written


def test_a_digest_item_written_for_another_channel_is_encoded_again() -> None:
    item = OutboxItem(
        channel="github", target={"encoded_for": "email"}, body="<!channel> @here printer"
    )
    assert _item_text(item, "email") == "<!channel> @here printer"
    assert slack_problems(_item_text(item, "slack")) == []
    assert "printer" in _item_text(item, "slack")


def test_a_source_alert_quotes_the_server_without_pinging(tmp_path: Path) -> None:
    """The admin's alert quotes the source's error, which a server (or an attacker) wrote."""
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[ledger]\nurl = "sqlite:///{tmp_path / "ledger.db"}"\n\n[service]\nadmin = "alice"\n\n'
        '[sources.chat]\nkind = "slack"\ntoken = "xoxb-x"\nchannels = ["C1"]\n\n'
        '[people.alice]\nslack = "U01ALICE"\n'
    )
    settings = load_config(config)
    ledger = Ledger.open(settings.ledger.url)
    try:
        summary = SourceSummary(
            failed=True,
            error="401 <!channel> printer <@U999>",
            failure_kind=FailureKind.AUTHENTICATION,
        )
        assert observe_source(ledger, settings, "chat", summary, 1, NOW)
        with ledger.sessions() as session:
            [row] = session.scalars(select(OutboxItem)).all()
    finally:
        ledger.close()
    assert row.channel == "slack" and slack_problems(row.body) == []
    assert "&lt;!channel&gt; printer" in row.body


# --- reports -------------------------------------------------------------------------------


@pytest.fixture
def hostile_ledger(tmp_path: Path) -> Iterator[Ledger]:
    ledger = Ledger.open(f"sqlite:///{tmp_path / 'audit.db'}")
    tasks = []
    for index, payload in enumerate(PAYLOADS):
        url = URLS[index % len(URLS)]
        tasks.append(
            Task(source="ops", external_id=f"id-{index}", key=f"OPS-{index + 1}",
                 title=payload.text, team=payload.text, owners=[], reporter=payload.text,
                 labels=[payload.text], url=url, status=Status.OPEN, created_at=NOW)
        )  # fmt: skip
    ledger.ingest_page("ops", tasks, now=NOW)
    rules = compile_rules(
        load_config_rules([{"id": "owner", "kind": "single_owner", "severity": "error"}])
    )
    evaluate(ledger, rules, Settings().policy, NOW)
    yield ledger
    ledger.close()


def load_config_rules(specs: list[dict[str, Any]]) -> Any:
    from syncd.config import RuleSettings

    return [RuleSettings.model_validate(spec) for spec in specs]


REPORTS = ["ownerless", "violations", "compliance"]


@pytest.mark.parametrize("name", REPORTS)
def test_csv_cells_are_never_formulas(hostile_ledger: Ledger, name: str) -> None:
    output = render(build_report(hostile_ledger, name, now=NOW), "csv")
    cells = [cell for row in csv.reader(io.StringIO(output)) for cell in row]
    for cell in cells:
        assert cell.lstrip()[:1] not in FORMULA_START, cell
        assert acting_characters(cell.replace("\n", "")) == [], cell
    if name != "compliance":
        assert any(cell.startswith("'=HYPERLINK(") for cell in cells)
        assert sum("printer" in cell for cell in cells) >= len(PAYLOADS)
    # Every text cell is quoted: read back, each unquoted field must be a number.
    assert list(csv.reader(io.StringIO(output), quoting=csv.QUOTE_NONNUMERIC))


@pytest.mark.parametrize("name", REPORTS)
def test_markdown_has_no_html_and_keeps_its_table(hostile_ledger: Ledger, name: str) -> None:
    report = build_report(hostile_ledger, name, now=NOW)
    output = render(report, "md")
    assert "<" not in output and acting_characters(output.replace("\n", "")) == []
    lines = output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| "))
    width = len(re.findall(r"(?<!\\)\|", lines[header]))
    for line in lines[header:]:
        assert len(re.findall(r"(?<!\\)\|", line)) == width, line
    assert "](" not in output.replace("\\]", "")  # no link syntax survives unescaped
    if name != "compliance":
        assert output.count("printer") >= len(PAYLOADS)


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.mark.parametrize("name", REPORTS)
def test_html_has_only_safe_links_and_a_strict_policy(hostile_ledger: Ledger, name: str) -> None:
    output = render(build_report(hostile_ledger, name, now=NOW), "html")
    page = _Page()
    page.feed(output)
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "img", "iframe", "object", "embed", "base", "form"}
    for tag, attrs in page.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        assert "style" not in attrs, (tag, attrs)  # the policy allows no inline style
        if "href" in attrs:
            assert urlsplit(str(attrs["href"])).scheme in SAFE_URL_SCHEMES, attrs
    [policy] = [
        a["content"] for t, a in page.tags if a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert policy is not None and "default-src 'none'" in policy and "unsafe" not in policy
    assert "script-src" not in policy  # scripts fall under default-src 'none'
    text = "".join(page.text)
    assert acting_characters(text.replace("\n", "")) == []
    if name != "compliance":
        assert text.count("printer") >= len(PAYLOADS)
        assert "<img src=x onerror=alert(1)>" in text  # shown, as text


def test_json_keeps_the_data_and_escapes_what_would_act(hostile_ledger: Ledger) -> None:
    report = build_report(hostile_ledger, "ownerless", now=NOW)
    output = render(report, "json")
    assert acting_characters(output.replace("\n", "")) == []
    titles = {t["title"] for t in json.loads(output)["tasks"]}
    assert titles == {p.text for p in PAYLOADS}  # the data itself is unchanged


@pytest.mark.parametrize("name", REPORTS)
def test_terminal_tables_take_no_markup_and_no_escapes(hostile_ledger: Ledger, name: str) -> None:
    output = render(build_report(hostile_ledger, name, now=NOW), "table")
    assert "\x1b" not in output and acting_characters(output.replace("\n", "")) == []
    if name != "compliance":
        assert "[/]" in output and "[bold]b[/bold]" in output  # shown, not interpreted


def test_cli_tasks_table_shows_markup_as_text(hostile_ledger: Ledger, tmp_path: Path) -> None:
    url = hostile_ledger.engine.url.render_as_string(hide_password=False)
    config = tmp_path / "syncd.toml"
    config.write_text(f'[ledger]\nurl = "{url}"\n')
    result = CliRunner().invoke(app, ["tasks", "-c", str(config)], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "[/]" in result.stdout and "[bold]b[/bold]" in result.stdout
    assert "<!channel> printer" in result.stdout
    assert acting_characters(result.stdout.replace("\n", "")) == []


def test_html_links_keep_only_web_and_mail_schemes() -> None:
    for url in URLS[:-1]:
        assert safe_href(url) is None, url
    assert safe_href("https://ok.example/a") == "https://ok.example/a"
    assert safe_href("mailto:a@example.com") == "mailto:a@example.com"


# --- properties over the encoders -----------------------------------------------------------

SPECIAL = [*"<>&@#`[]{}!|\\=+-~*_:/ \t\r\n", "\u202e", "\u2066", "\x1b", "\x85", "a", "1"]
PIECES = ["@octocat", "#12", "a/b#3", "`", "``", "<!--", "syncd:", "-->", "x", " ", "\\"]
PIECES += ["[", "](", "GH-7", "@org/team", "&lt;", "&#64;", "{{@x}}", "\\{"]
hostile_text = st.text(st.sampled_from(SPECIAL) | st.characters(), max_size=300)
words = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)


@settings(max_examples=400, deadline=None)
@given(hostile_text)
def test_slack_output_never_holds_a_raw_bracket_or_ampersand(text: str) -> None:
    assert slack_problems(slack.escape(text, multiline=True)) == []


@settings(max_examples=400, deadline=None)
@given(hostile_text | words)
def test_jira_output_never_holds_live_markup_or_a_mention(text: str) -> None:
    assert jira_problems(jira.escape(text)) == []


@settings(max_examples=600, deadline=None)
@given(hostile_text | words)
def test_github_output_never_mentions_references_or_writes_html(text: str) -> None:
    assert github_problems(github.escape(text)) == []


@settings(max_examples=400, deadline=None)
@given(hostile_text)
def test_email_headers_never_hold_a_line_break(text: str) -> None:
    value = header_value(text)
    assert "\r" not in value and "\n" not in value and acting_characters(value) == []


@settings(max_examples=400, deadline=None)
@given(hostile_text)
def test_csv_cells_never_start_a_formula(text: str) -> None:
    cell = str(csv_cell(text))
    assert cell.lstrip()[:1] not in FORMULA_START
    assert not cell.startswith(("\t", "\r"))


@settings(max_examples=400, deadline=None)
@given(hostile_text)
def test_markdown_cells_never_hold_html_or_end_the_cell(text: str) -> None:
    cell = markdown_cell(text)
    assert "<" not in cell and "\n" not in cell
    assert re.search(r"(?<!\\)\|", cell.replace("\\\\", "")) is None


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(URLS) | st.text(max_size=60) | st.from_regex(r"[a-zA-Z\t ]{0,12}:.{0,20}"))
def test_html_hrefs_are_only_web_or_mail(url: str) -> None:
    href = safe_href(url)
    assert href is None or urlsplit(href).scheme.lower() in SAFE_URL_SCHEMES
    assert href is None or not re.search(r"[\x00-\x20\x7f-\x9f]", href)


@settings(max_examples=300, deadline=None)
@given(hostile_text, st.integers(min_value=1, max_value=500))
def test_printable_drops_acting_characters_and_respects_the_cap(text: str, limit: int) -> None:
    clean = printable(text, multiline=True, limit=limit)
    assert acting_characters(clean.replace("\n", "")) == [] and len(clean) <= limit


CHECKS = {
    "slack": slack_problems,
    "jira": jira_problems,
    "github": github_problems,
    "email": lambda text: acting_characters(text.replace("\n", "")),
}


@settings(max_examples=150, deadline=None)
@given(hostile_text | words, st.sampled_from(sorted(CHECKS)))
def test_template_filters_cannot_hand_on_raw_source_text(text: str, channel: str) -> None:
    """`|safe`, string filters, `set` and macros: every `{{ }}` output is encoded last."""
    template = AUTHOR_TEMPLATE + "{% macro m(x) %}{{ x|safe }}{% endmacro %} {{ m(task.title) }}"
    rendered = _templates(channel).from_string(template).render(task={"title": text, "team": text})
    assert CHECKS[channel](rendered) == [], rendered
