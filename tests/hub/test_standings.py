"""``Standings`` over a real SQLite store: what it computes live is what it recomputes from the
store at start, whatever the order of votes and collaborations."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kernal.hub.reputation import Standings, hub_reputation, rater_weight, vote_value
from kernal.protocol.messages import RequestTerms
from kernal.storage import (
    CollaborationRecord,
    CollaborationStatus,
    ComponentRecord,
    ItemKind,
    RatingRecord,
    Vote,
)
from kernal.storage.sql import SqlStore

AIS = [f"ai{n}" for n in range(8)]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    store = SqlStore(str(tmp_path / "hub.db"))
    await store.open()
    try:
        yield store
    finally:
        await store.close()


def test_the_rule_in_numbers() -> None:
    assert [rater_weight(n) for n in range(8)] == [0, 0, 0, 0.5, 4 / 6, 5 / 6, 1, 1]
    assert hub_reputation([]) == 0.5
    assert hub_reputation([(1.0, 0.0)]) == pytest.approx(1 / 3)
    assert vote_value(Vote(0.9, 0.1)) == 0.1  # usefulness first
    assert vote_value(Vote(0.9)) == 0.9
    assert vote_value(Vote()) is None and vote_value(None) is None


async def collaborate(store: SqlStore, n: int, a: str, b: str) -> None:
    cid = f"k{n}"
    record = CollaborationRecord(
        cid, f"r{n}", a, b, RequestTerms(request_id=f"r{n}"), CollaborationStatus.ACTIVE, 0.0, 1.0
    )
    await store.create_collaboration(record)
    await store.end_collaboration(cid, CollaborationStatus.COMPLETED, 2.0)


@pytest.mark.parametrize("seed", range(3))
async def test_live_standings_are_what_a_restart_recomputes(store: SqlStore, seed: int) -> None:
    rng = random.Random(seed)
    live = Standings(store)
    await live.restore()
    items = [(f"c{n}", rng.choice(AIS)) for n in range(12)]
    for item, owner in items:
        await store.add_component(ComponentRecord(item, {}, owner, 1.0))
    for step in range(200):
        if rng.random() < 0.15:
            a, b = rng.sample(AIS, 2)
            await collaborate(store, step, a, b)
            live.collaborated(a, b)
            continue
        item, owner = rng.choice(items)
        rater = rng.choice([ai for ai in AIS if ai != owner])
        score = rng.choice([None, 0.0, 0.25, 0.5, 1.0])
        usefulness = rng.choice([None, None, 0.0, 0.75, 1.0])
        result = await store.record_feedback(
            ItemKind.COMPONENT, item, rater, score, 3.0, usefulness=usefulness
        )
        live.voted(rater, result.contributor, ("component", item), result.vote)
    restarted = Standings(store)
    await restarted.restore()
    assert {ai: restarted.of(ai) for ai in AIS} == {ai: live.of(ai) for ai in AIS}
    assert {ai: restarted.partners(ai) for ai in AIS} == {ai: live.partners(ai) for ai in AIS}
    assert any(live.of(ai) != 0.5 for ai in AIS)  # the run did move someone


async def test_changes_heard_while_restoring_are_kept(store: SqlStore) -> None:
    """A replica hears other replicas' votes while it reads the store at start; its read may
    predate them, so they are applied again once the tables are rebuilt."""
    for n, partner in enumerate(["ai1", "ai2", "ai3", "ai4"]):
        await collaborate(store, n, "ai0", partner)
    await store.add_component(ComponentRecord("c1", {}, "ai1", 1.0))
    standings = Standings(store)
    read = store.ratings

    async def ratings_then_hear() -> list[RatingRecord]:
        found = await read()
        # Committed after the read, heard before restore() rebuilds: the snapshot lacks it.
        standings.apply_vote("ai0", "ai1", ("component", "c1"), Vote(0.0))
        return found

    store.ratings = ratings_then_hear  # type: ignore[method-assign]
    await standings.restore()
    assert standings.of("ai1") == hub_reputation([(0.5, 0.0)])
    assert standings.partners("ai0") == 4
