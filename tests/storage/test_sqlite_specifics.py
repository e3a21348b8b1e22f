"""What only SQLite users see: the file's settings, the legacy tables as the sqlite3 CLI shows
them, and other processes sharing the file with a running hub."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from kernal.storage import PatternRecord, ShareOutcome
from kernal.storage.sql import SqlStore, database_url


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "hub_data.db"  # the "data" directory does not exist yet


@pytest.fixture
async def store(db_path: Path) -> AsyncIterator[SqlStore]:
    async with SqlStore(str(db_path)) as store:
        yield store


def stdlib_query(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Run ``sql`` through the stdlib driver, like a user with the sqlite3 CLI."""
    with closing(sqlite3.connect(path, timeout=10)) as conn:
        return conn.execute(sql).fetchall()


async def test_connection_settings(store: SqlStore, db_path: Path) -> None:
    async def pragma(name: str) -> object:
        return await store._read(lambda conn: conn.exec_driver_sql(f"PRAGMA {name}").scalar())

    assert await pragma("journal_mode") == "wal"
    assert await pragma("synchronous") == 2  # FULL
    assert await pragma("busy_timeout") == 10000
    assert await pragma("foreign_keys") == 1
    assert stdlib_query(db_path, "PRAGMA journal_mode") == [("wal",)]  # persistent in the file


async def test_legacy_tables_have_exactly_their_columns(store: SqlStore, db_path: Path) -> None:
    def columns(table: str) -> list[tuple[object, ...]]:
        # (name, type, notnull, default, pk)
        return [row[1:] for row in stdlib_query(db_path, f"PRAGMA table_info({table})")]

    assert columns("shared_patterns") == [
        ("pattern_id", "TEXT", 1, None, 1),
        ("pattern_data", "TEXT", 1, None, 0),
        ("contributor", "TEXT", 1, None, 0),
        ("timestamp", "FLOAT", 1, None, 0),
        ("usage_count", "INTEGER", 1, "0", 0),
    ]
    assert columns("shared_components") == [
        ("component_id", "TEXT", 1, None, 1),
        ("component_data", "TEXT", 1, None, 0),
        ("contributor", "TEXT", 1, None, 0),
        ("timestamp", "FLOAT", 1, None, 0),
        ("quality_score", "FLOAT", 0, None, 0),
        ("usage_count", "INTEGER", 1, "0", 0),
    ]


async def test_stdlib_sqlite3_reads_what_the_store_wrote(store: SqlStore, db_path: Path) -> None:
    data = {"name": "naïve ✓", "weights": [0.5, 1]}
    await store.add_pattern(PatternRecord("p1", data, "alice", 1700000000.25))
    rows = stdlib_query(db_path, "SELECT * FROM shared_patterns")
    assert rows == [("p1", '{"name":"naïve ✓","weights":[0.5,1]}', "alice", 1700000000.25, 0)]
    # The CLI's JSON functions work on it too.
    assert stdlib_query(
        db_path, "SELECT json_extract(pattern_data, '$.name') FROM shared_patterns"
    ) == [("naïve ✓",)]


WRITE_TOKEN = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=10)
with conn:
    conn.execute("INSERT INTO tokens (ai_id, token_hash, created_at) "
    "VALUES ('cli-ai', 'cli-hash', 1.0)")
conn.close()
"""

HOLD_WRITE_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO tokens (ai_id, token_hash, created_at) "
    "VALUES ('slow-ai', 'slow-hash', 2.0)")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
conn.close()
"""


async def run_python(script: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *args, stdout=asyncio.subprocess.PIPE
    )


async def test_another_process_writes_while_the_store_is_open(
    store: SqlStore, db_path: Path
) -> None:
    await store.set_token_hash("hub-ai", "hub-hash", 0.5)
    process = await run_python(WRITE_TOKEN, str(db_path))
    assert await process.wait() == 0
    assert await store.get_token_hash("cli-ai") == "cli-hash"
    assert await store.count_tokens() == 2


async def test_store_waits_for_another_writer(store: SqlStore, db_path: Path) -> None:
    process = await run_python(HOLD_WRITE_LOCK, str(db_path), "0.3")
    assert process.stdout is not None
    assert await process.stdout.readline() == b"locked\n"
    started = time.monotonic()
    outcome = await store.add_pattern(PatternRecord("p", {}, "alice", 1.0))
    assert outcome is ShareOutcome.CREATED
    assert time.monotonic() - started > 0.1  # it waited for the lock instead of failing
    assert await process.wait() == 0
    assert await store.get_token_hash("slow-ai") == "slow-hash"


def test_database_url() -> None:
    assert database_url("hub_data.db") == "sqlite:///hub_data.db"
    assert database_url("/tmp/x.db") == "sqlite:////tmp/x.db"
    assert database_url("sqlite:///rel.db") == "sqlite:///rel.db"
    assert database_url("postgresql://u@h:5432/db") == "postgresql+psycopg://u@h:5432/db"
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgresql+psycopg://h/db") == "postgresql+psycopg://h/db"


@pytest.mark.parametrize(
    ("url", "schema"),
    [
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("hub.db", "kt_x"),
        ("postgresql://h/db", "bad name;"),
        ("postgresql://h/db?schema=a", "b"),
    ],
)
def test_rejected_configurations(url: str, schema: str | None) -> None:
    with pytest.raises(ValueError):
        SqlStore(url, schema=schema)


async def test_unopened_store_refuses_calls(db_path: Path) -> None:
    store = SqlStore(str(db_path))
    with pytest.raises(RuntimeError):
        await store.count_tokens()
    await store.close()  # closing a never-opened store is a no-op
    assert not await asyncio.to_thread(db_path.exists)  # opening creates the file
