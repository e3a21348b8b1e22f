"""``/metrics`` and the dashboard's views on a replica: the cluster's figures, and which
replica each AI is on; a single hub's output gains nothing of the cluster."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from kernal.hub.server import Hub
from kernal.serve import Service
from kernal.web.app import create_app
from tests.cluster.conftest import ReplicaFactory, eventually_async
from tests.cluster.test_presence import crash
from tests.cluster.test_relay import join, seen_all, three
from tests.helpers import RawClient

Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


async def get(hub: Hub, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        response = await client.get(path)
    assert response.status_code == 200, response.text
    return response


async def metrics(hub: Hub) -> Samples:
    """Every sample of ``/metrics``, by name, then by its sorted labels."""
    found: Samples = {}
    for family in text_string_to_metric_families((await get(hub, "/metrics")).text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            found.setdefault(sample.name, {})[labels] = sample.value
    return found


def by_replica(samples: Samples, name: str) -> dict[str, float]:
    return {dict(labels)["replica"]: value for labels, value in samples.get(name, {}).items()}


async def test_metrics_show_every_replica_and_its_ais(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await three(make_replica)
    await join(replicas[0], "AI_Node_1", clients)
    await join(replicas[0], "AI_Node_2", clients)
    await join(replicas[2], "AI_Node_3", clients)
    await seen_all(replicas, 3)
    wanted = {"r1": 2.0, "r2": 0.0, "r3": 1.0}
    scraped: list[Samples] = []

    async def agreed(services: list[Service], expected: dict[str, float]) -> bool:
        scraped[:] = [await metrics(s.hub) for s in services]
        return all(by_replica(s, "kernal_cluster_connected_ais") == expected for s in scraped)

    await eventually_async(lambda: agreed(replicas, wanted))
    for samples, name in zip(scraped, ("r1", "r2", "r3"), strict=True):
        assert samples["kernal_cluster_replicas"][()] == 3
        assert by_replica(samples, "kernal_replica_info") == {name: 1.0}
        assert by_replica(samples, "kernal_cluster_active_collaborations") == {
            "r1": 0.0,
            "r2": 0.0,
            "r3": 0.0,
        }
        # This replica's own figures stay its own; standings cover the cluster.
        assert samples["kernal_connected_ais"][()] == wanted[name]
        assert len(samples["kernal_ai_reputation"]) == 3

    await crash(replicas[0])
    survivors = replicas[1:]
    await eventually_async(lambda: agreed(survivors, {"r2": 0.0, "r3": 1.0}))
    assert all(s["kernal_cluster_replicas"][()] == 2 for s in scraped)


async def test_the_dashboard_says_which_replica_each_ai_is_on(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await three(make_replica)
    first = await join(replicas[0], "AI_Node_1", clients)
    await join(replicas[1], "AI_Node_2", clients)
    await join(replicas[2], "AI_Node_3", clients)
    await seen_all(replicas, 3)
    wanted = {"AI_Node_1": "r1", "AI_Node_2": "r2", "AI_Node_3": "r3"}
    for replica in replicas:
        rows: list[dict[str, Any]] = (await get(replica.hub, "/api/views/ais")).json()
        assert {row["ai_id"]: row["replica"] for row in rows} == wanted
        body = (await get(replica.hub, "/api/ais")).json()
        assert {ai["ai_id"]: ai["replica"] for ai in body["connected"]} == wanted

    await first.close()
    await seen_all(replicas, 2)
    rows = (await get(replicas[1].hub, "/api/views/ais")).json()
    assert {row["ai_id"]: (row["online"], row["replica"]) for row in rows} == {
        "AI_Node_1": (False, None),
        "AI_Node_2": (True, "r2"),
        "AI_Node_3": (True, "r3"),
    }


async def test_a_single_hub_shows_nothing_of_a_cluster(hub: Hub) -> None:
    samples = await metrics(hub)
    assert not [name for name in samples if "cluster" in name or "replica" in name]
    body = (await get(hub, "/status")).json()
    assert (body["replica"], body["cluster"]) == (None, None)
