"""``/status`` of a replica: this replica's figures, and the cluster's under ``cluster``."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from kernal.serve import Service
from kernal.web.app import create_app
from tests.cluster.conftest import ReplicaFactory, eventually_async
from tests.cluster.test_presence import crash
from tests.cluster.test_relay import join, seen_all, three
from tests.helpers import RawClient


async def status(service: Service) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=create_app(service.hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        body: dict[str, Any] = (await client.get("/status")).json()
    return body


def per_replica(body: dict[str, Any]) -> dict[str, int]:
    return {r["replica"]: r["connected_ais"] for r in body["cluster"]["replicas"]}


async def test_every_replica_reports_the_same_cluster(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await three(make_replica)
    await join(replicas[0], "AI_Node_1", clients)
    await join(replicas[0], "AI_Node_2", clients)
    await join(replicas[2], "AI_Node_3", clients)
    await seen_all(replicas, 3)
    wanted = {"r1": 2, "r2": 0, "r3": 1}
    bodies: list[dict[str, Any]] = []

    addresses = {f"{r.hub.address[0]}:{r.hub.address[1]}" for r in replicas}

    async def agreed() -> bool:
        # A replica joins the cluster before it listens: its first heartbeat has no address yet,
        # the next one has (figures from heartbeats are a heartbeat or two old by design).
        bodies[:] = [await status(r) for r in replicas]
        return all(
            per_replica(body) == wanted
            and {r["address"] for r in body["cluster"]["replicas"]} == addresses
            for body in bodies
        )

    await eventually_async(agreed)
    for body, replica in zip(bodies, replicas, strict=True):
        assert body["replica"] == replica.hub.cluster.replica_id  # type: ignore[union-attr]
        assert body["cluster"]["connected_ais"] == 3
        assert body["connected_ais"] == wanted[body["replica"]]

    await crash(replicas[0])
    survivors = replicas[1:]
    await eventually_async(lambda: _all_say(survivors, {"r2": 0, "r3": 1}))  # r1 gone


async def _all_say(services: list[Service], wanted: dict[str, int]) -> bool:
    return all([per_replica(await status(s)) == wanted for s in services])


async def test_the_history_is_one_series_of_the_whole_cluster(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    """One replica (the first by name) keeps the cluster's figures in the stats history, so
    the dashboard's charts draw the cluster, not each replica in turn."""
    replicas = await three(make_replica)
    await join(replicas[0], "AI_Node_1", clients)
    await join(replicas[1], "AI_Node_2", clients)
    await join(replicas[1], "AI_Node_3", clients)
    await seen_all(replicas, 3)
    store = replicas[2].hub.store

    async def newest_says_three() -> bool:
        history = await store.stats_history(0.0, 10_000)
        return bool(history) and history[-1].connected_ais == 3

    await eventually_async(newest_says_three)
    settled = (await store.stats_history(0.0, 10_000))[-1].timestamp

    async def more_since() -> bool:
        return len(await store.stats_history(settled + 1e-6, 10_000)) >= 5

    await eventually_async(more_since)
    later = await store.stats_history(settled + 1e-6, 10_000)
    # Per-replica figures (1, 2, 0) would interleave here; the cluster's total does not move.
    assert {s.connected_ais for s in later} == {3}
    gaps = [b.timestamp - a.timestamp for a, b in itertools.pairwise(later)]
    settings = replicas[0].hub.settings
    interval = settings.stats_interval / settings.speed  # real seconds
    assert min(gaps) > interval / 2  # one writer: one snapshot per interval, not three
