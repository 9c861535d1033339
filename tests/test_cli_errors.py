"""Every command against a bad ledger or a bad option: exit 1 or 2, one line, no traceback.

SPEC: exit 2 for bad configuration or usage (the message names what to fix),
1 for any other failure. The ledger cases run `syncd` as a real process; a
read-only file or directory only binds a process that is not root, so as root
they run as `nobody` (or, where `nobody` cannot reach this checkout, with SQLite
opening the file read-only and the directory replaced by a plain file).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from syncd.cli import app
from syncd.ledger.repository import Ledger

LEDGER_COMMANDS = {
    "reconcile": ["reconcile"],
    "reconcile --dry-run": ["reconcile", "--dry-run"],
    "tasks": ["tasks"],
    "audit": ["audit", "--report", "violations"],
    "db upgrade": ["db", "upgrade"],
    "run": ["run"],
}
# Commands that must write to do anything (a dry run still pulls into the ledger).
WRITERS = ("reconcile", "reconcile --dry-run", "run")


@dataclass
class Workspace:
    """A config with an empty Maildir source, and the ledger path it names."""

    root: Path
    prefix: list[str]  # runs the command unprivileged when the test runs as root

    @property
    def ledger(self) -> Path:
        return self.root / "ledger" / "syncd.db"

    def write_config(self, ledger_url: str | None = None) -> Path:
        for sub in ("cur", "new", "tmp"):
            (self.root / "mail" / sub).mkdir(parents=True, exist_ok=True)
        config = self.root / "syncd.toml"
        config.write_text(
            f'[ledger]\nurl = "{ledger_url or f"sqlite:///{self.ledger}"}"\n\n'
            f'[sources.mail]\nkind = "maildir"\npath = "{self.root / "mail"}"\n\n'
            '[service]\nlisten = "127.0.0.1:0"\n\n'
            '[[rules]]\nid = "owner"\nkind = "single_owner"\n'
        )
        return config

    def syncd(self, *args: str, config: Path) -> subprocess.CompletedProcess[str]:
        if self.prefix:  # what the test made belongs to the user syncd runs as
            subprocess.run(["chown", "-R", "nobody:nogroup", str(self.root)], check=True)
        env = {**os.environ, "COLUMNS": "400", "HOME": str(self.root)}
        return subprocess.run(
            [*self.prefix, sys.executable, "-m", "syncd", *args, "-c", str(config)],
            cwd=self.root, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def initialise(self) -> None:
        Ledger.open(f"sqlite:///{self.ledger}").close()  # creates and migrates it


def _unprivileged_prefix(root: Path) -> list[str] | None:
    """[] when not root; the `setpriv` prefix for `nobody`, if it can run syncd; else None."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    if shutil.which("setpriv") is None:
        return None
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", "import syncd.cli"], cwd=root, capture_output=True
    )
    return prefix if probe.returncode == 0 else None


@pytest.fixture
def workspace() -> Iterator[Workspace]:
    # Not under tmp_path: pytest makes that private to root, and `nobody` must reach it.
    root = Path(tempfile.mkdtemp(prefix="syncd-cli-"))
    root.chmod(0o755)
    try:
        prefix = _unprivileged_prefix(root)
        yield Workspace(root, prefix if prefix is not None else [])
    finally:
        shutil.rmtree(root, ignore_errors=True)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == code, output
    assert "Traceback" not in output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("command", LEDGER_COMMANDS)
def test_an_empty_ledger_file_is_refused_naming_db_upgrade(
    workspace: Workspace, command: str
) -> None:
    config = workspace.write_config()
    workspace.ledger.parent.mkdir(parents=True)
    workspace.ledger.write_bytes(b"")
    result = workspace.syncd(*LEDGER_COMMANDS[command], config=config)
    if command == "db upgrade":  # the explicit way to initialise it
        assert result.returncode == 0, result.stderr
        assert workspace.syncd("tasks", config=config).returncode == 0
        return
    assert_one_line_error(result, 2, str(workspace.ledger), "empty", "syncd db upgrade")
    assert workspace.ledger.stat().st_size == 0  # nothing was created behind the user's back


@pytest.mark.parametrize("command", ["reconcile", "tasks", "run"])
def test_a_database_without_syncds_schema_is_refused(workspace: Workspace, command: str) -> None:
    config = workspace.write_config()
    workspace.ledger.parent.mkdir(parents=True)
    with sqlite3.connect(workspace.ledger) as connection:
        connection.execute("CREATE TABLE notes (body TEXT)")
    result = workspace.syncd(*LEDGER_COMMANDS[command], config=config)
    assert_one_line_error(result, 2, "no syncd schema", "syncd db upgrade")


@pytest.mark.parametrize("command", ["reconcile", "audit", "db upgrade"])
def test_a_file_that_is_not_a_database(workspace: Workspace, command: str) -> None:
    config = workspace.write_config()
    workspace.ledger.parent.mkdir(parents=True)
    workspace.ledger.write_bytes(b"these are my notes, not a database\n" * 200)
    result = workspace.syncd(*LEDGER_COMMANDS[command], config=config)
    code = 1 if command == "db upgrade" else 2
    assert_one_line_error(result, code, "not an SQLite database")


@pytest.fixture
def read_only_config(workspace: Workspace) -> Path:
    """A migrated ledger that this process may read but not write."""
    config = workspace.write_config()
    workspace.initialise()
    if workspace.prefix or os.geteuid() != 0:
        for path in workspace.ledger.parent.iterdir():
            path.chmod(0o444)
        workspace.ledger.parent.chmod(0o555)
        return config
    return workspace.write_config(f"sqlite:///file:{workspace.ledger}?mode=ro&uri=true")


@pytest.mark.parametrize("command", LEDGER_COMMANDS)
def test_a_read_only_ledger(workspace: Workspace, read_only_config: Path, command: str) -> None:
    result = workspace.syncd(*LEDGER_COMMANDS[command], config=read_only_config)
    if command in WRITERS or result.returncode != 0:
        assert_one_line_error(result, 1, "read-only")


@pytest.mark.parametrize("command", ["reconcile", "run", "tasks"])
def test_a_ledger_locked_by_another_process(workspace: Workspace, command: str) -> None:
    config = workspace.write_config()
    workspace.initialise()
    config = workspace.write_config(f"sqlite:///{workspace.ledger}?timeout=1")
    holder = sqlite3.connect(workspace.ledger, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE alembic_version SET version_num = version_num")
        result = workspace.syncd(*LEDGER_COMMANDS[command], config=config)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    if command == "tasks":  # WAL: readers are not blocked by a writer
        assert result.returncode == 0, result.stderr
        return
    assert_one_line_error(result, 1, "locked")


@pytest.mark.parametrize("command", ["reconcile", "tasks", "db upgrade", "run"])
def test_a_ledger_directory_that_cannot_be_written(workspace: Workspace, command: str) -> None:
    if workspace.prefix or os.geteuid() != 0:
        blocked = workspace.root / "locked"
        blocked.mkdir(mode=0o555)
        blocked.chmod(0o555)
        ledger = blocked / "syncd.db"
    else:  # root writes anywhere: a plain file where the directory should be
        (workspace.root / "locked").write_text("not a directory")
        ledger = workspace.root / "locked" / "syncd.db"
    config = workspace.write_config(f"sqlite:///{ledger}")
    result = workspace.syncd(*LEDGER_COMMANDS[command], config=config)
    assert_one_line_error(result, 1)
    assert not ledger.exists()


def test_an_unwritable_report_file(workspace: Workspace) -> None:
    config = workspace.write_config()
    result = workspace.syncd(
        "audit", "--format", "csv", "-o", str(workspace.root / "missing" / "a.csv"), config=config
    )
    assert_one_line_error(result, 1, "cannot write", "No such file or directory")


# --- options, in-process ------------------------------------------------------------------

runner = CliRunner()
MARKUP = ["[/]", "[bold red]x[/bold red]", "[link=javascript:alert(1)]x[/link]", "\x1b[2Jx"]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workspace = Workspace(tmp_path_factory.mktemp("options"), [])
    path = workspace.write_config()
    workspace.initialise()
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"syncd {args!r} raised {result.exception!r}\n{output}")
    assert "Traceback" not in output
    return result.exit_code, output


def test_an_unknown_log_level_is_a_usage_error(config: Path) -> None:
    code, output = invoke("--log-level", "LOUD", "tasks", "-c", str(config))
    assert code == 2
    assert "--log-level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL" in output


@pytest.mark.parametrize("value", MARKUP)
@pytest.mark.parametrize(
    "args",
    [
        ["tasks", "-s", "{}"],
        ["tasks", "--status", "{}"],
        ["tasks", "--format", "{}"],
        ["audit", "--report", "{}"],
        ["audit", "--format", "{}"],
        ["reconcile", "--source", "{}"],
        ["--log-format", "{}", "tasks"],
        ["--log-level", "{}", "tasks"],
        ["sandbox", "--world", "{}"],
    ],
    ids=lambda args: " ".join(args) if isinstance(args, list) else None,
)
def test_rich_markup_in_an_option_is_shown_as_typed(
    config: Path, args: list[str], value: str
) -> None:
    command = [arg.replace("{}", value) for arg in args]
    code, output = invoke(*command, *([] if command[0] == "sandbox" else ["-c", str(config)]))
    assert code == 2
    assert value.replace("\x1b", "") in output.replace("\x1b", "")  # the text as typed


def test_markup_in_a_config_path_and_an_output_path(config: Path, tmp_path: Path) -> None:
    code, output = invoke("tasks", "-c", str(tmp_path / "[/]" / "syncd.toml"))
    assert code == 2 and "[/]" in output
    code, output = invoke(
        "audit", "-c", str(config), "-f", "csv", "-o", str(tmp_path / "[/]" / "a")
    )
    assert code == 1 and "[/]" in output


OPTIONS = ["--source", "--status", "--format", "--report", "--output", "--log-level"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    option=st.sampled_from(OPTIONS),
    value=st.text(
        st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40
    ),
)
def test_any_option_value_ends_in_a_clear_exit(config: Path, option: str, value: str) -> None:
    command = {
        "--source": ["tasks", "--source", value],
        "--status": ["tasks", "--status", value],
        "--format": ["tasks", "--format", value],
        "--report": ["audit", "--report", value],
        "--output": [
            "audit",
            "-f",
            "csv",
            "-o",
            str(config.parent / "out" / value.replace("/", "_")),
        ],
        "--log-level": ["--log-level", value, "tasks"],
    }[option]
    code, _output = invoke(*command, "-c", str(config))
    assert code in (0, 1, 2)


def test_the_demo_in_a_directory_named_like_markup(tmp_path: Path) -> None:
    code, output = invoke("demo", "--dir", str(tmp_path / "[/]" / "demo"))
    assert code == 0, output
    assert f"syncd tasks -c {tmp_path}/[/]/demo/syncd.toml" in output.replace("\n", "")
