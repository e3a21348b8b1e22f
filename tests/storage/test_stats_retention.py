"""Stats retention: the pure policy, and :meth:`Store.thin_stats` on SQLite and PostgreSQL (the
``store`` fixture runs every test here on both backends), and a hub that applies it."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import pytest

from kernal.storage import StatsRetention, StatsSnapshot
from kernal.storage.retention import RetentionTier, parse_duration
from kernal.storage.sql import SqlStore
from tests.conftest import HubFactory
from tests.storage.test_store_contract import opened

HOUR, DAY = 3600.0, 86400.0
NOW = 1_800_000_000.0  # a multiple of 3600: bucket edges fall on round ages
POLICY = "1h=all,1d=1m,forever=1h"


def snap(ts: float) -> StatsSnapshot:
    return StatsSnapshot(ts, 1, 2, 3, 0)


def test_parse_the_documented_example() -> None:
    assert StatsRetention.parse(POLICY) == StatsRetention(
        (RetentionTier(HOUR, 0.0), RetentionTier(DAY, 60.0), RetentionTier(math.inf, HOUR))
    )
    assert StatsRetention.parse("off") is None
    assert parse_duration("90") == 90.0 and parse_duration("1.5m") == 90.0


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("1h", "AGE=STEP"),
        ("1h=all,30m=1m", "increasing ages"),
        ("1x=all", "not a duration"),
        ("1h=0", "more than zero"),
    ],
)
def test_parse_refuses_with_a_reason(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        StatsRetention.parse(text)


def test_policy_keeps_every_young_one_a_minute_then_an_hour() -> None:
    policy = StatsRetention.parse(POLICY)
    assert policy is not None
    # Every 10 s for the last two days.
    stamps = [NOW - age for age in range(0, int(2 * DAY), 10)]
    doomed = set(policy.to_delete(enumerate(stamps), NOW))
    kept = [ts for key, ts in enumerate(stamps) if key not in doomed]
    young = [ts for ts in kept if NOW - ts < HOUR]
    day = [ts for ts in kept if HOUR <= NOW - ts < DAY]
    old = [ts for ts in kept if NOW - ts >= DAY]
    assert len(young) == 360  # all of them
    # One per minute: 23 h of whole minutes, and the oldest of the minute cut by the day's edge.
    assert len(day) == 23 * 60 + 1
    assert all(ts % 60 == 0 for ts in day[:-1]) and day[-1] == NOW - DAY + 10
    # One per hour: 24 whole hours, and the oldest of the hour cut by the end of the data.
    assert len(old) == 25
    assert all(ts % HOUR == 0 for ts in old[:-1]) and old[-1] == stamps[-1]


def test_a_survivor_survives_as_it_ages() -> None:
    """Thinning again later never deletes what a finer tier kept if a coarser one keeps it."""
    policy = StatsRetention.parse(POLICY)
    assert policy is not None
    stamps = dict(enumerate(NOW - age for age in range(0, int(DAY) + 10, 10)))
    for later in (0.0, 30 * 60.0, 2 * HOUR, DAY):
        for key in policy.to_delete(stamps.items(), NOW + later):
            del stamps[key]
    # A day later everything is in the hourly tier: one per hour, on the hour.
    assert sorted(stamps.values()) == [NOW - DAY + h * HOUR for h in range(25)]


def test_without_forever_the_oldest_are_deleted() -> None:
    policy = StatsRetention.parse("1h=all")
    assert policy is not None
    assert policy.to_delete([(1, NOW - 2 * HOUR), (2, NOW - 10)], NOW) == [1]


async def test_store_thins_stats_history(store: SqlStore) -> None:
    policy = StatsRetention.parse(POLICY)
    assert policy is not None
    ages = [5, 50, 2 * HOUR + 1, 2 * HOUR + 10, 2 * HOUR + 59, 2 * DAY + 60, 2 * DAY + 120]
    for age in ages:
        await store.add_stats_snapshot(snap(NOW - age))
    assert await store.thin_stats(policy, NOW) == 3
    assert [s.timestamp for s in await store.stats_history()] == [
        NOW - 2 * DAY - 120,  # the oldest of its hour
        NOW - 2 * HOUR - 59,  # the oldest of its minute
        NOW - 50,
        NOW - 5,
    ]
    assert await store.thin_stats(policy, NOW) == 0  # nothing more to do


async def test_store_thinning_an_empty_history_deletes_nothing(store: SqlStore) -> None:
    policy = StatsRetention.parse("1m=all")
    assert policy is not None
    assert await store.thin_stats(policy, NOW) == 0
    await store.add_stats_snapshot(snap(NOW))
    assert await store.thin_stats(policy, NOW + 61) == 1
    assert await store.stats_history() == []


async def test_store_thins_many_in_one_call(store: SqlStore) -> None:
    """More than one statement's worth of parameters (the store deletes in chunks)."""
    policy = StatsRetention.parse("1m=all")
    assert policy is not None
    # Together: the writer commits them in a few group commits, not 1,200 transactions.
    await asyncio.gather(*(store.add_stats_snapshot(snap(NOW - HOUR - n)) for n in range(1200)))
    await store.add_stats_snapshot(snap(NOW))
    assert await store.thin_stats(policy, NOW) == 1200
    assert [s.timestamp for s in await store.stats_history()] == [NOW]


async def test_hub_thins_its_stats_history(tmp_path: Path, make_hub: HubFactory) -> None:
    """A hub started with a policy deletes old snapshots while it runs, and keeps adding new
    ones."""
    db = str(tmp_path / "hub_data.db")
    now = time.time()
    async with opened(SqlStore(db)) as store:
        for n in range(10):  # ten snapshots in one old minute: one survives
            await store.add_stats_snapshot(snap(math.floor(now / 60) * 60 - 2 * HOUR + n))
    hub = await make_hub(db=db, stats_retention=StatsRetention.parse("1h=all,forever=1m"))
    for _ in range(200):
        history = await hub.store.stats_history()
        old = [s for s in history if s.timestamp < now - HOUR]
        if len(old) == 1 and len(history) > 1:
            break
        await asyncio.sleep(0.05)
    assert [s.timestamp for s in old] == [math.floor(now / 60) * 60 - 2 * HOUR]
    assert len(history) > 1  # the hub's own snapshots, young, kept
