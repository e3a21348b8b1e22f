"""The contract of :class:`kernal.storage.base.Store`, run on every SQL backend."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from kernal.storage import (
    CollaborationRecord,
    CollaborationStatus,
    ComponentRecord,
    ConflictError,
    ItemKind,
    NotFoundError,
    PatternRecord,
    ShareOutcome,
    StatsSnapshot,
    TokenInfo,
)
from kernal.storage.schema import shared_patterns
from kernal.storage.sql import SqlStore
from tests.storage.conftest import Backend

T0 = 1_700_000_000.123456  # a current Unix time: checks the float keeps microseconds


def pattern(pid: str, contributor: str = "alice", ts: float = T0, **data: Any) -> PatternRecord:
    return PatternRecord(pid, data or {"kind": "test"}, contributor, ts)


def component(
    cid: str, contributor: str = "alice", ts: float = T0, quality: float | None = None
) -> ComponentRecord:
    return ComponentRecord(cid, {"code": f"def {cid}(): ..."}, contributor, ts, quality)


def collaboration(cid: str, started_at: float = T0) -> CollaborationRecord:
    return CollaborationRecord(
        collaboration_id=cid,
        request_id=f"req-{cid}",
        requester="alice",
        acceptor="bob",
        request={"task": "optimise", "params": {"depth": 3}},
        status=CollaborationStatus.ACTIVE,
        progress=0.0,
        started_at=started_at,
    )


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


class TestStoreContract:
    # ------------------------------------------------------------------ patterns & components

    async def test_pattern_created_duplicate_conflict(self, store: SqlStore) -> None:
        assert await store.add_pattern(pattern("p1", x=1)) is ShareOutcome.CREATED
        assert await store.add_pattern(pattern("p1", x=2)) is ShareOutcome.DUPLICATE
        with pytest.raises(ConflictError, match=r"'p1'.*'alice'"):
            await store.add_pattern(pattern("p1", "mallory", x=3))
        stored = await store.get_pattern("p1")
        assert stored == PatternRecord("p1", {"x": 1}, "alice", T0, 0)
        assert (await store.counts()).shared_patterns == 1

    async def test_component_created_duplicate_conflict(self, store: SqlStore) -> None:
        assert await store.add_component(component("c1", quality=0.7)) is ShareOutcome.CREATED
        assert await store.add_component(component("c1")) is ShareOutcome.DUPLICATE
        with pytest.raises(ConflictError, match=r"'c1'.*'alice'"):
            await store.add_component(component("c1", "mallory"))
        assert await store.get_component("c1") == component("c1", quality=0.7)
        assert (await store.counts()).shared_components == 1

    async def test_unknown_ids_read_as_none(self, store: SqlStore) -> None:
        assert await store.get_pattern("nope") is None
        assert await store.get_component("nope") is None
        assert await store.get_collaboration("nope") is None
        assert await store.get_token_hash("nope") is None

    async def test_json_round_trip(self, store: SqlStore) -> None:
        data = {
            "nested": {"list": [1, 2.5, None, True, {"deep": ["x"]}], "empty": {}},
            "unicode": "héllo wörld ✓ 日本語 🚀",
            'quote"key': "back\\slash\nnewline",
            "big": 2**53,
        }
        await store.add_pattern(PatternRecord("j", data, "alice", T0))
        await store.add_component(ComponentRecord("j", data, "alice", T0))
        assert (await store.get_pattern("j")) == PatternRecord("j", data, "alice", T0)
        assert (await store.get_component("j")) == ComponentRecord("j", data, "alice", T0)

    async def test_recent_ordering_and_limit(self, store: SqlStore) -> None:
        for i in (3, 1, 4, 0, 2):
            await store.add_pattern(pattern(f"p{i}", ts=T0 + i))
            await store.add_component(component(f"c{i}", ts=T0 + i))
        assert [p.pattern_id for p in await store.recent_patterns(3)] == ["p4", "p3", "p2"]
        assert [c.component_id for c in await store.recent_components(10)] == [
            "c4",
            "c3",
            "c2",
            "c1",
            "c0",
        ]
        assert await store.recent_patterns(0) == []
        counts = await store.counts()
        assert (counts.shared_patterns, counts.shared_components) == (5, 5)

    # ------------------------------------------------------------------ feedback

    async def test_feedback_on_pattern(self, store: SqlStore) -> None:
        await store.add_pattern(pattern("p"))
        first = await store.record_feedback(ItemKind.PATTERN, "p", "bob", 0.9, T0 + 1)
        second = await store.record_feedback(ItemKind.PATTERN, "p", "carol", None, T0 + 2)
        assert (first.usage_count, second.usage_count) == (1, 2)
        assert second.quality_score is None
        assert (await store.get_pattern("p")) == PatternRecord(
            "p", {"kind": "test"}, "alice", T0, 2
        )

    async def test_feedback_quality_is_mean_of_scores(self, store: SqlStore) -> None:
        await store.add_component(component("c", quality=0.99))  # the author's claim
        result = await store.record_feedback(ItemKind.COMPONENT, "c", "bob", None, T0)
        assert (result.usage_count, result.quality_score) == (1, 0.99)  # no score yet: claim kept
        result = await store.record_feedback(ItemKind.COMPONENT, "c", "bob", 0.5, T0)
        assert (result.usage_count, result.quality_score) == (2, 0.5)  # claim not in the mean
        result = await store.record_feedback(ItemKind.COMPONENT, "c", "carol", 0.75, T0)
        assert result.usage_count == 3
        assert result.quality_score == pytest.approx(0.625)
        result = await store.record_feedback(ItemKind.COMPONENT, "c", "dave", None, T0)
        assert result.usage_count == 4
        assert result.quality_score == pytest.approx(0.625)
        stored = await store.get_component("c")
        assert stored is not None
        assert stored.usage_count == 4
        assert stored.quality_score == pytest.approx(0.625)

    async def test_feedback_on_unknown_item(self, store: SqlStore) -> None:
        await store.add_pattern(pattern("x"))
        with pytest.raises(NotFoundError):
            await store.record_feedback(ItemKind.PATTERN, "missing", "bob", 1.0, T0)
        with pytest.raises(NotFoundError):  # a pattern id is not a component id
            await store.record_feedback(ItemKind.COMPONENT, "x", "bob", 1.0, T0)
        assert (await store.get_pattern("x")) == pattern("x")

    # ------------------------------------------------------------------ collaborations

    async def test_collaboration_lifecycle(self, store: SqlStore) -> None:
        record = collaboration("k1")
        await store.create_collaboration(record)
        assert await store.get_collaboration("k1") == record
        assert (await store.get_collaboration("k1")).members == ("alice", "bob")  # type: ignore[union-attr]
        with pytest.raises(ConflictError):
            await store.create_collaboration(record)
        await store.set_collaboration_progress("k1", 42.5)
        assert (await store.get_collaboration("k1")).progress == 42.5  # type: ignore[union-attr]
        ended = await store.end_collaboration(
            "k1", CollaborationStatus.COMPLETED, T0 + 5, outcome={"result": [1, 2]}
        )
        assert ended.status is CollaborationStatus.COMPLETED
        assert (ended.ended_at, ended.outcome, ended.reason) == (T0 + 5, {"result": [1, 2]}, None)
        assert ended.progress == 100.0
        assert await store.get_collaboration("k1") == ended
        with pytest.raises(NotFoundError):
            await store.end_collaboration("k1", CollaborationStatus.FAILED, T0 + 6)
        with pytest.raises(NotFoundError):
            await store.set_collaboration_progress("k1", 50.0)
        with pytest.raises(NotFoundError):
            await store.end_collaboration("unknown", CollaborationStatus.FAILED, T0)
        with pytest.raises(NotFoundError):
            await store.set_collaboration_progress("unknown", 1.0)

    async def test_collaboration_failed(self, store: SqlStore) -> None:
        await store.create_collaboration(collaboration("k"))
        await store.set_collaboration_progress("k", 30.0)
        ended = await store.end_collaboration(
            "k", CollaborationStatus.FAILED, T0 + 1, reason="peer left"
        )
        assert (ended.status, ended.reason, ended.outcome) == ("failed", "peer left", None)
        assert (ended.progress, ended.ended_at) == (30.0, T0 + 1)

    async def test_list_and_fail_active_collaborations(self, store: SqlStore) -> None:
        for i in range(4):
            await store.create_collaboration(collaboration(f"k{i}", started_at=T0 + i))
        await store.end_collaboration("k1", CollaborationStatus.COMPLETED, T0 + 10)
        everything = await store.list_collaborations()
        assert [c.collaboration_id for c in everything] == ["k3", "k2", "k1", "k0"]
        active = await store.list_collaborations(CollaborationStatus.ACTIVE, limit=2)
        assert [c.collaboration_id for c in active] == ["k3", "k2"]
        assert (await store.counts()).extra["active_collaborations"] == 3
        assert await store.fail_active_collaborations(T0 + 20, "hub restarted") == 3
        assert await store.fail_active_collaborations(T0 + 21, "again") == 0
        assert await store.list_collaborations(CollaborationStatus.ACTIVE) == []
        failed = await store.list_collaborations(CollaborationStatus.FAILED)
        assert [c.collaboration_id for c in failed] == ["k3", "k2", "k0"]
        assert all(c.reason == "hub restarted" and c.ended_at == T0 + 20 for c in failed)
        completed = await store.list_collaborations(CollaborationStatus.COMPLETED)
        assert [c.collaboration_id for c in completed] == ["k1"]

    async def test_component_completes_collaboration(self, store: SqlStore) -> None:
        await store.create_collaboration(collaboration("k"))
        outcome = await store.add_component(component("c", ts=T0 + 9), completes_collaboration="k")
        assert outcome is ShareOutcome.CREATED
        done = await store.get_collaboration("k")
        assert done is not None
        assert (done.status, done.ended_at, done.progress) == ("completed", T0 + 9, 100.0)
        assert done.outcome == {"component_id": "c"}
        assert await store.get_component("c") is not None

    async def test_component_for_unknown_or_ended_collaboration_is_not_stored(
        self, store: SqlStore
    ) -> None:
        with pytest.raises(NotFoundError):
            await store.add_component(component("c1"), completes_collaboration="unknown")
        await store.create_collaboration(collaboration("k"))
        await store.end_collaboration("k", CollaborationStatus.FAILED, T0, reason="timeout")
        with pytest.raises(NotFoundError):
            await store.add_component(component("c2"), completes_collaboration="k")
        assert await store.get_component("c1") is None
        assert await store.get_component("c2") is None
        assert (await store.counts()).shared_components == 0
        assert (await store.get_collaboration("k")).status == "failed"  # type: ignore[union-attr]

    async def test_conflicting_component_does_not_complete_collaboration(
        self, store: SqlStore
    ) -> None:
        await store.add_component(component("c", "alice"))
        await store.create_collaboration(collaboration("k"))
        with pytest.raises(ConflictError):
            await store.add_component(component("c", "bob"), completes_collaboration="k")
        assert (await store.get_collaboration("k")).status == "active"  # type: ignore[union-attr]

    # ------------------------------------------------------------------ AIs

    async def test_ai_upsert_and_touch(self, store: SqlStore) -> None:
        await store.upsert_ai("zed", "vision", ["see"], T0)
        await store.upsert_ai("amy", "nlp", ["read", "write"], T0 + 1)
        await store.upsert_ai("zed", "vision+audio", ["see", "hear"], T0 + 2)
        await store.touch_ai("amy", T0 + 3)
        await store.touch_ai("ghost", T0 + 4)  # unknown: no-op
        amy, zed = await store.list_ais()
        assert (amy.ai_id, amy.capabilities, amy.first_seen, amy.last_seen) == (
            "amy",
            ["read", "write"],
            T0 + 1,
            T0 + 3,
        )
        assert (zed.specialization, zed.capabilities) == ("vision+audio", ["see", "hear"])
        assert (zed.first_seen, zed.last_seen) == (T0, T0 + 2)
        assert (await store.counts()).extra["ais"] == 2

    # ------------------------------------------------------------------ tokens

    async def test_tokens(self, store: SqlStore) -> None:
        assert await store.count_tokens() == 0
        await store.set_token_hash("bob", "hash-b1", T0)
        await store.set_token_hash("alice", "hash-a", T0 + 1)
        await store.set_token_hash("bob", "hash-b2", T0 + 2)  # replaces
        assert await store.get_token_hash("bob") == "hash-b2"
        assert await store.list_tokens() == [TokenInfo("alice", T0 + 1), TokenInfo("bob", T0 + 2)]
        assert await store.count_tokens() == 2
        assert await store.delete_token("alice") is True
        assert await store.delete_token("alice") is False
        assert await store.get_token_hash("alice") is None
        assert await store.count_tokens() == 1

    # ------------------------------------------------------------------ stats

    async def test_stats_history(self, store: SqlStore) -> None:
        for i in range(6):
            await store.add_stats_snapshot(StatsSnapshot(T0 + i, i, 10 * i, 100 * i, i % 2))
        history = await store.stats_history()
        assert [s.connected_ais for s in history] == [0, 1, 2, 3, 4, 5]
        assert history[2] == StatsSnapshot(T0 + 2, 2, 20, 200, 0)
        newest = await store.stats_history(limit=2)
        assert [s.timestamp for s in newest] == [T0 + 4, T0 + 5]  # the newest, oldest first
        since = await store.stats_history(since=T0 + 3)
        assert [s.timestamp for s in since] == [T0 + 3, T0 + 4, T0 + 5]
        assert [s.timestamp for s in await store.stats_history(since=T0 + 1, limit=1)] == [T0 + 5]

    # ------------------------------------------------------------------ lifecycle

    async def test_data_survives_close_and_reopen(self, store: SqlStore, backend: Backend) -> None:
        await store.add_pattern(pattern("p"))
        await store.set_token_hash("bob", "h", T0)
        await store.close()
        await store.close()  # idempotent
        with pytest.raises(RuntimeError):
            await store.add_pattern(pattern("q"))
        async with backend.new_store() as reopened:
            assert await reopened.get_pattern("p") == pattern("p")
            assert await reopened.get_token_hash("bob") == "h"

    async def test_close_commits_pending_writes(self, store: SqlStore, backend: Backend) -> None:
        tasks = [asyncio.create_task(store.add_pattern(pattern(f"p{i}"))) for i in range(50)]
        await asyncio.sleep(0)  # let every task submit its job
        await store.close()
        assert all(task.done() for task in tasks)
        assert {await task for task in tasks} == {ShareOutcome.CREATED}
        async with backend.new_store() as reopened:
            assert (await reopened.counts()).shared_patterns == 50

    # ------------------------------------------------------------------ concurrency

    async def test_concurrent_shares_are_group_committed(self, store: SqlStore) -> None:
        before = store.batches_committed
        results = await asyncio.gather(*(store.add_pattern(pattern(f"p{i}")) for i in range(200)))
        assert set(results) == {ShareOutcome.CREATED}
        assert (await store.counts()).shared_patterns == 200
        assert store.batches_committed - before < 200  # writes shared transactions

    async def test_failing_job_in_a_batch_fails_alone(self, store: SqlStore) -> None:
        await store.add_pattern(pattern("taken", "alice"))
        before = store.batches_committed
        async with WriterGate(store) as gate:
            tasks = [
                asyncio.create_task(store.add_pattern(pattern(f"p{i}", "bob"))) for i in range(10)
            ]
            tasks.insert(5, asyncio.create_task(store.add_pattern(pattern("taken", "bob"))))
            tasks += [asyncio.create_task(store.add_pattern(pattern(f"q{i}"))) for i in range(10)]
            await gate.wait_queued(len(tasks))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert store.batches_committed - before == 2  # the gate's batch, then all of these
        assert isinstance(results[5], ConflictError)
        assert results[:5] + results[6:] == [ShareOutcome.CREATED] * 20
        assert (await store.counts()).shared_patterns == 21
        assert (await store.get_pattern("taken")) == pattern("taken", "alice")

    async def test_savepoint_undoes_only_the_failing_job(self, store: SqlStore) -> None:
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

    async def test_cancelled_caller_does_not_break_the_writer(self, store: SqlStore) -> None:
        async with WriterGate(store) as gate:
            task = asyncio.create_task(store.add_pattern(pattern("p")))
            await gate.wait_queued(1)
            task.cancel()
        assert await store.add_pattern(pattern("q")) is ShareOutcome.CREATED
        assert task.cancelled()
        # Submitted before the cancel: the write itself still happened.
        assert await store.get_pattern("p") == pattern("p")


class TestReceivedScores:
    """The hub's memory of how each AI's work was rated, across connections."""

    async def test_scores_are_tallied_per_contributor(self, store: SqlStore) -> None:
        await store.add_pattern(PatternRecord("p1", {}, "alice", 1.0))
        await store.add_component(ComponentRecord("c1", {}, "alice", 1.0))
        await store.add_component(ComponentRecord("c2", {}, "bob", 1.0))
        await store.record_feedback(ItemKind.COMPONENT, "c1", "bob", 0.2, 2.0)
        await store.record_feedback(ItemKind.PATTERN, "p1", "carol", 0.4, 2.0)
        await store.record_feedback(ItemKind.COMPONENT, "c1", "carol", None, 2.0)  # unscored
        await store.record_feedback(ItemKind.COMPONENT, "c2", "bob", 1.0, 2.0)  # self-rating
        tallies = await store.received_scores(["alice", "bob", "nobody"])
        assert set(tallies) == {"alice"}
        assert tallies["alice"].count == 2
        assert abs(tallies["alice"].total - 0.6) < 1e-9
        assert await store.received_scores([]) == {}
