"""The `syncd` command line.

Exit codes: 0 success; 2 bad configuration or usage (the message names the file,
line or key); 1 any other failure.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console

from syncd import __version__
from syncd.config import ConfigError, Settings, load_config, resolve_config_path
from syncd.ledger.db import LedgerError, create_ledger_engine, head_revision, upgrade
from syncd.logs import LogFormat, configure_logging

EXIT_FAILURE = 1
EXIT_USAGE = 2

console = Console()
errors = Console(stderr=True)

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
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING…")] = "INFO",
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    if log_format not in ("auto", "console", "json"):
        fail_usage(f"--log-format must be auto, console or json, not {log_format!r}")
    fmt: LogFormat = log_format  # type: ignore[assignment]
    configure_logging(fmt, log_level)


def fail_usage(message: str) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(EXIT_USAGE)


def fail(message: str) -> NoReturn:
    errors.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(EXIT_FAILURE)


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
        fail(f"could not migrate the ledger ({resolve_config_path(config)}): {exc}")
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        console.print(f"ledger {where} is up to date (revision {after})")
    else:
        console.print(f"ledger {where} upgraded: {before or 'empty'} → {after}")
    if after != head_revision(engine):
        raise LedgerError("migration did not reach head")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
