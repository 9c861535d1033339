"""Opening the ledger: engines, SQLite pragmas, and Alembic migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DatabaseError, OperationalError

MIGRATIONS = Path(__file__).with_name("migrations")


class LedgerError(Exception):
    """The ledger cannot be used as configured (not migrated, unreachable, …)."""


class NotALedger(LedgerError):
    """`[ledger].url` names something that is not a syncd ledger (exit code 2).

    An empty file or a database without syncd's schema is never initialised
    silently: a restore gone wrong would otherwise look like a new ledger, and
    the next reconcile would chase everyone again.
    """


class LedgerReadOnly(LedgerError):
    """The ledger can be read but not written."""


def normalize_url(url: str) -> str:
    """Use psycopg 3 for a plain `postgresql://` URL."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_ledger_engine(url: str) -> Engine:
    url = normalize_url(url)
    # orjson: JSON columns (owners, labels, raw payloads) are most of the bind work.
    json_options: dict[str, Any] = {
        "json_serializer": _json_dumps,
        "json_deserializer": orjson.loads,
    }
    if make_url(url).get_backend_name() == "sqlite":
        _ensure_sqlite_parent(url)
        # `?timeout=N` in the URL sets how long to wait for a lock (seconds; default 30).
        timeout = {} if "timeout" in make_url(url).query else {"timeout": 30}
        engine = create_engine(url, connect_args=timeout, **json_options)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No server-side prepared statements: after five runs psycopg would switch a query
    # to a generic plan, and for `external_id IN (…500 values…)` that plan is a full scan.
    return create_engine(
        url, pool_pre_ping=True, connect_args={"prepare_threshold": None}, **json_options
    )


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _ensure_sqlite_parent(url: str) -> None:
    path = _sqlite_file(make_url(url))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)


def _sqlite_file(url: URL) -> Path | None:
    """The file behind a SQLite URL, plain (`sqlite:///x.db`) or URI (`file:x.db?mode=ro`)."""
    database = url.database
    if not database or database == ":memory:":
        return None
    if url.query.get("uri") == "true" and database.startswith("file:"):
        database = database.removeprefix("file:").partition("?")[0]
        return Path(database) if database and database != ":memory:" else None
    return Path(database)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Apply migrations up to `revision`; returns (before, after)."""
    before = current_revision(engine)
    command.upgrade(alembic_config(engine), revision)
    return before, current_revision(engine)


def sqlite_path(engine: Engine) -> Path | None:
    """The file of a SQLite ledger; None for PostgreSQL or an in-memory database."""
    return _sqlite_file(engine.url) if engine.dialect.name == "sqlite" else None


def refuse_foreign_file(engine: Engine) -> None:
    """An existing SQLite file must already be a syncd ledger; a missing one is created."""
    path = sqlite_path(engine)
    if path is None or not path.exists():
        return
    if path.stat().st_size == 0:
        raise NotALedger(
            f"the ledger file {path} is empty (0 bytes); if it is meant to be a new ledger, "
            "initialise it with `syncd db upgrade`, otherwise restore the real one"
        )
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
    except OperationalError:
        raise  # readable in principle (locked, read-only, …): reported as such
    except DatabaseError:
        raise NotALedger(
            f"the ledger file {path} is not an SQLite database; point [ledger].url at the "
            "ledger, or remove the file and run `syncd db upgrade` to start a new one"
        ) from None
    if "alembic_version" not in tables:
        raise NotALedger(
            f"the ledger file {path} holds no syncd schema; point [ledger].url at the ledger, "
            "or initialise this file with `syncd db upgrade`"
        )


def require_writable(engine: Engine) -> None:
    """Fail before any work when the ledger cannot be written (a read-only SQLite file)."""
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL reports its own permission errors on the first write
    try:
        with engine.connect() as connection:  # a write that changes nothing, rolled back
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = version_num")
            connection.rollback()
    except OperationalError as error:
        if "readonly" not in str(error.orig):
            raise
        raise LedgerReadOnly(
            f"the ledger file {sqlite_path(engine)} is read-only: syncd needs to write to it "
            "and to its directory (for the -wal and -shm files); fix their permissions"
        ) from None


def ensure_current(engine: Engine) -> None:
    """Upgrade a SQLite ledger automatically; ask for `syncd db upgrade` elsewhere."""
    refuse_foreign_file(engine)
    current, head = current_revision(engine), head_revision(engine)
    if current == head:
        return
    if engine.dialect.name == "sqlite":
        upgrade(engine)
        return
    raise LedgerError(
        f"the ledger at {engine.url.render_as_string(hide_password=True)} is at schema "
        f"revision {current or 'none'}, this syncd needs {head}: run `syncd db upgrade`"
    )
