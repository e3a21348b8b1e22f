"""Opening a ``hub_data.db`` left by the single-file prototype: its two tables are adopted as they
are (see ``migrations/versions/0001_initial.py``), every old row stays readable, and the store
keeps working on top of them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from kernal.storage import (
    ComponentRecord,
    ConflictError,
    ItemKind,
    PatternRecord,
    ShareOutcome,
    Vote,
    open_store,
)
from kernal.storage.schema import metadata
from tests.storage.test_migrations import HEAD

# What the prototype ran at every start.
PROTOTYPE_SCHEMA = """
CREATE TABLE IF NOT EXISTS shared_patterns (pattern_id TEXT PRIMARY KEY, pattern_data TEXT,
    contributor TEXT, timestamp REAL, usage_count INTEGER DEFAULT 0);
CREATE TABLE IF NOT EXISTS shared_components (component_id TEXT PRIMARY KEY, component_data TEXT,
    contributor TEXT, timestamp REAL, quality_score REAL, usage_count INTEGER DEFAULT 0);
"""

T = 1_600_000_000.0
PATTERNS = [
    ("p-json", '{"strategy": "retry", "n": 3}', "alice", T + 0.5, 4),
    ("p-text", "retry three times", "bob", T + 1, None),  # not JSON, NULL usage_count
    ("p-null", None, None, None, 0),  # every nullable column NULL
    ("p-list", "[1, 2]", "carol", T + 2, 1),  # JSON, but not an object
]
COMPONENTS = [
    ("c-json", '{"code": "def f(): ..."}', "alice", T, 0.8, 2),
    ("c-text", "def g(): pass", "bob", T + 3, None, None),
]


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Run ``sql`` with the stdlib driver, as a user of the sqlite3 CLI would."""
    with closing(sqlite3.connect(path, timeout=10)) as conn:
        return conn.execute(sql).fetchall()


def write_prototype_db(path: Path, *, components: bool = True) -> None:
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript(PROTOTYPE_SCHEMA)
        if not components:  # an earlier prototype had only patterns
            conn.execute("DROP TABLE shared_components")
        conn.executemany("INSERT INTO shared_patterns VALUES (?, ?, ?, ?, ?)", PATTERNS)
        if components:
            conn.executemany("INSERT INTO shared_components VALUES (?, ?, ?, ?, ?, ?)", COMPONENTS)


def snapshot(path: Path) -> dict[str, list[tuple[object, ...]]]:
    """Everything a user could see change: table definitions and their rows."""
    return {
        "definitions": query(path, "SELECT type, name, sql FROM sqlite_master ORDER BY name"),
        "patterns": query(path, "SELECT * FROM shared_patterns ORDER BY pattern_id"),
        "components": query(path, "SELECT * FROM shared_components ORDER BY component_id"),
    }


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "hub_data.db"
    write_prototype_db(path)
    yield path


async def test_old_rows_are_read_leniently(db: Path) -> None:
    async with await open_store(str(db)) as store:
        counts = await store.counts()
        assert (counts.shared_patterns, counts.shared_components) == (4, 2)
        # Newest first; SQLite sorts a NULL timestamp last.
        assert await store.recent_patterns(10) == [
            PatternRecord("p-list", {"raw": "[1, 2]"}, "carol", T + 2, 1),
            PatternRecord("p-text", {"raw": "retry three times"}, "bob", T + 1, 0),
            PatternRecord("p-json", {"strategy": "retry", "n": 3}, "alice", T + 0.5, 4),
            PatternRecord("p-null", {}, "", 0.0, 0),
        ]
        assert await store.recent_components(1) == [
            ComponentRecord("c-text", {"raw": "def g(): pass"}, "bob", T + 3, None, 0)
        ]
        assert await store.get_pattern("p-null") == PatternRecord("p-null", {}, "", 0.0, 0)
        assert await store.get_component("c-json") == ComponentRecord(
            "c-json", {"code": "def f(): ..."}, "alice", T, 0.8, 2
        )


async def test_tables_and_rows_are_kept_as_they_are(db: Path) -> None:
    before = snapshot(db)
    async with await open_store(str(db)):
        pass
    after = snapshot(db)
    assert after["patterns"] == before["patterns"] == [tuple(row) for row in sorted(PATTERNS)]
    assert after["components"] == before["components"]
    # The prototype's definitions are untouched; everything else was added next to them.
    assert set(before["definitions"]) <= set(after["definitions"])
    indexes = {name for kind, name, _sql in after["definitions"] if kind == "index"}
    assert {"ix_shared_patterns_listing", "ix_shared_components_listing"} <= indexes
    assert query(db, "SELECT version_num FROM alembic_version") == [(HEAD,)]

    # Against the latest schema, only the adopted columns' looser types and NULLs differ.
    engine = sa.create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    changes = [change for diff in differences for change in diff]
    assert changes
    assert {(change[0], change[2]) for change in changes} <= {
        (kind, table)
        for kind in ("modify_nullable", "modify_type")
        for table in ("shared_patterns", "shared_components")
    }


async def test_writes_work_on_old_rows(db: Path) -> None:
    async with await open_store(str(db)) as store:
        new = PatternRecord("p-new", {"n": 1}, "dave", T + 10)
        assert await store.add_pattern(new) is ShareOutcome.CREATED
        assert await store.get_pattern("p-new") == new
        # Old ids keep their owner: dedupe for the same contributor, conflict for another.
        assert await store.add_pattern(PatternRecord("p-json", {}, "alice", T)) is (
            ShareOutcome.DUPLICATE
        )
        with pytest.raises(ConflictError, match=r"'p-text'.*'bob'"):
            await store.add_pattern(PatternRecord("p-text", {}, "mallory", T))
        with pytest.raises(ConflictError, match="unknown contributor"):  # NULL: nobody owns it
            await store.add_pattern(PatternRecord("p-null", {}, "mallory", T))

        # A NULL usage_count counts as 0.
        result = await store.record_feedback(ItemKind.PATTERN, "p-text", "eve", 0.9, T + 11)
        assert result.usage_count == 1
        result = await store.record_feedback(ItemKind.COMPONENT, "c-text", "eve", 0.5, T + 12)
        assert (result.usage_count, result.quality_score) == (1, 0.5)
        result = await store.record_feedback(ItemKind.COMPONENT, "c-json", "eve", None, T + 13)
        assert (result.usage_count, result.quality_score) == (3, 0.8)  # the claim is kept
        assert (await store.counts()).shared_patterns == 5

    sql = "SELECT * FROM shared_patterns WHERE pattern_id IN ('p-new', 'p-text') ORDER BY 1"
    assert query(db, sql) == [
        ("p-new", '{"n":1}', "dave", T + 10, 0),
        ("p-text", "retry three times", "bob", T + 1, 1),
    ]


async def test_feedback_on_a_row_without_contributor(db: Path) -> None:
    async with await open_store(str(db)) as store:
        result = await store.record_feedback(ItemKind.PATTERN, "p-null", "eve", 0.9, T + 11)
        assert (result.usage_count, result.contributor) == (1, "")  # nobody's: no standing
        result = await store.record_feedback(ItemKind.PATTERN, "p-text", "eve", 0.5, T + 12)
        assert (result.contributor, result.vote) == ("bob", Vote(0.5))
        assert {(r.item_id, r.contributor) for r in await store.ratings()} == {
            ("p-null", ""),
            ("p-text", "bob"),
        }


async def test_reopening_is_a_no_op(db: Path) -> None:
    async with await open_store(str(db)) as store:
        await store.add_pattern(PatternRecord("p-new", {}, "dave", T + 10))
    before = snapshot(db)
    async with await open_store(str(db)) as store:
        assert (await store.counts()).shared_patterns == 5
    assert snapshot(db) == before
    assert query(db, "SELECT version_num FROM alembic_version") == [(HEAD,)]


async def test_a_missing_prototype_table_is_created(tmp_path: Path) -> None:
    path = tmp_path / "hub_data.db"
    write_prototype_db(path, components=False)
    async with await open_store(str(path)) as store:
        assert (await store.counts()).shared_patterns == 4
        component = ComponentRecord("c", {}, "alice", T)
        assert await store.add_component(component) is ShareOutcome.CREATED
    # Created with the hub's own definition (the adopted one kept the prototype's).
    assert query(path, "PRAGMA table_info(shared_components)")[1] == (
        1,
        "component_data",
        "TEXT",
        1,
        None,
        0,
    )
    assert query(path, "PRAGMA table_info(shared_patterns)")[1] == (
        1,
        "pattern_data",
        "TEXT",
        0,
        None,
        0,
    )


async def test_an_unusable_table_is_refused_and_nothing_is_changed(tmp_path: Path) -> None:
    path = tmp_path / "hub_data.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE shared_patterns (pattern_id TEXT PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO shared_patterns VALUES ('p', 'x')")
    with pytest.raises(RuntimeError, match=r"'shared_patterns'.*lacks the columns"):
        await open_store(str(path))
    # The upgrade is one transaction: it rolled back entirely.
    assert query(path, "SELECT name FROM sqlite_master") == [
        ("shared_patterns",),
        ("sqlite_autoindex_shared_patterns_1",),
    ]
    assert query(path, "SELECT * FROM shared_patterns") == [("p", "x")]
