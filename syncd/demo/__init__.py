"""`syncd demo`: the whole loop on built-in sandbox sources, offline, no credentials.

A five-person IT team is migrating client A's infrastructure. The demo serves
GitHub, Jira and Slack simulators on loopback with that story, writes the
client's emails into a local Maildir, starts an in-process SMTP server for
follow-up mail, writes a config into the demo directory, and runs a real
reconcile through the real client libraries: pull, rules, follow-ups.
"""

from __future__ import annotations

import mailbox
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from syncd.sandbox import Sandbox, World

WORLD = Path(__file__).with_name("world.json")
GITHUB_TOKEN = "sandbox-github-token"
JIRA_TOKEN = "sandbox-jira-token"
SLACK_TOKEN = "xoxb-sandbox"


@dataclass
class CapturedMail:
    """An SMTP server that keeps what it is sent, for the demo to show."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


class DemoEnvironment:
    """Sandbox, SMTP server, Maildir and config for one demo run."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.world = World.load(WORLD)
        self.sandbox = Sandbox(self.world)
        self.mail = CapturedMail()
        self.smtp = Controller(self.mail, hostname="127.0.0.1", port=_free_port())
        self.config_path = directory / "syncd.toml"

    def __enter__(self) -> DemoEnvironment:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sandbox.start()
        self.smtp.start()
        write_client_mail(self.directory / "mail", self.world)
        self.config_path.write_text(self.config())
        return self

    def __exit__(self, *exc: object) -> None:
        self.smtp.stop()
        self.sandbox.stop()

    @property
    def smtp_port(self) -> int:
        port: int = self.smtp.port
        return port

    def config(self) -> str:
        urls = self.sandbox.urls
        people = "\n".join(_person_table(p) for p in self.world.people.values())
        ledger = (self.directory / "ledger.db").as_posix()
        return CONFIG_TEMPLATE.format(
            ledger=ledger,
            github=urls["github"],
            jira=urls["jira"],
            slack=urls["slack"],
            maildir=(self.directory / "mail").as_posix(),
            smtp_port=self.smtp_port,
            people=people,
        )


def _free_port() -> int:
    # aiosmtpd's start-up check connects to the configured port, so port 0 will not do.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _person_table(person: Any) -> str:
    lines = [f"[people.{person.id}]", f'name = "{person.name}"']
    for kind in ("email", "github", "jira", "slack"):
        value = getattr(person, kind, None)
        if value:
            lines.append(f'{kind} = "{value}"')
    return "\n".join(lines) + "\n"


def write_client_mail(path: Path, world: World) -> None:
    """The client's emails: one request to the shared support mailbox, nobody owning it."""
    box = mailbox.Maildir(path, create=True)
    if len(box):
        return
    now = world.now
    request = EmailMessage()
    request["From"] = "Jordan Blake <jordan@client-a.example>"
    request["To"] = "support@acme-it.example"
    request["Subject"] = "Staging site down after the DNS test"
    request["Date"] = format_datetime(now.replace(microsecond=0))
    request["Message-ID"] = make_msgid("client-a-staging", "client-a.example")
    request.set_content(
        "Hi team,\n\nsince your DNS test this morning staging.client-a.example does not resolve.\n"
        "Our QA is blocked - this is urgent, we need it back by tomorrow.\n\nThanks,\nJordan\n"
    )
    box.add(request)


CONFIG_TEMPLATE = """\
# Written by `syncd demo`. The sources are the demo's sandbox on loopback; the
# ledger stays in this directory, so `syncd audit` and `syncd tasks` work offline.

[ledger]
url = "sqlite:///{ledger}"

[sources.gh]
kind = "github"
base_url = "{github}"
token = "sandbox-github-token"
repos = ["acme-it/client-a-migration"]

[sources.jira]
kind = "jira"
url = "{jira}"
email = "syncd@acme-it.example"
token = "sandbox-jira-token"
jql = "project = MIG"
acceptance_field = "Acceptance Criteria"
team_field = "Team"

[sources.chat]
kind = "slack"
base_url = "{slack}"
token = "xoxb-sandbox"
channels = ["C0OPSREQ"]

[sources.support]
kind = "maildir"
path = "{maildir}"
address = "support@acme-it.example"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
from = "syncd <support@acme-it.example>"
starttls = false

[policy]
team_aliases = ["team", "devops", "ops", "support"]
timezone = "UTC"

{people}
[[rules]]
id = "one-owner"
kind = "single_owner"
severity = "error"
followup = {{ via = "source", every = "2d", max = 3, escalate_to = "maria" }}

[[rules]]
id = "due-date"
kind = "due_date"
severity = "warning"

[[rules]]
id = "priority"
kind = "priority"
severity = "warning"

[[rules]]
id = "context"
kind = "context"
severity = "info"
require_acceptance_criteria = false

[[rules]]
id = "blocked-risk"
kind = "dependency_risk"
severity = "error"
followup = {{ via = "source", every = "1d" }}

[[rules]]
id = "stale"
kind = "stale"
days = 5
followup = {{ via = "source", every = "2d" }}

[[rules]]
id = "verify"
kind = "verify_before_close"
severity = "error"
followup = {{ via = "source", every = "2d" }}

[[rules]]
id = "due-soon"
kind = "due_soon"
days = 2

[[rules]]
id = "deadline-risk"
kind = "deadline_risk"
severity = "warning"
followup = {{ via = "source", every = "2d", max = 2, escalate_to = "maria" }}
"""


STORY = (
    "[bold]syncd demo[/] — a five-person IT team is migrating client A's infrastructure. "
    "Work arrives in GitHub (acme-it/client-a-migration), Jira (project MIG), Slack "
    "(#ops-requests) and the shared support mailbox. syncd pulls it all into one ledger, "
    "checks the team's policy and follows up where the work lives.\n"
)


def reset(directory: Path) -> None:
    """A fresh story each run: the sandbox starts from the same world every time."""
    for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm", "report.html"):
        (directory / name).unlink(missing_ok=True)
    mail = directory / "mail"
    if mail.exists():
        for sub in ("cur", "new", "tmp"):
            for item in (mail / sub).glob("*"):
                item.unlink()
