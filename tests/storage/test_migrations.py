"""The Alembic migrations: they build exactly ``kernal.storage.schema``, re-run as a no-op, and
downgrade cleanly, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from kernal.storage import ItemKind, RatingRecord, StoredToken, Vote
from kernal.storage.schema import (
    collaborations,
    feedback,
    metadata,
    shared_components,
    shared_patterns,
)
from kernal.storage.sql import MIGRATIONS_DIR, SqlStore
from tests.storage.conftest import PG_URL, Backend

HEAD = "0009_data_sizes"
TABLES = {
    "shared_patterns",
    "shared_components",
    "ais",
    "tokens",
    "collaborations",
    "feedback",
    "stats_snapshots",
    "trainer_reports",
    "component_recipients",
    "token_changes",
    "feedback_votes",
    "data_sizes",
}


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config(output_buffer=io.StringIO())
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def schema_differences(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        differences: list[object] = compare_metadata(context, metadata)
        return differences


def table_names(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        revision: str | None = MigrationContext.configure(conn).get_current_revision()
        return revision


def test_single_head() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [HEAD]


async def test_upgrade_head_matches_schema(backend: Backend) -> None:
    async with backend.new_store() as store:
        engine = store.create_engine()
    try:
        assert table_names(engine) == TABLES | {"alembic_version"}
        assert current_revision(engine) == HEAD
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


async def test_upgrade_twice_is_a_no_op(backend: Backend) -> None:
    async with backend.new_store() as store:
        await store.set_token_hash("bob", "h", 1.0)
        engine = store.create_engine()
    try:
        indexes_before = {t: sa.inspect(engine).get_indexes(t) for t in TABLES}
        async with backend.new_store() as store:  # runs the upgrade again
            assert await store.get_token_hash("bob") == "h"
        assert {t: sa.inspect(engine).get_indexes(t) for t in TABLES} == indexes_before
        with engine.connect() as conn:
            versions = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
        assert versions == [(HEAD,)]
    finally:
        engine.dispose()


async def test_downgrade_base_then_upgrade_again(backend: Backend) -> None:
    async with backend.new_store() as store:
        engine = store.create_engine()
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert table_names(engine) == {"alembic_version"}
        assert current_revision(engine) is None
        async with backend.new_store():
            pass
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


NEW_IN_0002 = {
    "shared_patterns": {"ix_shared_patterns_timestamp"},
    "shared_components": {"ix_shared_components_timestamp"},
    "collaborations": {"ix_collaborations_started_at", "ix_collaborations_status_started_at"},
}


RENAMED_IN_0008 = {
    "ix_shared_patterns_timestamp": "ix_shared_patterns_listing",
    "ix_shared_components_timestamp": "ix_shared_components_listing",
}


def index_names(engine: sa.Engine, table: str) -> set[str]:
    return {str(index["name"]) for index in sa.inspect(engine).get_indexes(table)}


async def test_downgrade_0002_drops_its_indexes(backend: Backend) -> None:
    async with backend.new_store() as store:
        engine = store.create_engine()
    try:
        for table, names in NEW_IN_0002.items():
            assert {RENAMED_IN_0008.get(name, name) for name in names} <= index_names(engine, table)
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0001_initial")
        assert current_revision(engine) == "0001_initial"
        for table, names in NEW_IN_0002.items():
            assert not (names | set(RENAMED_IN_0008.values())) & index_names(engine, table)
        assert "ix_collaborations_status" in index_names(engine, "collaborations")  # restored
        async with backend.new_store():  # upgrades again
            pass
        assert current_revision(engine) == HEAD
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


NEWEST_FIRST = [
    (shared_patterns, "ix_shared_patterns_listing", None),
    (shared_components, "ix_shared_components_listing", None),
    (collaborations, "ix_collaborations_started_at", None),
    (collaborations, "ix_collaborations_status_started_at", "completed"),
]


@pytest.mark.parametrize(("table", "index", "status"), NEWEST_FIRST)
async def test_newest_first_queries_read_an_index_without_sorting(
    backend: Backend, table: sa.Table, index: str, status: str | None
) -> None:
    """The store's ORDER BY (time then id, both descending) is read straight off the index."""
    columns = list(next(i for i in table.indexes if i.name == index).columns)
    time, key = columns[status is not None :][:2]  # after the status, if any
    query = sa.select(table).order_by(time.desc(), key.desc()).limit(5)
    if status is not None:
        query = query.where(table.c.status == status)
    async with backend.new_store() as store:
        engine = store.create_engine()
    try:
        with engine.begin() as conn:
            sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
            if backend.name == "sqlite":
                plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
            else:
                # Empty tables: without this the planner rightly prefers a sequential scan.
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
                plan = [row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}")]
    finally:
        engine.dispose()
    text = "\n".join(plan)
    assert index in text
    assert "TEMP B-TREE" not in text  # SQLite's sort step
    assert "Sort" not in text  # PostgreSQL's


def test_env_without_a_connection_uses_sqlalchemy_url(tmp_path: Path) -> None:
    """``alembic`` used by hand: env.py builds its own engine from ``sqlalchemy.url``."""
    path = tmp_path / "manual.db"
    config = alembic_config()
    config.set_main_option("sqlalchemy.url", str(path))
    command.upgrade(config, "head")
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        assert current_revision(engine) == HEAD
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_offline_sql_generation(tmp_path: Path) -> None:
    config = alembic_config()
    config.set_main_option("sqlalchemy.url", "postgresql://localhost/offline")
    command.upgrade(config, "head", sql=True)
    assert isinstance(config.output_buffer, io.StringIO)
    sql = config.output_buffer.getvalue()
    assert "CREATE TABLE shared_patterns" in sql
    assert "timestamp FLOAT(53) NOT NULL" in sql
    index = "CREATE INDEX ix_shared_patterns_timestamp ON shared_patterns (timestamp, pattern_id)"
    assert index in sql


async def test_postgresql_schema_from_the_url(pg_admin: sa.Engine, pg_schema: str) -> None:
    async with SqlStore(f"{PG_URL}?schema={pg_schema}") as store:
        assert store.schema == pg_schema
        await store.set_token_hash("bob", "h", 1.0)
    assert set(sa.inspect(pg_admin).get_table_names(schema=pg_schema)) >= TABLES
    with pg_admin.connect() as conn:
        hashes = conn.exec_driver_sql(f"SELECT token_hash FROM {pg_schema}.tokens").all()
    assert hashes == [("h",)]


def tallies(engine: sa.Engine) -> dict[str, tuple[float, int]]:
    with engine.connect() as conn:
        found = conn.exec_driver_sql(
            "SELECT contributor, score_total, score_count FROM contributor_scores"
        ).all()
    return {str(row[0]): (float(row[1]), int(row[2])) for row in found}


LOGGED_FEEDBACK = [  # (kind, item, rater, score), in log order
    ("pattern", "p1", "bob", 0.5),
    ("pattern", "p1", "carol", None),  # unscored
    ("pattern", "p1", "alice", 1.0),  # self-rating
    ("component", "c1", "bob", 0.25),
    ("component", "c2", "alice", 0.75),
    ("pattern", "x", "carol", 0.125),  # alice's pattern x
    ("component", "x", "carol", 0.5),  # bob's component x
    ("component", "x", "bob", 1.0),  # self-rating
    ("pattern", "gone", "bob", 1.0),  # no such item
    ("component", "c1", "bob", 0.0),  # bob again, on c1: the latest score wins in 0005
    ("component", "c1", "bob", None),  # ... a later unscored use does not erase it
]
TALLIES = {"alice": (0.875, 4), "bob": (0.5, 1), "carol": (0.75, 1)}  # 0003: every score


def fill_logged_feedback(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            shared_patterns.insert(),
            [
                {"pattern_id": p, "pattern_data": "{}", "contributor": ai, "timestamp": 1.0}
                for p, ai in [("p1", "alice"), ("p2", "bob"), ("x", "alice")]
            ],
        )
        conn.execute(
            shared_components.insert(),
            [
                {"component_id": c, "component_data": "{}", "contributor": ai, "timestamp": 1.0}
                for c, ai in [("c1", "alice"), ("c2", "carol"), ("x", "bob")]
            ],
        )
        conn.execute(
            feedback.insert(),
            [
                {"kind": kind, "item_id": item, "ai_id": ai, "score": score, "timestamp": 2.0 + n}
                for n, (kind, item, ai, score) in enumerate(LOGGED_FEEDBACK)
            ],
        )


async def test_0003_fills_the_tallies_and_0005_the_votes(backend: Backend) -> None:
    """0003 summed every logged score; 0005 keeps each rater's latest score per item."""
    async with backend.new_store() as store:
        engine = store.create_engine()
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0002_timestamp_indexes")
        assert "contributor_scores" not in table_names(engine)
        fill_logged_feedback(engine)
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0004_component_recipient")
        assert tallies(engine) == TALLIES
        async with backend.new_store() as store:  # upgrades to head
            assert "contributor_scores" not in table_names(engine)
            found = sorted(await store.ratings(), key=lambda r: (r.kind, r.item_id, r.rater))
            assert found == [
                RatingRecord("bob", "alice", ItemKind.COMPONENT, "c1", Vote(0.0)),
                RatingRecord("alice", "carol", ItemKind.COMPONENT, "c2", Vote(0.75)),
                RatingRecord("bob", "bob", ItemKind.COMPONENT, "x", Vote(1.0)),
                RatingRecord("carol", "bob", ItemKind.COMPONENT, "x", Vote(0.5)),
                RatingRecord("bob", "", ItemKind.PATTERN, "gone", Vote(1.0)),
                RatingRecord("alice", "alice", ItemKind.PATTERN, "p1", Vote(1.0)),
                RatingRecord("bob", "alice", ItemKind.PATTERN, "p1", Vote(0.5)),
                RatingRecord("carol", "alice", ItemKind.PATTERN, "x", Vote(0.125)),
            ]
            # carol's unscored use of p1 became a vote too: her next use is not a new one.
            result = await store.record_feedback(ItemKind.PATTERN, "p1", "carol", None, 30.0)
            assert (result.contributor, result.replaced) == ("alice", Vote())
            result = await store.record_feedback(ItemKind.PATTERN, "p2", "alice", 0.5, 31.0)
            assert (result.contributor, result.vote, result.replaced) == ("bob", Vote(0.5), None)
        with engine.begin() as conn:  # 0005's downgrade rebuilds 0003's tally from the log
            command.downgrade(alembic_config(conn), "0004_component_recipient")
        assert "feedback_votes" not in table_names(engine)
        assert tallies(engine) == {**TALLIES, "bob": (1.0, 2)}  # alice's 0.5 on p2, logged
    finally:
        engine.dispose()


async def test_0006_keeps_the_tokens_stored_before(backend: Backend) -> None:
    """Tokens from before 0006 never expire and count as the CLI's; downgrading keeps them."""
    async with backend.new_store() as store:
        await store.set_token_hash("bob", "h", 1.0)
        engine = store.create_engine()
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0004_component_recipient")
        assert "token_changes" not in table_names(engine)
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT * FROM tokens").all()
        assert [tuple(row) for row in rows] == [("bob", "h", 1.0)]
        async with backend.new_store() as store:  # upgrades again
            assert await store.get_token("bob") == StoredToken("h", None, "cli")
            assert await store.last_token_change() == 0
        assert schema_differences(engine) == []
    finally:
        engine.dispose()
