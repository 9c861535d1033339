"""The `syncd` command line.

Exit codes: 0 success; 2 bad configuration or usage (the message names the file,
line or key); 1 any other failure.
"""

from __future__ import annotations

import sys
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from typer._click import Context as ClickContext  # typer vendors click; groups take its Context

from syncd import __version__
from syncd.clock import SystemClock
from syncd.config import ConfigError, Settings, load_config, resolve_config_path
from syncd.failures import EXIT_FAILURE, EXIT_USAGE, explain
from syncd.ledger.db import (
    LedgerError,
    NotALedger,
    create_ledger_engine,
    head_revision,
    upgrade,
)
from syncd.ledger.repository import Ledger, task_to_dict
from syncd.logs import LOG_LEVELS, LogFormat, configure_logging, get_logger
from syncd.model import Status
from syncd.reconcile import ReconcileReport
from syncd.reconcile import reconcile as reconcile_all
from syncd.reports.escape import terminal_text as plain
from syncd.rules.engine import (
    CompiledRule,
    EvaluationResult,
    RuleConfigError,
    compile_rules,
    evaluation_context,
)
from syncd.sync import SourceSummary
from syncd.writer.registry import writer_registry

console = Console()
errors = Console(stderr=True)
log = get_logger("syncd.cli")
# The ledger the running command opened (password hidden), for error messages.
ledger_in_use: ContextVar[str | None] = ContextVar("ledger_in_use", default=None)


class SyncdGroup(typer.core.TyperGroup):
    """Every command runs under one net: no failure ends in a traceback."""

    def invoke(self, ctx: ClickContext) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
            raise  # exits and usage errors the commands (or typer) already reported
        except Exception as error:
            failure = explain(error, ledger_in_use.get())
            if not failure.expected:
                log.debug("unexpected error", exc_info=True)
            errors.print(
                f"[bold red]error:[/] {escape(failure.message)}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(failure.exit_code) from None


app = typer.Typer(
    name="syncd",
    help=(
        "One task ledger for Jira, GitHub issues, Slack and email.\n\n"
        "syncd pulls every work item into one ledger, checks it against your team's "
        "policy (one owner, a due date, a priority, no stale work, nothing closed "
        "unverified) and chases the right person where the work lives.\n\n"
        "Configuration: -c PATH, else $SYNCD_CONFIG, else ./syncd.toml "
        "(every key is documented in config.example.toml)."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    cls=SyncdGroup,
)
db_app = typer.Typer(help="Manage the ledger database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "-c",
        "--config",
        help="Config file (default: $SYNCD_CONFIG, else ./syncd.toml).",
        show_default=False,
    ),
]


def _version(value: bool) -> None:
    if value:
        console.print(f"syncd {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format",
            help="auto: readable on a terminal, JSON lines otherwise.",
            case_sensitive=False,
        ),
    ] = "auto",
    log_level: Annotated[
        str, typer.Option("--log-level", help="DEBUG, INFO, WARNING, ERROR or CRITICAL.")
    ] = "INFO",
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    if log_format not in ("auto", "console", "json"):
        fail_usage(f"--log-format must be auto, console or json, not {log_format!r}")
    if log_level.upper() not in LOG_LEVELS:
        fail_usage(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")
    fmt: LogFormat = log_format  # type: ignore[assignment]
    configure_logging(fmt, log_level)


def fail_usage(message: str) -> NoReturn:
    # `message` quotes what the user typed: escaped, so `[/]` is text, not rich markup.
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_USAGE)


def fail(message: str) -> NoReturn:
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_FAILURE)



def write_output(text: str, output: Path | None) -> None:
    """A report on stdout, or in the file `-o` names (exit 1 when it cannot be written)."""
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    errors.print(f"wrote {output}", highlight=False, markup=False)


def load_settings(config: Path | None) -> Settings:
    """The configuration, or exit 2 naming the file, line and key."""
    try:
        return load_config(config)
    except ConfigError as exc:
        errors.print(str(exc), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Apply the ledger's schema migrations (safe to run again).

    A SQLite ledger is upgraded automatically on first use; run this for
    PostgreSQL, or before rolling out a new version.
    """
    settings = load_settings(config)
    engine = create_ledger_engine(settings.ledger.url)
    try:
        before, after = upgrade(engine)
    except Exception as exc:  # the database's own words are the useful part
        where = engine.url.render_as_string(hide_password=True)
        fail(f"could not migrate the ledger ({resolve_config_path(config)}): "
             f"{explain(exc, where).message}")  # fmt: skip
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        console.print(f"ledger {where} is up to date (revision {after})", markup=False)
    else:
        console.print(f"ledger {where} upgraded: {before or 'empty'} → {after}", markup=False)
    if after != head_revision(engine):
        raise LedgerError("migration did not reach head")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


# --- reconcile -----------------------------------------------------------------------

FormatOption = Annotated[
    str, typer.Option("--format", "-f", help="table (for people) or json (for machines).")
]
SourceOption = Annotated[
    list[str] | None,
    typer.Option("--source", "-s", help="Only this source (repeatable). Default: every source."),
]


def _check_format(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        fail_usage(f"--format must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _selected_sources(settings: Settings, requested: list[str] | None) -> list[str]:
    if not requested:
        return list(settings.sources)
    unknown = [name for name in requested if name not in settings.sources]
    if unknown:
        known = ", ".join(settings.sources) or "none configured"
        fail_usage(f"unknown source {', '.join(unknown)} (configured: {known})")
    return requested


def _open_ledger(settings: Settings, *, writable: bool = False) -> Ledger:
    """The ledger, or exit: 2 when the URL names something that is not a ledger."""
    url = make_url(settings.ledger.url).render_as_string(hide_password=True)
    ledger_in_use.set(url)
    try:
        return Ledger.open(settings.ledger.url, writable=writable)
    except NotALedger as exc:
        fail_usage(str(exc))
    except (LedgerError, SQLAlchemyError) as exc:
        fail(explain(exc, url).message)


@app.command()
def reconcile(
    config: ConfigOption = None,
    source: SourceOption = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Pull and evaluate, then print the follow-ups that would be sent; send nothing.",
        ),
    ] = False,
    output_format: FormatOption = "table",
) -> None:
    """Pull every source, check the rules, and follow up where the work lives.

    Each source is pulled incrementally from where its last run stopped. One
    failing source does not stop the others; its tasks stay as they were, the
    failure is printed, and the exit code is 1. Rules are then evaluated on what
    changed, and follow-ups that are due are posted once each (a comment, a
    message, an email reply).

    Examples:

      syncd reconcile -c syncd.toml

      syncd reconcile -c syncd.toml --dry-run

      syncd reconcile -c syncd.toml --source gh --format json
    """
    output_format = _check_format(output_format, ("table", "json"))
    settings = load_settings(config)
    names = _selected_sources(settings, source)
    rules = _compiled_rules(settings, config)
    ledger = _open_ledger(settings, writable=True)  # a dry run still stores what it pulls
    try:
        report = run_reconcile(settings, ledger, names, rules, dry_run=dry_run)
    finally:
        ledger.close()
    if output_format == "json":
        console.print_json(data=report.as_json())
    else:
        print_reconcile_report(report)
    if report.failed:
        raise typer.Exit(EXIT_FAILURE)


def run_reconcile(
    settings: Settings,
    ledger: Ledger,
    names: list[str],
    rules: list[CompiledRule],
    *,
    dry_run: bool = False,
) -> ReconcileReport:
    """Reconcile with a progress display on a terminal."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.fields[fetched]} items"),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
        disable=not errors.is_terminal,
    )
    rows = {name: progress.add_task(f"pulling {name}", fetched=0) for name in names}

    def on_page(name: str, fetched: int) -> None:
        progress.update(rows[name], fetched=fetched)

    def on_done(name: str, summary: SourceSummary) -> None:
        state = "[red]failed[/]" if summary.failed else "[green]done[/]"
        progress.update(rows[name], description=f"{name} {state}", fetched=summary.fetched)

    with progress, writer_registry(settings) as writer_for:
        return reconcile_all(
            settings,
            ledger,
            names,
            rules,
            SystemClock(),
            writer_for=writer_for,
            dry_run=dry_run,
            on_page=on_page,
            on_source_done=on_done,
        )


def print_reconcile_report(report: ReconcileReport) -> None:
    _print_reconcile_table(report.sources, report.unmapped)
    _print_rule_counts(report.evaluation)
    _print_followups(report)


def _print_followups(report: ReconcileReport) -> None:
    if report.dry_run:
        if not report.planned:
            console.print("Dry run: no follow-up is due.")
            return
        table = Table(
            title=f"Dry run: {len(report.planned)} follow-ups would be sent", title_justify="left"
        )
        for column in ("rule", "task", "where", "to", "what"):
            table.add_column(column, overflow="fold")
        for planned in report.planned:
            d = planned.delivery
            table.add_row(
                *(plain(v) for v in (planned.rule_id, planned.task_key, d.channel)),
                plain(d.recipient or "—"),
                plain(d.body),
            )
        console.print(table)
        return
    delivery = report.delivery
    console.print(
        f"Follow-ups: {len(report.planned)} due, {report.enqueued} new, "
        f"{delivery.sent} sent, {delivery.already_delivered} found already delivered, "
        f"{delivery.failed} failed, {delivery.unconfirmed} unconfirmed, {report.skipped} skipped"
    )
    for error in delivery.errors:
        errors.print(f"[yellow]follow-up failed:[/] {escape(error)}", highlight=False)


def _print_reconcile_table(summaries: dict[str, SourceSummary], unmapped: list[str]) -> None:
    table = Table(title="Reconcile", title_justify="left")
    for column in ("source", "fetched", "new", "updated", "unchanged", "quarantined", "gone"):
        table.add_column(column, justify="left" if column == "source" else "right")
    table.add_column("status")
    for name, summary in summaries.items():
        status = "[red]failed[/]" if summary.failed else "[green]ok[/]"
        table.add_row(
            plain(name),
            *(str(getattr(summary, c)) for c in
              ("fetched", "new", "updated", "unchanged", "quarantined", "gone")),
            status,
        )  # fmt: skip
    console.print(table)
    for name, summary in summaries.items():
        if summary.failed:
            errors.print(
                Text.assemble(plain(f"{name}:", style="bold red"), " ", plain(summary.error)),
                highlight=False,
            )
    if unmapped:
        console.print(
            f"\n{len(unmapped)} identities are not mapped to a person; add them under "
            f"[people.<id>] in the config:\n  " + "\n  ".join(unmapped),
            highlight=False,
            markup=False,
        )


def _compiled_rules(settings: Settings, config: Path | None) -> list[CompiledRule]:
    try:
        rules = compile_rules(settings.rules)
        evaluation_context(settings.policy, SystemClock().now())
    except RuleConfigError as exc:
        fail_usage(f"{resolve_config_path(config)}: {exc}")
    return rules


def _print_rule_counts(evaluation: EvaluationResult) -> None:
    if not evaluation.rules:
        return
    table = Table(
        title=f"Rules ({evaluation.evaluated} tasks evaluated"
        + (", full evaluation)" if evaluation.full else ")"),
        title_justify="left",
    )
    for column in ("rule", "open", "new", "resolved"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for rule_id, counts in evaluation.rules.items():
        table.add_row(plain(rule_id), str(counts.open), str(counts.new), str(counts.resolved))
    console.print(table)


# --- demo ----------------------------------------------------------------------------


@app.command()
def demo(
    directory: Annotated[
        Path,
        typer.Option("--dir", help="Where the demo writes its config, ledger, mail and report."),
    ] = Path("syncd-demo"),
    keep_running: Annotated[
        bool,
        typer.Option("--keep-running", help="Keep the sandbox up afterwards, for more commands."),
    ] = False,
) -> None:
    """The whole loop on built-in sandbox sources: no network, no credentials.

    Serves GitHub, Jira and Slack simulators on loopback with a small IT team's
    story, reads the client's mail from a local Maildir, sends follow-up mail to
    an in-process SMTP server, and runs a real reconcile through the real client
    libraries: pull, rules, follow-ups, then an audit summary and an HTML report.
    """
    from syncd.demo.run import run_demo

    report = run_demo(directory, console, keep_running=keep_running)
    if report.failed:
        raise typer.Exit(EXIT_FAILURE)


# --- run -----------------------------------------------------------------------------


@app.command()
def run(config: ConfigOption = None) -> None:
    """Run as a service: poll every source, take webhooks, evaluate rules, follow up.

    Each source is polled on its own poll_interval (else [service].poll_interval);
    a verified webhook at POST /webhooks/<source name> triggers a prompt poll;
    /healthz and /metrics answer on [service].listen. SIGTERM or SIGINT stops
    after the page in hand is committed; SIGHUP reloads the config.
    """
    from syncd.service.runner import ServiceError, run_service

    settings = load_settings(config)
    rules = _compiled_rules(settings, config)
    try:
        run_service(resolve_config_path(config), settings, rules)
    except NotALedger as exc:
        fail_usage(str(exc))
    except ServiceError as exc:
        fail(str(exc))


# --- rules ---------------------------------------------------------------------------

rules_app = typer.Typer(help="Inspect the policy rules.", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("check")
def rules_check(config: ConfigOption = None, output_format: FormatOption = "table") -> None:
    """Validate the whole configuration and print the compiled rules.

    Exits 2 naming the rule, the key and (for expressions) the column when a rule
    is wrong; nothing connects to any source.
    """
    output_format = _check_format(output_format, ("table", "json"))
    settings = load_settings(config)
    rules = _compiled_rules(settings, config)
    rows: list[dict[str, Any]] = [
        {
            "id": rule.id,
            "kind": rule.kind.name,
            "severity": rule.severity,
            "scope": rule.scope.source if rule.scope else None,
            "parameters": rule.params.model_dump(),
            "overrides": len(rule.overrides),
            "followup": rule.followup.model_dump(mode="json") if rule.followup else None,
            "checks": rule.describe(),
        }
        for rule in rules
    ]
    if output_format == "json":
        console.print_json(data={"rules": rows})
        return
    table = Table(title=f"{len(rows)} rules", title_justify="left")
    for column in ("id", "kind", "severity", "checks", "scope", "parameters", "followup"):
        table.add_column(column, overflow="fold")
    for row in rows:
        params = ", ".join(f"{k}={v}" for k, v in row["parameters"].items())
        if row["overrides"]:
            params += f" (+{row['overrides']} overrides)"
        followup = row["followup"]
        table.add_row(*(plain(v) for v in (
            row["id"], row["kind"], row["severity"], row["checks"], row["scope"] or "—",
            params or "—",
            f"via {followup['via']} every {followup['every']}" if followup else "—",
        )))  # fmt: skip
    console.print(table)


# --- tasks ---------------------------------------------------------------------------


@app.command()
def tasks(
    config: ConfigOption = None,
    source: SourceOption = None,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="open, in_progress, blocked, done, verified, cancelled."),
    ] = None,
    output_format: FormatOption = "table",
) -> None:
    """List the tasks in the ledger.

    The table shows the essentials; `--format json` prints {"tasks": [...]} with
    every normalized field.
    """
    output_format = _check_format(output_format, ("table", "json"))
    settings = load_settings(config)
    names = _selected_sources(settings, source) if source else []
    valid = {s.value for s in Status}
    if bad := [s for s in status or [] if s not in valid]:
        fail_usage(f"unknown status {', '.join(bad)} (one of: {', '.join(sorted(valid))})")
    ledger = _open_ledger(settings)
    try:
        rows = [task_to_dict(row) for row in ledger.tasks(sources=names, statuses=status or [])]
    finally:
        ledger.close()
    if output_format == "json":
        console.print_json(data={"tasks": rows})
        return
    table = Table(title=f"{len(rows)} tasks", title_justify="left")
    for column in ("key", "source", "status", "owners", "due", "priority", "title"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            plain(row["key"]),
            plain(row["source"]),
            plain(row["status"]),
            plain(", ".join(row["owners"])) if row["owners"] else Text("none", style="red"),
            plain(row["due"] or "—"),
            plain(row["priority"] or "—"),
            plain(row["title"]),
        )
    console.print(table)


# --- sandbox -------------------------------------------------------------------------


@app.command()
def sandbox(
    world: Annotated[
        Path | None,
        typer.Option(
            "--world", help="A world file (JSON) to serve; default: a small built-in world."
        ),
    ] = None,
) -> None:
    """Serve the GitHub, Jira and Slack simulators on loopback until interrupted.

    When ready, prints one JSON line with the base URLs, e.g.
    {"github": "http://127.0.0.1:PORT", "jira": "http://127.0.0.1:PORT",
    "slack": "http://127.0.0.1:PORT/api/"}. Point a config's base_url / url at them.
    """
    from syncd.sandbox import WorldError, serve

    if world is not None and not world.exists():
        fail_usage(f"{world}: world file not found")
    try:
        serve(world)
    except WorldError as exc:
        fail_usage(f"{world}: {exc}")


# --- audit ---------------------------------------------------------------------------


@app.command()
def audit(
    config: ConfigOption = None,
    report: Annotated[
        str,
        typer.Option(
            "--report",
            "-r",
            help="ownerless (default: tasks without exactly one owner), violations"
            " (open rule violations) or compliance (share of tasks that comply, trend).",
        ),
    ] = "ownerless",
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="table, json, csv, md or html.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
) -> None:
    """Report on the ledger as it is now: ownerless tasks, open violations, compliance.

    Reads only (run `syncd reconcile` first to pull and evaluate). `--format html`
    is one self-contained page that works offline.

    Examples:

      syncd audit -c syncd.toml

      syncd audit -c syncd.toml --report compliance --format html -o audit.html
    """
    from syncd.reports import FORMATS, REPORTS, build_report, render, render_table

    output_format = _check_format(output_format, FORMATS)
    if report not in REPORTS:
        fail_usage(f"--report must be one of {', '.join(REPORTS)}, not {report!r}")
    settings = load_settings(config)
    rules = _compiled_rules(settings, config)
    ledger = _open_ledger(settings)
    try:
        data = build_report(
            ledger, report, rules=rules, policy=settings.policy, now=SystemClock().now()
        )
    finally:
        ledger.close()
    if output is None and output_format == "table":
        render_table(data, console)
        return
    text = render(data, output_format)
    write_output(text, output)


# --- forecast ------------------------------------------------------------------------

forecast_app = typer.Typer(help="Deadline risk: forecasts and their backtest.")
app.add_typer(forecast_app, name="forecast")


@forecast_app.callback(invoke_without_command=True)
def forecast(
    ctx: typer.Context,
    config: ConfigOption = None,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Forecast as of this UTC date (default: now)."),
    ] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this person's work.")] = None,
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="table, json or html.")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """The open work heading for a missed deadline, highest risk first, with the reasons;
    each person's load against their throughput.

    Reads the ledger only (run `syncd reconcile` first). Flags as the configuration's
    first `deadline_risk` rule would (else with its defaults). `--format html` is one
    self-contained page with a chart of each at-risk task's finish range.

      syncd forecast -c syncd.toml

      syncd forecast -c syncd.toml --owner alice --format html -o risk.html
    """
    if ctx.invoked_subcommand is not None:
        return
    from datetime import UTC, datetime, time

    from syncd.forecast.outlook import FlagRule, build_outlook, render_table, to_json_text

    output_format = _check_format(output_format, ("table", "json", "html"))
    day = _day_option(as_of, "--as-of")
    settings = load_settings(config)
    rules = _compiled_rules(settings, config)
    risk_rule = next((r for r in rules if r.kind.name == "deadline_risk"), None)
    flag = FlagRule() if risk_rule is None else FlagRule(**risk_rule.params.model_dump())
    moment = SystemClock().now() if day is None else datetime.combine(day, time(0), tzinfo=UTC)
    ledger = _open_ledger(settings)
    try:
        outlook = build_outlook(ledger, moment, owner=owner, rule=flag)
    finally:
        ledger.close()
    if output_format == "table" and output is None:
        render_table(outlook, console)
        return
    if output_format == "json":
        text = to_json_text(outlook)
    elif output_format == "html":
        from syncd.forecast.page import render_page

        text = render_page(outlook)
    else:
        text = _outlook_table_text(outlook)
    write_output(text, output)


def _outlook_table_text(outlook: dict[str, Any]) -> str:
    import io

    from syncd.forecast.outlook import render_table

    buffer = io.StringIO()
    render_table(outlook, Console(file=buffer, width=140))
    return buffer.getvalue()


def _day_option(value: str | None, option: str) -> Any:
    from datetime import date

    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        fail_usage(f"{option} must be a date like 2012-01-02, not {value!r}")


@forecast_app.command("backtest")
def forecast_backtest(
    jira_export: Annotated[
        Path | None,
        typer.Option(
            "--jira-export",
            help="Jira issues, one JSON object per line as the REST API returns them "
            "with expand=changelog (.gz allowed).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "-c",
            "--config",
            help="Replay this config's ledger (its status and field history) instead.",
            show_default=False,
        ),
    ] = None,
    start: Annotated[
        str | None, typer.Option(help="First origin on or after this UTC date.")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Last origin on or before this UTC date.")] = None,
    cut: Annotated[
        str | None,
        typer.Option(help="Choose parameters on origins before this date; report origins from it."),
    ] = None,
    fit: Annotated[
        bool, typer.Option(help="Refit calibration and threshold on origins before --cut.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed of the simulation.")] = 0,
    output_format: FormatOption = "table",
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write here instead of stdout.")
    ] = None,
) -> None:
    """Replay a Jira export, or the ledger's own history, Monday by Monday, forecasting
    only from what was known then.

    Scores the forecasts against what happened, beside four baselines on the same pairs.

      syncd forecast backtest --jira-export issues.jsonl.gz --cut 2012-01-02
      syncd forecast backtest -c syncd.toml --start 2026-01-05
    """
    from syncd.forecast.report import (
        backtest_jira_export,
        backtest_ledger,
        render_table,
        to_json_text,
    )

    output_format = _check_format(output_format, ("table", "json"))
    if fit and cut is None:
        fail_usage("--fit needs --cut: parameters are chosen on origins before it")
    if (jira_export is None) == (config is None):
        fail_usage("give exactly one of --jira-export FILE and -c/--config CONFIG")
    if jira_export is not None and not jira_export.is_file():
        fail_usage(f"--jira-export: no such file: {jira_export}")
    when = {
        "start": _day_option(start, "--start"),
        "end": _day_option(end, "--end"),
        "cut": _day_option(cut, "--cut"),
    }
    if jira_export is not None:
        result = backtest_jira_export(
            jira_export, **when, fit=fit, seed=seed, progress_console=errors
        )
    else:
        ledger = _open_ledger(load_settings(config))
        try:
            result = backtest_ledger(ledger, **when, fit=fit, seed=seed, progress_console=errors)
        except ValueError as exc:
            fail(str(exc))
        finally:
            ledger.close()
    if output_format == "table" and output is None:
        render_table(result, console)
        return
    text = to_json_text(result) if output_format == "json" else _table_text(result)
    write_output(text, output)


def _table_text(result: Any) -> str:
    import io

    from syncd.forecast.report import render_table

    buffer = io.StringIO()
    render_table(result, Console(file=buffer, width=120))
    return buffer.getvalue()
