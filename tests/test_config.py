"""Every configuration error exits 2 with the file, key path and line named."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from syncd.cli import app
from syncd.config import ConfigError, load_config, parse_duration

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_SECRETS = (
    "GITHUB_TOKEN",
    "JIRA_TOKEN",
    "SLACK_BOT_TOKEN",
    "IMAP_PASSWORD",
    "SMTP_PASSWORD",
)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return str(caught.value)


GITHUB = '[sources.gh]\nkind = "github"\ntoken = "t0ken-value"\nrepos = ["a/b"]\n'


def test_example_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in EXAMPLE_SECRETS:
        monkeypatch.setenv(name, f"secret-{name.lower()}")
    settings = load_config(ROOT / "config.example.toml")
    assert set(settings.sources) == {"gh", "ops", "chat", "support"}
    assert settings.sources["gh"].kind == "github"
    assert settings.smtp is not None and settings.smtp.from_.startswith("syncd")
    assert settings.rules[1].params == {"days": 5}
    assert settings.people["alice"].github == "alice-c"


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    message = error_of(tmp_path / "nope.toml")
    assert "nope.toml" in message and "not found" in message


def test_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, '[ledger]\nurl = "sqlite:///x.db"\nbroken line here\n')
    message = error_of(path)
    assert message.startswith(f"{path}:3:")
    assert "TOML syntax error" in message


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    path = write(tmp_path, GITHUB + 'tken = "x"\n')
    assert error_of(path) == f"{path}:5: sources.gh.tken: unknown key (did you mean 'token'?)"


def test_unknown_top_level_table(tmp_path: Path) -> None:
    path = write(tmp_path, '[ledgr]\nurl = "x"\n')
    assert error_of(path) == f"{path}:1: ledgr: unknown key (did you mean 'ledger'?)"


def test_unknown_key_in_nested_table(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[[rules]]\nid = "a"\nkind = "stale"\nfollowup = { via = "source", evry = "2d" }\n',
    )
    message = error_of(path)
    assert "rules[0].followup.evry: unknown key (did you mean 'every'?)" in message
    assert message.startswith(f"{path}:4:")


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, '[sources.gh]\nkind = "github"\ntoken = "t0ken"\nrepos = "a/b"\n')
    message = error_of(path)
    assert message.startswith(f"{path}:4: sources.gh.repos:")
    assert "valid list" in message and "'a/b'" in message


def test_wrong_type_never_echoes_a_secret(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\nhost = "h"\nfrom = "x@y"\npassword = 12345678\n')
    message = error_of(path)
    assert "smtp.password" in message and "12345678" not in message


def test_unset_variable_names_variable_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNCD_TEST_UNSET", raising=False)
    path = write(
        tmp_path, '[sources.gh]\nkind = "github"\ntoken = "${SYNCD_TEST_UNSET}"\nrepos = ["a/b"]\n'
    )
    message = error_of(path)
    assert message.startswith(f"{path}:3: sources.gh.token:")
    assert "SYNCD_TEST_UNSET is not set" in message


def test_variable_is_interpolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_TEST_TOKEN", "from-the-env")
    path = write(
        tmp_path, '[sources.gh]\nkind = "github"\ntoken = "${SYNCD_TEST_TOKEN}"\nrepos = ["a/b"]\n'
    )
    token = load_config(path).sources["gh"].token  # type: ignore[attr-defined]
    assert token.get_secret_value() == "from-the-env"
    assert "from-the-env" not in repr(load_config(path))


def test_unknown_source_kind(tmp_path: Path) -> None:
    path = write(tmp_path, '[sources.gh]\nkind = "gitlab"\n')
    message = error_of(path)
    assert message.startswith(f"{path}:2: sources.gh.kind: unknown source kind 'gitlab'")
    assert "github" in message and "jira" in message


def test_missing_required_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[sources.ops]\nkind = "jira"\nurl = "https://x"\ntoken = "t0ken"\n')
    assert error_of(path) == f"{path}:1: sources.ops.jql: required key is missing"


def test_bad_duration(tmp_path: Path) -> None:
    path = write(tmp_path, GITHUB + 'poll_interval = "soon"\n')
    message = error_of(path)
    assert message.startswith(f"{path}:5: sources.gh.poll_interval: 'soon' is not a duration")


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_LEDGER__URL", "sqlite:///from-env.db")
    path = write(tmp_path, '[ledger]\nurl = "sqlite:///from-file.db"\n')
    assert load_config(path).ledger.url == "sqlite:///from-env.db"


def test_config_path_falls_back_to_env_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "syncd.toml").write_text('[ledger]\nurl = "sqlite:///cwd.db"\n')
    monkeypatch.delenv("SYNCD_CONFIG", raising=False)
    assert load_config().ledger.url == "sqlite:///cwd.db"
    other = tmp_path / "other.toml"
    other.write_text('[ledger]\nurl = "sqlite:///env.db"\n')
    monkeypatch.setenv("SYNCD_CONFIG", str(other))
    assert load_config().ledger.url == "sqlite:///env.db"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("2d", 172800), ("1h30m", 5400), (45, 45), ("1w", 604800)],
)
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text).total_seconds() == seconds


def test_cli_exits_2_with_the_message(tmp_path: Path) -> None:
    path = write(tmp_path, GITHUB + 'tken = "x"\n')
    result = CliRunner().invoke(app, ["db", "upgrade", "-c", str(path)])
    assert result.exit_code == 2
    assert "sources.gh.tken: unknown key (did you mean 'token'?)" in result.output


def test_secrets_from_config_never_reach_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(
        tmp_path, '[sources.gh]\nkind = "github"\ntoken = "sup3r-s3cret-t0ken"\nrepos = ["a/b"]\n'
    )
    load_config(path)
    from syncd.redaction import redact_text

    assert redact_text("GET with sup3r-s3cret-t0ken failed") == "GET with *** failed"
    logging.getLogger("test").info("irrelevant")
