"""The SQL store's single writer: group commit, a savepoint per job, cancelled callers.

These test :class:`kernal.storage.writer.WriteQueue` as the SQL store drives it (on SQLite and
PostgreSQL), not the :class:`~kernal.storage.base.Store` contract: another backend need not
batch its writes at all.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from kernal.storage import ConflictError, NewShare, ShareOutcome, TrainerReportRecord
from kernal.storage.schema import shared_patterns
from kernal.storage.sql import SqlStore
from tests.storage.test_store_contract import T0, pattern


class WriterGate:
    """Holds the store's writer thread inside a job until released, so that everything submitted
    meanwhile is queued and then committed as one batch."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.entered = threading.Event()
        self.release = threading.Event()
        self.task: asyncio.Task[None] | None = None

    def _hold(self, _conn: sa.Connection) -> None:
        self.entered.set()
        self.release.wait(10)

    async def __aenter__(self) -> WriterGate:
        self.task = asyncio.create_task(self.store._write(self._hold))
        assert await asyncio.to_thread(self.entered.wait, 10)
        return self

    async def wait_queued(self, n: int) -> None:
        for _ in range(5000):
            if self.store._writes.pending() >= n:
                return
            await asyncio.sleep(0.001)
        raise AssertionError(f"{n} jobs were not queued in time")

    async def __aexit__(self, *exc_info: object) -> None:
        self.release.set()
        assert self.task is not None
        await self.task


async def test_concurrent_shares_are_group_committed(store: SqlStore) -> None:
    before = store.batches_committed
    results = await asyncio.gather(*(store.add_pattern(pattern(f"p{i}")) for i in range(200)))
    assert set(results) == {ShareOutcome.CREATED}
    assert (await store.counts()).shared_patterns == 200
    assert store.batches_committed - before < 200  # writes shared transactions


async def test_trainer_reports_queued_together_are_one_batch(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "TRAINER_REPORTS_KEPT", 4)
    before = store.batches_committed
    async with WriterGate(store) as gate:
        tasks = [
            asyncio.create_task(
                store.add_trainer_report(TrainerReportRecord(f"ai{i % 3}", T0 + i, i / 100))
            )
            for i in range(30)
        ]
        await gate.wait_queued(len(tasks))
    await asyncio.gather(*tasks)
    assert store.batches_committed - before == 2  # the gate's batch, then all 30 reports
    kept = await store.trainer_reports()
    assert len(kept) == 12  # the newest 4 of each of the 3 trainers
    assert [r.accuracy for r in kept if r.ai_id == "ai0"] == [0.18, 0.21, 0.24, 0.27]


async def test_failing_job_in_a_batch_fails_alone(store: SqlStore) -> None:
    await store.add_pattern(pattern("taken", "alice"))
    before = store.batches_committed
    async with WriterGate(store) as gate:
        tasks = [asyncio.create_task(store.add_pattern(pattern(f"p{i}", "bob"))) for i in range(10)]
        tasks.insert(5, asyncio.create_task(store.add_pattern(pattern("taken", "bob"))))
        tasks += [asyncio.create_task(store.add_pattern(pattern(f"q{i}"))) for i in range(10)]
        await gate.wait_queued(len(tasks))
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert store.batches_committed - before == 2  # the gate's batch, then all of these
    assert isinstance(results[5], ConflictError)
    assert results[:5] + results[6:] == [ShareOutcome.CREATED] * 20
    assert (await store.counts()).shared_patterns == 21
    assert (await store.get_pattern("taken")) == pattern("taken", "alice")


async def test_savepoint_undoes_only_the_failing_job(store: SqlStore) -> None:
    def insert(pid: str, fail: bool) -> Callable[[sa.Connection], None]:
        def job(conn: sa.Connection) -> None:
            conn.execute(
                shared_patterns.insert().values(
                    pattern_id=pid, pattern_data="{}", contributor="x", timestamp=T0
                )
            )
            if fail:
                raise RuntimeError(f"{pid} failed after writing")

        return job

    before = store.batches_committed
    async with WriterGate(store) as gate:
        first = asyncio.create_task(store._write(insert("a", False)))
        failing = asyncio.create_task(store._write(insert("b", True)))
        last = asyncio.create_task(store._write(insert("c", False)))
        await gate.wait_queued(3)
    await first
    with pytest.raises(RuntimeError, match="b failed"):
        await failing
    await last
    assert store.batches_committed - before == 2
    assert [await store.get_pattern(p) is not None for p in "abc"] == [True, False, True]


async def test_cancelled_caller_does_not_break_the_writer(store: SqlStore) -> None:
    async with WriterGate(store) as gate:
        task = asyncio.create_task(store.add_pattern(pattern("p")))
        await gate.wait_queued(1)
        task.cancel()
    assert await store.add_pattern(pattern("q")) is ShareOutcome.CREATED
    assert task.cancelled()
    # Submitted before the cancel: the write itself still happened.
    assert await store.get_pattern("p") == pattern("p")


async def test_shares_queued_together_are_stored_in_one_statement_each_way(
    store: SqlStore,
) -> None:
    """A run of plain shares is one lookup and one insert (and one of their data sizes); its
    outcomes are still per share: the same id twice from its author is a duplicate, from
    another AI a conflict that writes nothing, and shares of another kind or any other job
    keep their place in the batch."""
    await store.add_pattern(pattern("taken", "alice"))
    statements: list[str] = []
    engine = store._require_engine()

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement.split()[0].upper())

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        async with WriterGate(store) as gate:
            calls = [store.add_pattern(pattern(f"p{i}", "bob")) for i in range(50)]
            calls.append(store.add_pattern(pattern("p7", "bob")))  # resent in the same batch
            calls.append(store.add_pattern(pattern("taken", "bob")))  # someone else's id
            calls.append(store.add_pattern(pattern("p8", "carol")))  # taken earlier in the batch
            tasks = [asyncio.create_task(call) for call in calls]
            await gate.wait_queued(len(tasks))
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert results[:50] == [ShareOutcome.CREATED] * 50
    assert results[50] is ShareOutcome.DUPLICATE
    assert isinstance(results[51], ConflictError) and "'alice'" in str(results[51])
    assert isinstance(results[52], ConflictError) and "'bob'" in str(results[52])
    assert statements.count("INSERT") == 2 and statements.count("SELECT") == 1
    assert (await store.counts()).shared_patterns == 51
    assert (await store.get_pattern("p8")) == pattern("p8", "bob")


async def test_runs_of_shares_are_one_job_each_and_commit_with_their_neighbours(
    store: SqlStore,
) -> None:
    """Each ``add_shares`` is one job with one future; jobs of many shares queued together
    (and single shares beside them) still commit in one transaction, counted as their writes."""
    async with WriterGate(store) as gate:
        runs = [
            asyncio.create_task(
                store.add_shares([NewShare(pattern(f"r{n}-{i}", "bob")) for i in range(20)])
            )
            for n in range(5)
        ]
        alone = asyncio.create_task(store.add_pattern(pattern("alone", "bob")))
        await gate.wait_queued(101)  # writes, not jobs
        before = store.batches_committed
    results = await asyncio.gather(*runs)
    assert await alone is ShareOutcome.CREATED
    assert all(result == [ShareOutcome.CREATED] * 20 for result in results)
    assert store.batches_committed - before == 2  # the gate's own, then all of these
    assert (await store.counts()).shared_patterns == 101


async def test_a_run_of_shares_gets_the_commit_error_for_each_share(store: SqlStore) -> None:
    await store.close()
    results = await store.add_shares([NewShare(pattern("p1")), NewShare(pattern("p2"))])
    assert len(results) == 2 and all(isinstance(r, RuntimeError) for r in results)


async def _wait_lingering(store: SqlStore, writes: int) -> None:
    """Until the writer holds ``writes`` writes while it waits for more."""
    for _ in range(5000):
        if store._writes.lingering == writes:
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"the writer did not wait with {writes} writes")


async def _prime_usual_batch(store: SqlStore, writes: int) -> None:
    """Commit one batch of ``writes`` shares, so the writer takes that as the load's usual batch."""
    async with WriterGate(store) as gate:
        run = asyncio.create_task(
            store.add_shares([NewShare(pattern(f"usual-{i}", "bob")) for i in range(writes)])
        )
        await gate.wait_queued(writes)
    assert await run == [ShareOutcome.CREATED] * writes


async def test_under_load_a_small_batch_waits_for_the_writes_that_usually_come_with_it(
    store: SqlStore,
) -> None:
    """Group commit sized by load: after batches of 50 writes, one share waits (lingers) for
    more instead of paying a commit alone; once its usual company is queued, all of it commits
    as one transaction, and each share is ACKed only then."""
    await _prime_usual_batch(store, 50)
    store._writes.linger = 60.0  # far longer than the test: only the company ends the wait
    before = store.batches_committed
    first = asyncio.create_task(store.add_pattern(pattern("first", "bob")))
    await _wait_lingering(store, 1)  # taken by the writer, which now waits for more
    assert not first.done() and store.batches_committed == before
    rest = await store.add_shares([NewShare(pattern(f"rest-{i}", "bob")) for i in range(49)])
    assert rest == [ShareOutcome.CREATED] * 49
    assert await first is ShareOutcome.CREATED
    assert store.batches_committed - before == 1
    assert (await store.counts()).shared_patterns == 100


async def test_a_light_load_never_waits_and_closing_ends_a_wait(store: SqlStore) -> None:
    """Single writes with nothing usual about bigger batches commit at once, whatever the
    linger; a share lingering when the store closes is committed by the close."""
    store._writes.linger = 60.0
    async with asyncio.timeout(30):  # a hang, not a measure: the linger is 60 s
        for i in range(3):
            assert await store.add_pattern(pattern(f"light-{i}", "bob")) is ShareOutcome.CREATED
    await _prime_usual_batch(store, 50)
    lingering = asyncio.create_task(store.add_pattern(pattern("lingering", "bob")))
    await _wait_lingering(store, 1)
    async with asyncio.timeout(30):
        await store.close()
        assert await lingering is ShareOutcome.CREATED
