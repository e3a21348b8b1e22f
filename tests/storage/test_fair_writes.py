"""Big data costs its own client, not the others: shares commit a megabyte at a time, and a
listing reads no data it does not send (sizes kept beside the items, migration 0008)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command

from kernal.storage import ItemKind, ItemQuery, NewShare, ShareOutcome, sizes
from kernal.storage import schema as t
from kernal.storage.rows import COMPONENTS, PATTERNS
from kernal.storage.sql import SqlStore
from kernal.storage.writer import runs_within
from tests.storage.conftest import Backend
from tests.storage.test_migrations import HEAD, alembic_config
from tests.storage.test_store_contract import T0, pattern


def test_runs_within_cut_at_the_budget_and_keep_a_big_item_alone() -> None:
    assert runs_within([], 10) == []
    assert runs_within([3, 3, 3], 10) == [slice(0, 3)]
    assert runs_within([6, 6, 2, 2, 20, 1], 10) == [
        slice(0, 1),
        slice(1, 4),
        slice(4, 5),
        slice(5, 6),
    ]


async def test_a_run_of_big_shares_commits_a_run_at_a_time(store: SqlStore) -> None:
    """Past ``max_job_bytes`` of data, a run is committed in parts, one after another (other
    connections' writes commit between them); every share still gets its own outcome."""
    store.max_job_bytes = 1000
    big = [NewShare(pattern(f"big-{n}", blob="b" * 600)) for n in range(5)]
    before = store.batches_committed
    assert await store.add_shares(big) == [ShareOutcome.CREATED] * 5
    assert store.batches_committed - before == 5  # 600 bytes each: one per transaction
    small = [NewShare(pattern(f"small-{n}")) for n in range(5)]
    before = store.batches_committed
    assert await store.add_shares([*small, big[0]]) == [ShareOutcome.CREATED] * 5 + [
        ShareOutcome.DUPLICATE
    ]
    assert store.batches_committed - before == 1  # small ones together, as before
    assert (await store.counts()).shared_patterns == 10


async def test_listings_give_sizes_in_utf8_bytes_stored_or_measured(store: SqlStore) -> None:
    await store.add_pattern(pattern("ascii", text="abc"))
    await store.add_pattern(pattern("accents", text="été ✓"))
    engine = store.create_engine()
    try:
        with engine.begin() as conn:  # a row written behind the hub's back: no stored size
            conn.execute(
                t.shared_patterns.insert().values(
                    pattern_id="raw", pattern_data='{"text":"ü"}', contributor="x", timestamp=T0
                )
            )
            stored = dict(
                conn.execute(sa.select(t.data_sizes.c.item_id, t.data_sizes.c.data_size)).all()
            )
    finally:
        engine.dispose()
    expected = {
        "ascii": len(b'{"text":"abc"}'),
        "accents": len('{"text":"été ✓"}'.encode()),
        "raw": len('{"text":"ü"}'.encode()),
    }
    assert stored == {k: v for k, v in expected.items() if k != "raw"}
    entries = await store.list_items(ItemKind.PATTERN, ItemQuery(), 10, max_data=15)
    got = {e.record.item_id: (e.data_size, e.data_included) for e in entries}
    assert got == {k: (v, v <= 15) for k, v in expected.items()}
    shown = {e.record.item_id: e.record.pattern_data for e in entries if e.data_included}
    assert shown == {"ascii": {"text": "abc"}, "raw": {"text": "ü"}}


async def test_a_listing_reads_the_listing_index(store: SqlStore) -> None:
    """Every listed column but the data is in the index: SQLite reads a row only for the data
    it sends (a long value's overflow pages are never followed)."""
    if store.url.get_backend_name() != "sqlite":
        return  # PostgreSQL keeps long values out of the row anyway (TOAST)
    engine = store.create_engine()
    try:
        with engine.begin() as conn:
            for spec in (PATTERNS, COMPONENTS):
                query = sizes.listing(spec, "sqlite", 100).order_by(
                    spec.table.c.timestamp.desc(), spec.key.desc()
                )
                sql = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")
                plan = " ".join(str(row[-1]) for row in rows)
                assert f"ix_{spec.table.name}_listing" in plan
                assert "TEMP B-TREE" not in plan
    finally:
        engine.dispose()


async def test_the_migration_measures_the_items_already_stored(backend: Backend) -> None:
    async with backend.new_store() as store:
        await store.add_pattern(pattern("kept", text="abc"))
        engine = store.create_engine()
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0008_refused_merges")
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO shared_patterns (pattern_id, pattern_data, contributor, "
                    "timestamp, usage_count) VALUES ('older', '{\"a\":\"é\"}', 'x', 1.0, 0)"
                )
            )
        async with backend.new_store():  # upgrades to head
            pass
        with engine.connect() as conn:
            assert conn.scalar(sa.text("SELECT version_num FROM alembic_version")) == HEAD
            found = dict(
                conn.execute(sa.select(t.data_sizes.c.item_id, t.data_sizes.c.data_size)).all()
            )
    finally:
        engine.dispose()
    assert found == {"kept": len(b'{"text":"abc"}'), "older": len('{"a":"é"}'.encode())}
