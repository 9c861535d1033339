"""No token, password or Authorization header ever appears in a log line."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

from syncd.redaction import redact, redact_text, register_secret


def test_registered_secret_is_masked_anywhere_in_text() -> None:
    register_secret("hunter2-hunter2")
    assert redact_text("password was hunter2-hunter2!") == "password was ***!"


def test_credential_shapes_are_masked_without_registration() -> None:
    line = (
        "headers={'Authorization': 'Bearer abcdef123456'} slack=xoxb-1234-5678-abcdef "
        "gh=ghp_0123456789abcdefghijABCDEFGHIJ"
    )
    masked = redact_text(line)
    assert "abcdef123456" not in masked
    assert "xoxb-1234-5678-abcdef" not in masked
    assert "ghp_0123456789abcdefghijABCDEFGHIJ" not in masked


def test_secret_keys_are_masked_in_structures() -> None:
    event = {"token": "plain", "nested": {"password": "pw", "user": "bob"}, "items": ["ok"]}
    assert redact(event) == {
        "token": "***",
        "nested": {"password": "***", "user": "bob"},
        "items": ["ok"],
    }


def test_logs_from_syncd_and_from_libraries_are_redacted(tmp_path: Path) -> None:
    """Through the real logging setup, in a subprocess that logs as the CLI would."""
    script = textwrap.dedent(
        """
        import logging
        from syncd.logs import configure_logging, get_logger
        from syncd.redaction import register_secret
        configure_logging("json", "DEBUG")
        register_secret("s3cr3t-token-value")
        get_logger("syncd.test").info("calling", token="s3cr3t-token-value", url="https://x")
        get_logger("syncd.test").info("header", headers={"Authorization": "token s3cr3t-token-value"})
        logging.getLogger("urllib3").warning("sending Authorization: Basic dXNlcjpwYXNz to host")
        logging.getLogger("github").warning("request with s3cr3t-token-value failed")
        try:
            raise RuntimeError("boom s3cr3t-token-value")
        except RuntimeError:
            get_logger("syncd.test").exception("failed")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert len(lines) == 5
    assert "s3cr3t-token-value" not in result.stderr
    assert "dXNlcjpwYXNz" not in result.stderr
    assert lines[0]["token"] == "***" and lines[0]["url"] == "https://x"
    assert "RuntimeError" in lines[4]["exception"]


def test_log_format_console_is_not_json(tmp_path: Path) -> None:
    script = (
        "from syncd.logs import configure_logging, get_logger\n"
        "configure_logging('console')\nget_logger('x').info('hello', n=1)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert "hello" in result.stderr and not result.stderr.lstrip().startswith("{")
    logging.getLogger().handlers.clear()
