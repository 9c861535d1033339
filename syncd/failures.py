"""What a failed command tells its user: one line saying what to fix, and an exit code.

Commands report the failures they expect themselves. This is the net under
them: a database or file-system error that escapes a command (a ledger that
turned read-only, a lock another process holds, a disk that filled up) becomes
one plain sentence instead of a traceback; anything else is reported as an
unexpected error, with its traceback kept for `--log-level DEBUG`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from syncd.ledger.db import LedgerError, NotALedger

EXIT_FAILURE = 1
EXIT_USAGE = 2

# SQLite's own words (sqlite3.OperationalError) and what the user can do about each.
_SQLITE_ADVICE = (
    ("readonly", "is read-only: syncd needs to write to it and to its directory; "
                 "fix their permissions"),
    ("database is locked", "is locked by another process (waited for the `timeout` in "
                           "[ledger].url, 30 s by default); stop the other syncd or try again"),
    ("unable to open database file", "cannot be opened: its directory is missing or not "
                                     "writable"),
    ("disk is full", "cannot grow: the disk is full"),
    ("disk i/o error", "cannot be read or written (disk I/O error); check the disk"),
    ("file is not a database", "is not an SQLite database; point [ledger].url at the ledger"),
)  # fmt: skip


@dataclass(frozen=True)
class Failure:
    exit_code: int
    message: str
    expected: bool = True  # False: a bug; its traceback is worth logging


def explain(error: BaseException, ledger: str | None = None) -> Failure:
    """The one-line account of `error`; `ledger` names the ledger in use, when known."""
    where = f"the ledger {ledger}" if ledger else "the ledger"
    if isinstance(error, NotALedger):
        return Failure(EXIT_USAGE, str(error))
    if isinstance(error, LedgerError):
        return Failure(EXIT_FAILURE, str(error))
    if isinstance(error, DBAPIError):
        return Failure(EXIT_FAILURE, _database_failure(error, where))
    if isinstance(error, SQLAlchemyError):
        return Failure(EXIT_FAILURE, f"{where} failed: {_first_line(str(error))}")
    if isinstance(error, OSError):
        name = f"{error.filename}: " if error.filename else ""
        return Failure(EXIT_FAILURE, f"{name}{error.strerror or error}")
    return Failure(
        EXIT_FAILURE,
        f"unexpected error ({type(error).__name__}: {_first_line(str(error))}); "
        "run again with --log-level DEBUG for the details",
        expected=False,
    )


def _database_failure(error: DBAPIError, where: str) -> str:
    said = _first_line(str(error.orig))
    for words, advice in _SQLITE_ADVICE:
        if words in said.lower():
            return f"{where} {advice}"
    return f"{where} failed: {said}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no detail"
