"""The contract of :class:`kernal.storage.base.Store`: one abstract test class, one subclass per
backend (as Flower's ``linkstate_test.py`` does).

To run the whole contract on a new backend, subclass :class:`StoreContract` in a module named
``test_*.py`` with a class named ``Test*`` and implement :meth:`StoreContract.store_factory`::

    class TestMemoryStore(StoreContract):
        def store_factory(self, request: pytest.FixtureRequest) -> StoreFactory:
            return MemoryStore  # hypothetically: every call must reach the same database

The tests use only the :class:`Store` interface. What is specific to the SQL backend lives in
``test_writer.py`` (group commit), ``test_sqlite_specifics.py``, ``test_migrations.py`` and
``test_legacy_database.py``.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from kernal.protocol.messages import RequestTerms
from kernal.storage import (
    CollaborationQuery,
    CollaborationRecord,
    CollaborationStatus,
    ComponentRecord,
    ConflictError,
    FeedbackScore,
    ItemKind,
    ItemQuery,
    ItemVote,
    NewShare,
    NotFoundError,
    PatternRecord,
    RatingRecord,
    ShareOutcome,
    StatsSnapshot,
    Store,
    StoredToken,
    TokenAction,
    TokenChange,
    TokenInfo,
    TrainerReportRecord,
    Vote,
)
from kernal.storage.sql import SqlStore
from tests.storage.conftest import PG_URL

T0 = 1_700_000_000.123456  # a current Unix time: checks the float keeps microseconds

#: Makes an unopened store; every call within one test reaches the same database.
StoreFactory = Callable[[], Store]


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
        request=RequestTerms(
            request_id=f"req-{cid}", expertise_offered=["tcp"], seeking_expertise=["optimise"]
        ),
        status=CollaborationStatus.ACTIVE,
        progress=0.0,
        started_at=started_at,
    )


@contextlib.asynccontextmanager
async def opened(store: Store) -> AsyncIterator[Store]:
    """``store``, opened, closed on the way out."""
    await store.open()
    try:
        yield store
    finally:
        await store.close()


class StoreContract(abc.ABC):
    """Every test of the :class:`Store` contract. Not collected itself (pytest collects only
    ``Test*`` classes); a subclass per backend runs all of them on that backend."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # pytest silently skips an abstract class: a backend class without a factory would
        # pass by running nothing. Make it a collection error instead. (ABCMeta sets
        # __abstractmethods__ only after this hook runs, so look for them directly.)
        names = {name for klass in cls.__mro__ for name in vars(klass) if not name.startswith("__")}
        missing = sorted(
            name for name in names if getattr(getattr(cls, name), "__isabstractmethod__", False)
        )
        if cls.__name__.startswith("Test") and missing:
            raise TypeError(f"{cls.__name__} must implement {', '.join(missing)} for the contract")

    @abc.abstractmethod
    def store_factory(self, request: pytest.FixtureRequest) -> StoreFactory:
        """For one test: a factory of unopened stores on one fresh, empty database, which every
        call reaches (a test reopens it). Fixtures such as ``tmp_path`` come from ``request``;
        one that cannot be had (a server down) must fail the test, never skip it."""

    @pytest.fixture
    def new_store(self, request: pytest.FixtureRequest) -> StoreFactory:
        return self.store_factory(request)

    @pytest.fixture
    async def store(self, new_store: StoreFactory) -> AsyncIterator[Store]:
        """An open store on the test's fresh database, closed after the test."""
        async with opened(new_store()) as store:
            yield store

    # ------------------------------------------------------------------ patterns & components

    async def test_pattern_created_duplicate_conflict(self, store: Store) -> None:
        assert await store.add_pattern(pattern("p1", x=1)) is ShareOutcome.CREATED
        assert await store.add_pattern(pattern("p1", x=2)) is ShareOutcome.DUPLICATE
        with pytest.raises(ConflictError, match=r"'p1'.*'alice'"):
            await store.add_pattern(pattern("p1", "mallory", x=3))
        stored = await store.get_pattern("p1")
        assert stored == PatternRecord("p1", {"x": 1}, "alice", T0, 0)
        assert (await store.counts()).shared_patterns == 1

    async def test_data_given_as_text_is_stored_as_given(self, store: Store) -> None:
        text = '{"w" : [1e15, 2E-3], "s": "caf\\u00e9"}'  # not how the store would encode it
        record = PatternRecord("p", json.loads(text), "alice", T0)
        assert await store.add_pattern(record, data_text=text) is ShareOutcome.CREATED
        component = ComponentRecord("c", {"k": [1]}, "alice", T0)
        assert await store.add_component(component, data_text='{"k":[1]}') is ShareOutcome.CREATED
        assert (await store.get_pattern("p")) == record
        assert (await store.get_component("c")) == component

    async def test_add_shares_answers_each_share_as_alone(self, store: Store) -> None:
        await store.add_pattern(pattern("taken", "alice"))
        text = '{"w" : [1e15]}'
        results = await store.add_shares(
            [
                NewShare(pattern("p1", "bob"), data_text=None),
                NewShare(PatternRecord("p2", {"w": [1e15]}, "bob", T0), data_text=text),
                NewShare(pattern("p1", "bob")),  # resent in the same run
                NewShare(pattern("taken", "bob")),  # someone else's id
                NewShare(component("c1", "bob")),
                NewShare(component("c2", "bob"), recipient="carol"),
                NewShare(component("c1", "carol")),  # taken earlier in the run
            ]
        )
        assert results[:3] == [ShareOutcome.CREATED, ShareOutcome.CREATED, ShareOutcome.DUPLICATE]
        assert isinstance(results[3], ConflictError) and "'alice'" in str(results[3])
        assert results[4:6] == [ShareOutcome.CREATED, ShareOutcome.CREATED]
        assert isinstance(results[6], ConflictError) and "'bob'" in str(results[6])
        assert await store.add_shares([]) == []
        counts = await store.counts()
        assert (counts.shared_patterns, counts.shared_components) == (3, 2)
        assert await store.get_pattern("p2") == PatternRecord("p2", {"w": [1e15]}, "bob", T0)
        assert await store.recipient_of("c2") == "carol"
        assert await store.get_pattern("taken") == pattern("taken", "alice")

    async def test_a_component_shared_with_one_ai_is_not_listed(self, store: Store) -> None:
        public = ComponentRecord("public", {}, "alice", T0)
        private = ComponentRecord("private", {"for": "bob"}, "alice", T0 + 1)
        await store.add_component(public)
        assert await store.add_component(private, recipient="bob") is ShareOutcome.CREATED
        assert await store.add_component(private, recipient="bob") is ShareOutcome.DUPLICATE
        assert (await store.recipient_of("private"), await store.recipient_of("public")) == (
            "bob",
            None,
        )
        assert await store.recent_components(10) == [public]
        assert await store.get_component("private") == private  # the hub still finds it
        assert (await store.counts()).shared_components == 2

    async def test_component_created_duplicate_conflict(self, store: Store) -> None:
        assert await store.add_component(component("c1", quality=0.7)) is ShareOutcome.CREATED
        assert await store.add_component(component("c1")) is ShareOutcome.DUPLICATE
        with pytest.raises(ConflictError, match=r"'c1'.*'alice'"):
            await store.add_component(component("c1", "mallory"))
        assert await store.get_component("c1") == component("c1", quality=0.7)
        assert (await store.counts()).shared_components == 1

    async def test_unknown_ids_read_as_none(self, store: Store) -> None:
        assert await store.get_pattern("nope") is None
        assert await store.get_component("nope") is None
        assert await store.get_collaboration("nope") is None
        assert await store.get_token_hash("nope") is None

    async def test_json_round_trip(self, store: Store) -> None:
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

    async def test_list_items_filters_cursor_and_data_limit(self, store: Store) -> None:
        for i in range(5):
            await store.add_pattern(pattern(f"p{i}", "alice" if i % 2 else "bob", T0 + i, n=i))
        await store.add_pattern(pattern("p-tie", "alice", T0 + 2, note="Café_50%"))
        await store.add_pattern(PatternRecord("big", {"blob": "é" * 1000}, "carol", T0 + 9))

        async def ids(query: ItemQuery, limit: int = 10) -> list[str]:
            found = await store.list_items(ItemKind.PATTERN, query, limit, max_data=100)
            return [entry.record.item_id for entry in found]

        assert await ids(ItemQuery()) == ["big", "p4", "p3", "p2", "p-tie", "p1", "p0"]
        assert await ids(ItemQuery(contributor="alice")) == ["p3", "p-tie", "p1"]
        assert await ids(ItemQuery(since=T0 + 2, until=T0 + 4)) == ["p3", "p2", "p-tie"]
        assert await ids(ItemQuery(search="CAFé_50%")) == ["p-tie"]  # ASCII in any case
        assert await ids(ItemQuery(search="_5")) == ["p-tie"]  # LIKE wildcards are literal
        assert await ids(ItemQuery(before=(T0 + 2, "p2"))) == ["p-tie", "p1", "p0"]
        assert await ids(ItemQuery(item_id="p3")) == ["p3"]
        assert await ids(ItemQuery(), limit=2) == ["big", "p4"]
        [big, small] = await store.list_items(ItemKind.PATTERN, ItemQuery(), 2, max_data=100)
        # 1000 two-byte characters: over the limit by bytes, left out, its size still known.
        assert (big.data_included, big.data_size, big.record.pattern_data) == (False, 2011, {})
        assert (small.data_included, small.record.pattern_data) == (True, {"n": 4})
        assert small.data_size == len(json.dumps({"n": 4}, separators=(",", ":")))

    async def test_list_items_leaves_out_components_shared_with_one_ai(self, store: Store) -> None:
        await store.add_component(component("c-all"))
        await store.add_component(component("c-one", ts=T0 + 1), recipient="bob")
        for query in (ItemQuery(), ItemQuery(item_id="c-one"), ItemQuery(contributor="alice")):
            found = await store.list_items(ItemKind.COMPONENT, query, 10, max_data=1000)
            assert "c-one" not in [entry.record.item_id for entry in found], query

    async def test_list_collaborations_page(self, store: Store) -> None:
        for i in range(4):
            record = collaboration(f"col-{i}", started_at=T0 + i)
            if i == 2:
                record = dataclasses.replace(record, requester="carol", acceptor="alice")
            await store.create_collaboration(record)
        await store.end_collaboration("col-1", CollaborationStatus.FAILED, T0 + 5, reason="x")

        async def ids(query: CollaborationQuery, limit: int = 10) -> list[str]:
            return [c.collaboration_id for c in await store.list_collaborations_page(query, limit)]

        assert await ids(CollaborationQuery()) == ["col-3", "col-2", "col-1", "col-0"]
        assert await ids(CollaborationQuery(status=CollaborationStatus.FAILED)) == ["col-1"]
        assert await ids(CollaborationQuery(member="carol")) == ["col-2"]
        assert await ids(CollaborationQuery(member="bob")) == ["col-3", "col-1", "col-0"]
        assert await ids(CollaborationQuery(since=T0 + 1, until=T0 + 3)) == ["col-2", "col-1"]
        assert await ids(CollaborationQuery(search="REQ-COL-3")) == ["col-3"]
        assert await ids(CollaborationQuery(before=(T0 + 2, "col-2"))) == ["col-1", "col-0"]
        assert await ids(CollaborationQuery(), limit=1) == ["col-3"]

    async def test_recent_ordering_and_limit(self, store: Store) -> None:
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

    async def test_items_by_kind(self, store: Store) -> None:
        """get_item and recent_items are what the per-kind methods return; ids are per kind."""
        await store.add_pattern(pattern("x", y=1))
        await store.add_component(component("x", quality=0.5))
        await store.add_pattern(pattern("p", ts=T0 + 1))
        found = await store.get_item(ItemKind.PATTERN, "x")
        assert found == pattern("x", y=1) == await store.get_pattern("x")
        assert (found.kind, found.item_id) == (ItemKind.PATTERN, "x")
        found = await store.get_item(ItemKind.COMPONENT, "x")
        assert found == component("x", quality=0.5) == await store.get_component("x")
        assert (found.kind, found.item_id) == (ItemKind.COMPONENT, "x")
        assert await store.get_item(ItemKind.PATTERN, "nope") is None
        assert await store.get_item(ItemKind.COMPONENT, "p") is None
        assert await store.recent_items(ItemKind.PATTERN, 10) == [
            pattern("p", ts=T0 + 1),
            pattern("x", y=1),
        ]
        assert await store.recent_items(ItemKind.PATTERN, 1) == await store.recent_patterns(1)
        assert await store.recent_items(ItemKind.COMPONENT, 10) == await store.recent_components(10)
        assert await store.recent_items(ItemKind.COMPONENT, 0) == []
        assert await store.recent_items(ItemKind.COMPONENT, -1) == []

    # ------------------------------------------------------------------ feedback
    # One vote per rater per item: a rater's new rating replaces its old one.

    async def test_feedback_on_pattern(self, store: Store) -> None:
        await store.add_pattern(pattern("p"))
        first = await store.record_feedback(ItemKind.PATTERN, "p", "bob", 0.9, T0 + 1)
        second = await store.record_feedback(ItemKind.PATTERN, "p", "carol", None, T0 + 2)
        assert (first.usage_count, second.usage_count) == (1, 2)
        assert second.quality_score is None
        assert (await store.get_pattern("p")) == PatternRecord(
            "p", {"kind": "test"}, "alice", T0, 2
        )

    async def test_feedback_quality_is_mean_of_the_raters_scores(self, store: Store) -> None:
        await store.add_component(component("c", quality=0.99))  # the author's claim
        result = await store.record_feedback(ItemKind.COMPONENT, "c", "bob", None, T0)
        assert (result.usage_count, result.quality_score) == (1, 0.99)  # no score yet: claim kept
        result = await store.record_feedback(ItemKind.COMPONENT, "c", "bob", 0.5, T0)
        assert (result.usage_count, result.quality_score) == (1, 0.5)  # same rater: one use
        result = await store.record_feedback(ItemKind.COMPONENT, "c", "carol", 0.75, T0)
        assert result.usage_count == 2
        assert result.quality_score == pytest.approx(0.625)
        result = await store.record_feedback(ItemKind.COMPONENT, "c", "dave", None, T0)
        assert result.usage_count == 3
        assert result.quality_score == pytest.approx(0.625)
        stored = await store.get_component("c")
        assert stored is not None
        assert stored.usage_count == 3
        assert stored.quality_score == pytest.approx(0.625)

    async def test_a_flood_from_one_rater_is_one_vote(self, store: Store) -> None:
        await store.add_component(component("c"))
        await store.record_feedback(ItemKind.COMPONENT, "c", "bob", 1.0, T0)
        for n in range(200):
            result = await store.record_feedback(ItemKind.COMPONENT, "c", "mallory", 0.0, T0 + n)
        assert (result.usage_count, result.quality_score) == (2, 0.5)
        ratings = sorted(await store.ratings(), key=lambda rating: rating.rater)
        assert ratings == [
            RatingRecord("bob", "alice", ItemKind.COMPONENT, "c", Vote(1.0)),
            RatingRecord("mallory", "alice", ItemKind.COMPONENT, "c", Vote(0.0)),
        ]

    async def test_a_new_rating_replaces_the_old(self, store: Store) -> None:
        await store.add_component(component("c"))
        first = await store.record_feedback(ItemKind.COMPONENT, "c", "bob", 0.25, T0)
        assert (first.vote, first.replaced) == (Vote(0.25), None)
        second = await store.record_feedback(
            ItemKind.COMPONENT, "c", "bob", 0.5, T0 + 1, usefulness=0.75
        )
        assert (second.vote, second.replaced) == (Vote(0.5, 0.75), Vote(0.25))
        assert (second.usage_count, second.quality_score) == (1, 0.5)
        # A use without a rating keeps the rating.
        third = await store.record_feedback(ItemKind.COMPONENT, "c", "bob", None, T0 + 2)
        assert (third.vote, third.replaced) == (Vote(0.5, 0.75), Vote(0.5, 0.75))
        # A rating with usefulness only replaces the whole vote, score too.
        fourth = await store.record_feedback(
            ItemKind.COMPONENT, "c", "bob", None, T0 + 3, usefulness=0.0
        )
        assert fourth.vote == Vote(None, 0.0)
        assert fourth.quality_score == 0.5  # no score in any vote now: the last mean stays
        assert await store.ratings() == [
            RatingRecord("bob", "alice", ItemKind.COMPONENT, "c", Vote(None, 0.0))
        ]

    async def test_feedback_on_unknown_item(self, store: Store) -> None:
        await store.add_pattern(pattern("x"))
        with pytest.raises(NotFoundError):
            await store.record_feedback(ItemKind.PATTERN, "missing", "bob", 1.0, T0)
        with pytest.raises(NotFoundError):  # a pattern id is not a component id
            await store.record_feedback(ItemKind.COMPONENT, "x", "bob", 1.0, T0)
        assert (await store.get_pattern("x")) == pattern("x")
        assert await store.ratings() == []

    async def test_ratings_name_rater_and_contributor(self, store: Store) -> None:
        await store.add_pattern(pattern("p1", "alice"))
        await store.add_component(component("c1", "alice"))
        await store.add_component(component("p1", "bob"))  # same id, other kind
        result = await store.record_feedback(ItemKind.COMPONENT, "c1", "bob", 0.25, T0)
        assert result.contributor == "alice"
        result = await store.record_feedback(ItemKind.PATTERN, "p1", "carol", None, T0)
        assert (result.contributor, result.vote) == ("alice", Vote())
        result = await store.record_feedback(
            ItemKind.COMPONENT, "p1", "carol", None, T0, usefulness=1.0
        )
        assert result.contributor == "bob"
        found = sorted(await store.ratings(), key=lambda rating: (rating.item_id, rating.rater))
        assert found == [  # carol's unrated use of p1 is not a rating
            RatingRecord("bob", "alice", ItemKind.COMPONENT, "c1", Vote(0.25)),
            RatingRecord("carol", "bob", ItemKind.COMPONENT, "p1", Vote(None, 1.0)),
        ]

    async def test_item_votes_say_who_rated_an_item(self, store: Store) -> None:
        await store.add_component(component("c1", "alice"))
        await store.add_pattern(pattern("c1", "alice"))  # same id, other kind
        await store.record_feedback(ItemKind.COMPONENT, "c1", "bob", 0.25, 2.0)
        await store.record_feedback(ItemKind.COMPONENT, "c1", "carol", None, 3.0)  # a use only
        await store.record_feedback(ItemKind.COMPONENT, "c1", "dave", None, 4.0, usefulness=1.0)
        await store.record_feedback(ItemKind.PATTERN, "c1", "erin", 0.5, 5.0)
        await store.record_feedback(ItemKind.COMPONENT, "c1", "bob", 0.75, 6.0)  # bob again
        assert await store.item_votes(ItemKind.COMPONENT, "c1", 10) == [
            ItemVote("bob", Vote(0.75), 6.0),
            ItemVote("dave", Vote(None, 1.0), 4.0),
        ]
        assert await store.item_votes(ItemKind.COMPONENT, "c1", 1) == [
            ItemVote("bob", Vote(0.75), 6.0)
        ]
        assert await store.item_votes(ItemKind.COMPONENT, "c1", 0) == []
        assert await store.item_votes(ItemKind.PATTERN, "c1", 10) == [
            ItemVote("erin", Vote(0.5), 5.0)
        ]
        assert await store.item_votes(ItemKind.PATTERN, "nope", 10) == []

    async def test_ratings_survive_reopening(self, store: Store, new_store: StoreFactory) -> None:
        await store.add_pattern(pattern("p"))
        await store.record_feedback(ItemKind.PATTERN, "p", "bob", 0.5, T0, usefulness=0.25)
        await store.close()
        async with opened(new_store()) as reopened:
            assert await reopened.ratings() == [
                RatingRecord("bob", "alice", ItemKind.PATTERN, "p", Vote(0.5, 0.25))
            ]

    async def test_feedback_edges_say_who_rated_whom(self, store: Store) -> None:
        await store.add_pattern(PatternRecord("p1", {}, "alice", 1.0))
        await store.add_component(ComponentRecord("c1", {}, "alice", 1.0))
        await store.add_component(ComponentRecord("c2", {}, "bob", 1.0))
        await store.record_feedback(ItemKind.PATTERN, "p1", "bob", 0.2, 2.0)
        await store.record_feedback(ItemKind.COMPONENT, "c1", "bob", 0.6, 3.0)
        await store.record_feedback(ItemKind.COMPONENT, "c1", "bob", None, 4.0)  # unscored
        await store.record_feedback(ItemKind.COMPONENT, "c2", "carol", 0.9, 5.0)
        await store.record_feedback(ItemKind.COMPONENT, "c2", "bob", 1.0, 6.0)  # self-rating
        edges = await store.feedback_edges()
        assert [(e.rater, e.contributor) for e in edges] == [("carol", "bob"), ("bob", "alice")]
        carol, bob = edges
        assert (bob.count, bob.scored, bob.first_at, bob.last_at) == (3, 2, 2.0, 4.0)
        assert bob.mean_score is not None and abs(bob.mean_score - 0.4) < 1e-9
        assert (carol.count, carol.scored, carol.mean_score) == (1, 1, 0.9)
        recent = await store.feedback_edges(since=4.5)
        assert [(e.rater, e.contributor, e.count) for e in recent] == [("carol", "bob", 1)]
        assert len(await store.feedback_edges(limit=1)) == 1
        await store.record_feedback(ItemKind.PATTERN, "p1", "dave", None, 7.0)
        dave = (await store.feedback_edges(limit=1))[0]
        assert (dave.rater, dave.scored, dave.score_total, dave.mean_score) == (
            "dave",
            0,
            0.0,
            None,
        )

    async def test_feedback_scores_over_time(self, store: Store) -> None:
        await store.add_pattern(PatternRecord("p1", {}, "alice", 1.0))
        await store.add_component(ComponentRecord("c1", {}, "bob", 1.0))
        await store.record_feedback(ItemKind.PATTERN, "p1", "bob", 0.2, 2.0)
        await store.record_feedback(ItemKind.COMPONENT, "c1", "alice", 0.9, 3.0)
        await store.record_feedback(ItemKind.PATTERN, "p1", "carol", None, 4.0)  # unscored
        await store.record_feedback(ItemKind.PATTERN, "p1", "alice", 1.0, 5.0)  # self-rating
        await store.record_feedback(ItemKind.PATTERN, "p1", "carol", 0.4, 6.0)
        scores = await store.feedback_scores()
        assert scores == [
            FeedbackScore("bob", "alice", 0.2, 2.0),
            FeedbackScore("alice", "bob", 0.9, 3.0),
            FeedbackScore("carol", "alice", 0.4, 6.0),
        ]
        assert await store.feedback_scores(since=2.5, limit=1) == [scores[-1]]
        assert await store.feedback_scores(limit=2) == scores[1:]

    # ------------------------------------------------------------------ collaborations

    async def test_collaboration_lifecycle(self, store: Store) -> None:
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

    async def test_collaborations_created_together(self, store: Store) -> None:
        """Created at once (the writer may store them in one batch): each stored as it was
        given, and only the second of two with one id refused."""
        await store.create_collaboration(collaboration("c0"))
        records = [collaboration(cid) for cid in ("c1", "c2", "c1", "c0", "c3")]
        results = await asyncio.gather(
            *(store.create_collaboration(r) for r in records), return_exceptions=True
        )
        assert [type(r).__name__ for r in results] == [
            "NoneType",
            "NoneType",
            "ConflictError",
            "ConflictError",
            "NoneType",
        ]
        for cid in ("c0", "c1", "c2", "c3"):
            assert await store.get_collaboration(cid) == collaboration(cid)

    async def test_progress_of_many_collaborations_at_once(self, store: Store) -> None:
        """Active ones take it; an ended or unknown one is skipped, without an error and
        without holding back the others."""
        for cid in ("m1", "m2", "m3"):
            await store.create_collaboration(collaboration(cid))
        await store.end_collaboration("m2", CollaborationStatus.FAILED, T0 + 1)
        await store.set_collaborations_progress({"m1": 10.0, "m2": 20.0, "nope": 5.0, "m3": 30.0})
        progress = {
            cid: (await store.get_collaboration(cid)).progress  # type: ignore[union-attr]
            for cid in ("m1", "m2", "m3")
        }
        assert progress == {"m1": 10.0, "m2": 0.0, "m3": 30.0}
        await store.set_collaborations_progress({})  # nothing to do

    async def test_collaboration_failed(self, store: Store) -> None:
        await store.create_collaboration(collaboration("k"))
        await store.set_collaboration_progress("k", 30.0)
        ended = await store.end_collaboration(
            "k", CollaborationStatus.FAILED, T0 + 1, reason="peer left"
        )
        assert (ended.status, ended.reason, ended.outcome) == ("failed", "peer left", None)
        assert (ended.progress, ended.ended_at) == (30.0, T0 + 1)

    async def test_list_and_fail_active_collaborations(self, store: Store) -> None:
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

    async def test_collaboration_pairs_are_the_completed_ones(self, store: Store) -> None:
        members = [("alice", "bob"), ("alice", "bob"), ("carol", "alice"), ("dave", "erin")]
        for n, (requester, acceptor) in enumerate(members):
            record = dataclasses.replace(
                collaboration(f"k{n}"), requester=requester, acceptor=acceptor
            )
            await store.create_collaboration(record)
        for cid in ("k0", "k1", "k2"):
            await store.end_collaboration(cid, CollaborationStatus.COMPLETED, T0 + 1)
        await store.end_collaboration("k3", CollaborationStatus.FAILED, T0 + 1, reason="gone")
        again = dataclasses.replace(collaboration("k4"), requester="dave", acceptor="erin")
        await store.create_collaboration(again)  # still active: not a pair yet
        assert await store.collaboration_pairs() == {("alice", "bob"), ("carol", "alice")}
        await store.add_component(component("c", "erin"), completes_collaboration="k4")
        assert await store.collaboration_pairs() == {
            ("alice", "bob"),
            ("carol", "alice"),
            ("dave", "erin"),
        }

    async def test_component_completes_collaboration(self, store: Store) -> None:
        await store.create_collaboration(collaboration("k"))
        outcome = await store.add_component(component("c", ts=T0 + 9), completes_collaboration="k")
        assert outcome is ShareOutcome.CREATED
        done = await store.get_collaboration("k")
        assert done is not None
        assert (done.status, done.ended_at, done.progress) == ("completed", T0 + 9, 100.0)
        assert done.outcome == {"component_id": "c"}
        assert await store.get_component("c") is not None

    async def test_component_for_unknown_or_ended_collaboration_is_not_stored(
        self, store: Store
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
        self, store: Store
    ) -> None:
        await store.add_component(component("c", "alice"))
        await store.create_collaboration(collaboration("k"))
        with pytest.raises(ConflictError):
            await store.add_component(component("c", "bob"), completes_collaboration="k")
        assert (await store.get_collaboration("k")).status == "active"  # type: ignore[union-attr]

    # ------------------------------------------------------------------ AIs

    async def test_ai_upsert_and_touch(self, store: Store) -> None:
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

    async def test_ais_upserted_together(self, store: Store) -> None:
        """Upserts at once (the writer may store them in one batch) end as one at a time
        would: a new AI first seen at its first upsert, the last profile kept."""
        await store.upsert_ai("old", "vision", ["see"], T0)
        await asyncio.gather(
            store.upsert_ai("new", "nlp", ["read"], T0 + 1),
            store.upsert_ai("old", "audio", ["hear"], T0 + 2),
            store.upsert_ai("new", "nlp+vision", ["read", "see"], T0 + 3),
            store.upsert_ai("other", "gpu", [], T0 + 4),
        )
        found = {ai.ai_id: ai for ai in await store.list_ais()}
        assert set(found) == {"new", "old", "other"}
        new, old, other = found["new"], found["old"], found["other"]
        assert (new.specialization, new.capabilities) == ("nlp+vision", ["read", "see"])
        assert (new.first_seen, new.last_seen) == (T0 + 1, T0 + 3)
        assert (old.specialization, old.capabilities) == ("audio", ["hear"])
        assert (old.first_seen, old.last_seen) == (T0, T0 + 2)
        assert (other.capabilities, other.first_seen) == ([], T0 + 4)

    # ------------------------------------------------------------------ tokens

    async def test_tokens(self, store: Store) -> None:
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

    async def test_token_expiry_and_source(self, store: Store) -> None:
        action = await store.set_token_hash("bob", "h1", T0, expires_at=T0 + 60, source="file")
        assert action is TokenAction.ADDED
        assert await store.get_token("bob") == StoredToken("h1", T0 + 60, "file")
        assert await store.list_tokens() == [TokenInfo("bob", T0, T0 + 60, "file")]
        # Replacing sets every field: a rotated token does not keep the old expiry.
        assert await store.set_token_hash("bob", "h2", T0 + 1) is TokenAction.REPLACED
        assert await store.get_token("bob") == StoredToken("h2", None, "cli")
        assert await store.get_token("nobody") is None

    async def test_token_changes_are_numbered_across_ais(self, store: Store) -> None:
        assert await store.last_token_change() == 0
        assert await store.token_changes_after(0) == []
        await store.set_token_hash("bob", "h1", T0)
        await store.set_token_hash("amy", "h", T0 + 1)
        seen = await store.last_token_change()
        await store.set_token_hash("bob", "h2", T0 + 2)
        assert await store.delete_token("amy", T0 + 3) is True
        assert await store.delete_token("amy", T0 + 4) is False  # nothing changed: no record
        assert await store.token_changes_after(seen) == [
            TokenChange("bob", seen + 1, TokenAction.REPLACED, T0 + 2),
            TokenChange("amy", seen + 2, TokenAction.REVOKED, T0 + 3),
        ]
        assert await store.last_token_change() == seen + 2
        # One row per AI: its last change only.
        assert [c.ai_id for c in await store.token_changes_after(0)] == ["bob", "amy"]
        assert await store.token_changes_after(seen + 2) == []

    async def test_concurrent_token_changes_get_distinct_numbers(
        self, store: Store, new_store: StoreFactory
    ) -> None:
        """Two processes' worth of writers (the hub and ``kernal token``) at once: every change
        gets its own number, so a hub reading after any number misses none."""
        async with opened(new_store()) as other:
            await asyncio.gather(
                *((store if i % 2 else other).set_token_hash(f"ai{i}", "h", T0) for i in range(40))
            )
        changes = await store.token_changes_after(0)
        assert sorted(c.seq for c in changes) == list(range(1, 41))

    # ------------------------------------------------------------------ stats

    async def test_stats_history(self, store: Store) -> None:
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

    # ------------------------------------------------------------------ trainer reports

    async def test_trainer_reports_series_and_latest(self, store: Store) -> None:
        assert await store.trainer_reports() == []
        assert await store.latest_trainer_reports() == []
        first = TrainerReportRecord(
            "bob", T0, 0.5, local_only_accuracy=0.4, trust={"alice": 0.75}, merges_kept=1
        )
        full = TrainerReportRecord(
            "alice",
            T0 + 1,
            0.8125,
            local_only_accuracy=0.7,
            centralized_baseline=0.9,
            merges_kept=3,
            merges_rejected=2,
            trust={"bob": 0.25, "carol": 1.0},
            rejected={"bob": (4, "low reputation")},
            final=True,
            refused_merges={"carol": (2, "worse on our validation data")},
        )
        later = TrainerReportRecord("bob", T0 + 2, 0.625)
        # Concurrent adds are batched by the writer: each must still be stored, in order.
        await asyncio.gather(*(store.add_trainer_report(r) for r in (first, full, later)))
        assert await store.trainer_reports() == [first, full, later]
        assert await store.trainer_reports("bob") == [first, later]
        assert await store.trainer_reports(since=T0 + 1) == [full, later]
        assert await store.trainer_reports(limit=1) == [later]
        figures_only = await store.trainer_reports("alice", maps=False)
        assert figures_only == [dataclasses.replace(full, trust={}, rejected={}, refused_merges={})]
        assert await store.latest_trainer_reports() == [full, later]

    async def test_trainer_reports_keep_the_newest_per_trainer(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(store, "TRAINER_REPORTS_KEPT", 3)
        for i in range(5):
            await store.add_trainer_report(TrainerReportRecord("bob", T0 + i, i / 10))
        await asyncio.gather(
            *(store.add_trainer_report(TrainerReportRecord("amy", T0 + i, 0.5)) for i in range(7))
        )
        assert [r.accuracy for r in await store.trainer_reports("bob")] == [0.2, 0.3, 0.4]
        assert [r.timestamp for r in await store.trainer_reports("amy")] == [
            T0 + 4,
            T0 + 5,
            T0 + 6,
        ]

    # ------------------------------------------------------------------ lifecycle

    async def test_data_survives_close_and_reopen(
        self, store: Store, new_store: StoreFactory
    ) -> None:
        await store.add_pattern(pattern("p"))
        await store.set_token_hash("bob", "h", T0)
        await store.close()
        await store.close()  # idempotent
        with pytest.raises(RuntimeError):
            await store.add_pattern(pattern("q"))
        async with opened(new_store()) as reopened:
            assert await reopened.get_pattern("p") == pattern("p")
            assert await reopened.get_token_hash("bob") == "h"

    async def test_close_commits_pending_writes(
        self, store: Store, new_store: StoreFactory
    ) -> None:
        tasks = [asyncio.create_task(store.add_pattern(pattern(f"p{i}"))) for i in range(50)]
        await asyncio.sleep(0)  # let every task submit its job
        await store.close()
        assert all(task.done() for task in tasks)
        assert {await task for task in tasks} == {ShareOutcome.CREATED}
        async with opened(new_store()) as reopened:
            assert (await reopened.counts()).shared_patterns == 50


class TestSqliteStore(StoreContract):
    def store_factory(self, request: pytest.FixtureRequest) -> StoreFactory:
        tmp_path: Path = request.getfixturevalue("tmp_path")
        path = str(tmp_path / "hub_data.db")
        return lambda: SqlStore(path)


class TestPostgresStore(StoreContract):
    """On ``$KERNAL_TEST_PG_URL`` (see conftest), in a schema of its own per test; an
    unreachable server fails every test here."""

    def store_factory(self, request: pytest.FixtureRequest) -> StoreFactory:
        schema: str = request.getfixturevalue("pg_schema")
        return lambda: SqlStore(PG_URL, schema=schema)
