"""Ledger ingest: 100,000 normalized tasks, then a re-upsert with 1% changed.

Prints items per second, rows actually written on the re-upsert, and the ratio
against a raw `sqlite3.executemany` upsert of the same rows into the same table
definition and indexes (created by the same migrations), measured in this run.

    python benchmarks/ledger_ingest.py [--items 100000] [--page 1000]
        [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

Targets: first load at least 0.5 x the raw speed; the re-upsert writes only the
changed 1%.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from syncd.ledger.db import create_ledger_engine, upgrade
from syncd.ledger.models import RawPayload, TaskRow
from syncd.ledger.repository import TASK_FIELDS, Ledger
from syncd.model import Priority, Status, Task

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
WORDS = [
    "migrate",
    "dns",
    "firewall",
    "vpn",
    "rotate",
    "certs",
    "patch",
    "kernel",
    "upgrade",
    "postgres",
    "audit",
    "backup",
]


def realistic_tasks(count: int, seed: int = 7) -> list[Task]:
    rng = random.Random(seed)
    tasks = []
    for n in range(count):
        repo = f"acme/repo{n % 40}"
        created = NOW - timedelta(days=rng.randint(1, 400), minutes=rng.randint(0, 1440))
        body = " ".join(rng.choices(WORDS, k=rng.randint(20, 80)))
        tasks.append(
            Task(
                source="gh",
                external_id=str(10_000_000 + n),
                key=f"{repo}#{n}",
                url=f"https://github.com/{repo}/issues/{n}",
                title=" ".join(rng.choices(WORDS, k=6)).capitalize(),
                description=body,
                status=rng.choice(list(Status)),
                status_raw=rng.choice(["open", "closed"]),
                owners=rng.sample(["alice", "bob", "carol", "dan", "erin"], k=rng.randint(0, 2)),
                reporter=rng.choice(["alice", "bob", "github:octocat"]),
                due=date(2026, 3, 1) + timedelta(days=rng.randint(-30, 60)) if n % 3 else None,
                priority=rng.choice([*Priority, None]),
                priority_raw=rng.choice(["P1", "P2", None]),
                labels=rng.sample(["bug", "P1", "infra", "client-a", "security"], k=2),
                blocked_by=[f"OPS-{rng.randint(1, 5000)}"] if n % 10 == 0 else [],
                acceptance_criteria="- DNS resolves\n- TTL restored" if n % 2 else None,
                estimate_hours=float(rng.randint(1, 40)),
                logged_hours=float(rng.randint(0, 40)),
                created_at=created,
                updated_at=created + timedelta(days=rng.randint(0, 30)),
                last_activity_at=created + timedelta(days=rng.randint(0, 30)),
                participants=["alice", "bob"],
                raw={"id": 10_000_000 + n, "number": n, "title": "x", "body": body, "labels": []},
            )
        )
    return tasks


def with_changes(tasks: list[Task], share: float, seed: int = 11) -> tuple[list[Task], int]:
    rng = random.Random(seed)
    changed = set(rng.sample(range(len(tasks)), int(len(tasks) * share)))
    out = [
        replace(t, title=t.title + " (edited)") if i in changed else t for i, t in enumerate(tasks)
    ]
    return out, len(changed)


def pages(tasks: list[Task], size: int) -> Iterator[list[Task]]:
    for start in range(0, len(tasks), size):
        yield tasks[start : start + size]


def rows_written_at(ledger: Ledger, moment: datetime) -> int:
    """Task and payload rows whose write stamp is `moment`: what a re-upsert touched."""
    with ledger.sessions() as session:
        tasks = session.scalar(select(func.count()).where(TaskRow.changed_at == moment))
        payloads = session.scalar(select(func.count()).where(RawPayload.fetched_at == moment))
    return int(tasks or 0) + int(payloads or 0)


def run_syncd(url: str, tasks: list[Task], changed: list[Task], page: int) -> dict[str, float]:
    ledger = Ledger.open(url, auto_upgrade=False)
    upgrade(ledger.engine)
    started = time.perf_counter()
    for chunk in pages(tasks, page):
        ledger.ingest_page("gh", chunk, now=NOW)
    first = time.perf_counter() - started
    later = NOW + timedelta(hours=1)
    started = time.perf_counter()
    updated = 0
    for chunk in pages(changed, page):
        updated += ledger.ingest_page("gh", chunk, now=later).updated
    second = time.perf_counter() - started
    written = rows_written_at(ledger, later)
    ledger.close()
    return {"first": first, "second": second, "updated": updated, "rows": written}


def raw_rows(tasks: list[Task]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows syncd writes, prepared for the DB-API: serialized and hashed."""
    stamp = NOW.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    task_rows, payload_rows = [], []
    for task in tasks:
        row = [_plain(getattr(task, name)) for name in TASK_FIELDS]
        task_rows.append((*row, task.content_hash(), stamp, stamp, None))
        payload_rows.append((orjson.dumps(task.raw).decode(), stamp, task.source, task.external_id))
    return task_rows, payload_rows


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return orjson.dumps(value).decode()
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Status | Priority):
        return value.value
    return value


COLUMNS = [*TASK_FIELDS, "content_hash", "first_seen_at", "changed_at", "gone_at"]
UPDATES = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[2:] if c != "first_seen_at")
TASK_UPSERT = (
    f"INSERT INTO tasks ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    f"ON CONFLICT (source, external_id) DO UPDATE SET {UPDATES} "
    "WHERE tasks.content_hash != excluded.content_hash"
)
PAYLOAD_UPSERT = (
    "INSERT INTO raw_payloads (task_id, payload, fetched_at) "
    "SELECT id, ?, ? FROM tasks WHERE source = ? AND external_id = ? "
    "ON CONFLICT (task_id) DO UPDATE SET payload = excluded.payload"
)


def migrated_sqlite(path: Path) -> sqlite3.Connection:
    """A connection to a ledger file with syncd's own tables, indexes and pragmas."""
    engine = create_ledger_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    return connection


def run_raw_sqlite(path: Path, tasks: list[Task], page: int) -> float:
    """The baseline: the same ingest done by hand with sqlite3.executemany.

    From the same Task objects: rows serialized and hashed, upserted into the same
    two tables page by page, one transaction per page.
    """
    connection = migrated_sqlite(path)
    started = time.perf_counter()
    for chunk in pages(tasks, page):
        task_rows, payload_rows = raw_rows(chunk)
        with connection:
            connection.executemany(TASK_UPSERT, task_rows)
            connection.executemany(PAYLOAD_UPSERT, payload_rows)
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def run_raw_sqlite_prebuilt(path: Path, tasks: list[Task]) -> float:
    """For reference only: one executemany of prebuilt tuples into the tasks table."""
    connection = migrated_sqlite(path)
    task_rows, _ = raw_rows(tasks)
    started = time.perf_counter()
    with connection:
        connection.executemany(TASK_UPSERT, task_rows)
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed


def fresh_postgres(base: str) -> tuple[str, Any]:
    name = f"syncd_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(base).set(database=name).render_as_string(hide_password=False), drop


def report(label: str, items: int, result: dict[str, float], changed: int) -> None:
    print(
        f"{label}: first load {items:,} items in {result['first']:.2f}s "
        f"= {items / result['first']:,.0f} items/s"
    )
    print(
        f"{label}: re-upsert with {changed:,} changed in {result['second']:.2f}s; "
        f"reported updated {int(result['updated']):,}; "
        f"task + payload rows written {int(result['rows']):,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--page", type=int, default=1000, help="tasks per ingest_page call")
    parser.add_argument("--postgres", help="a PostgreSQL URL; a throwaway database is created")
    args = parser.parse_args()

    tasks = realistic_tasks(args.items)
    changed_tasks, changed = with_changes(tasks, 0.01)
    with tempfile.TemporaryDirectory() as tmp:
        raw_prebuilt = run_raw_sqlite_prebuilt(Path(tmp) / "raw_prebuilt.db", tasks)
        raw = run_raw_sqlite(Path(tmp) / "raw.db", tasks, args.page)
        result = run_syncd(f"sqlite:///{Path(tmp) / 'syncd.db'}", tasks, changed_tasks, args.page)
    report("sqlite", args.items, result, changed)
    print(
        f"raw sqlite3.executemany, same rows and tables, same pages: {args.items / raw:,.0f} "
        f"items/s; syncd/raw = {raw / result['first']:.2f} (target >= 0.5)"
    )
    print(
        f"raw sqlite3.executemany of prebuilt tuples, tasks table only, one transaction "
        f"(reference): {args.items / raw_prebuilt:,.0f} items/s; "
        f"syncd/raw = {raw_prebuilt / result['first']:.2f}"
    )
    print(
        f"re-upsert wrote {int(result['rows']):,} rows (task + payload) for {changed:,} changed "
        f"items: {'OK, only the changed 1%' if result['rows'] == 2 * changed else 'MISS'}"
    )
    if args.postgres:
        url, drop = fresh_postgres(args.postgres)
        try:
            pg = run_syncd(url, tasks, changed_tasks, args.page)
        finally:
            drop()
        report("postgresql", args.items, pg, changed)


if __name__ == "__main__":
    main()
