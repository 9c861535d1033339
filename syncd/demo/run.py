"""Run the demo: the whole loop, printed for a newcomer."""

from __future__ import annotations

import contextlib
import email
import email.policy
import threading
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from syncd.config import Settings, load_config
from syncd.demo import STORY, DemoEnvironment, reset
from syncd.ledger.repository import Ledger
from syncd.reconcile import ReconcileReport
from syncd.reports.build import build_report
from syncd.reports.escape import terminal_text as plain
from syncd.reports.render import render
from syncd.rules.engine import CompiledRule, compile_rules


def run_demo(directory: Path, console: Console, *, keep_running: bool = False) -> ReconcileReport:
    from syncd.cli import print_reconcile_report, run_reconcile

    console.print(STORY)
    reset(directory)
    with DemoEnvironment(directory) as demo:
        console.print(f"Sandbox on loopback: {demo.sandbox.urls}", markup=False)
        console.print(f"Config written to [bold]{escape(str(demo.config_path))}[/]\n")
        settings = load_config(demo.config_path)
        rules = compile_rules(settings.rules)
        ledger = Ledger.open(settings.ledger.url)
        try:
            report = run_reconcile(settings, ledger, list(settings.sources), rules)
            print_reconcile_report(report)
            _print_ownerless(ledger, settings, console)
            _print_posted(demo, console)
            _print_deadline_risk(ledger, rules, console)
            report_path = _write_html(ledger, settings, rules, directory, console)
        finally:
            ledger.close()
        _print_next_steps(demo.config_path, report_path, console)
        if keep_running:
            console.print(
                "\nThe sandbox keeps running for `syncd reconcile`; press Ctrl-C to stop."
            )
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
    return report


def _print_ownerless(ledger: Ledger, settings: Settings, console: Console) -> None:
    report = build_report(ledger, "ownerless", policy=settings.policy)
    tasks = report.get("tasks", [])
    table = Table(title=f"Ownerless tasks ({len(tasks)})", title_justify="left")
    for column in ("task", "source", "owners", "suggested owner"):
        table.add_column(column, overflow="fold")
    for task in tasks:
        suggestion = task.get("suggested_owner")
        table.add_row(
            plain(f"{task['key']}: {task['title']}"),
            plain(task["source"]),
            plain(task.get("problem_text") or ", ".join(task["owners"]) or "none"),
            plain(f"{suggestion}: {task.get('suggestion_reason')}" if suggestion else "—"),
        )
    console.print(table)


def _print_posted(demo: DemoEnvironment, console: Console) -> None:
    writes = [
        w for w in demo.sandbox.writes.list() if "comment" in w.kind or "postMessage" in w.kind
    ]
    table = Table(
        title=f"Follow-ups posted ({len(writes) + len(demo.mail.messages)})", title_justify="left"
    )
    for column in ("where", "target", "message"):
        table.add_column(column, overflow="fold")
    for write in writes:
        text = str(write.payload.get("body") or write.payload.get("text") or "")
        message_text = text.split("<!--")[0].strip()
        table.add_row(
            f"{write.service} {write.kind}",
            plain(write.target),
            plain(message_text, multiline=True),
        )
    for _, recipients, content in demo.mail.messages:
        message = email.message_from_bytes(content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content().strip() if body is not None else ""
        row = (", ".join(recipients), f"{message['Subject']}: {text}")
        table.add_row("email (SMTP)", plain(row[0]), plain(row[1], multiline=True))
    console.print(table)


def _print_deadline_risk(ledger: Ledger, rules: list[CompiledRule], console: Console) -> None:
    """The deadline_risk rule's view of the same ledger, as `syncd forecast` shows it."""
    from syncd.clock import SystemClock
    from syncd.forecast.outlook import FlagRule, build_outlook, render_table

    rule = next((r for r in rules if r.kind.name == "deadline_risk"), None)
    flag = FlagRule() if rule is None else FlagRule(**rule.params.model_dump())
    console.print()
    render_table(build_outlook(ledger, SystemClock().now(), rule=flag), console)


def _write_html(
    ledger: Ledger, settings: Settings, rules: list[CompiledRule], directory: Path, console: Console
) -> Path:
    path = directory / "report.html"
    report = build_report(ledger, "violations", rules=rules, policy=settings.policy)
    path.write_text(render(report, "html"))
    console.print(
        f"\nHTML report written to [bold]{escape(str(path))}[/] "
        "(open it in a browser; it works offline)"
    )
    return path


def _print_next_steps(config: Path, report: Path, console: Console) -> None:
    config, report = Path(escape(str(config))), Path(escape(str(report)))  # paths as typed
    console.print(
        "\n[bold]Try next[/] (the ledger stays in the demo directory):\n"
        f"  syncd audit -c {config} --report ownerless\n"
        f"  syncd audit -c {config} --report compliance --format html -o {report.parent / 'compliance.html'}\n"
        f"  syncd tasks -c {config} --format json\n"
        f"  syncd forecast -c {config} --format html -o {report.parent / 'forecast.html'}\n"
        f"  syncd rules check -c {config}\n"
        f"  syncd demo --keep-running   # then, in another terminal: syncd reconcile -c {config} --dry-run"
    )
