"""Standings across replicas: a vote or a completed collaboration committed on one replica
changes the standing every replica reports, and a rater's votes count once cluster-wide."""

from __future__ import annotations

from typing import Any

import httpx

from kernal.hub.reputation import Standings, hub_reputation
from kernal.serve import Service
from kernal.web.app import create_app
from tests.cluster.conftest import ReplicaFactory, eventually, eventually_async
from tests.cluster.test_relay import join, seen_all, three
from tests.helpers import RawClient

X, RATER = "AI_Node_1", "AI_Node_2"


class Spread:
    """Logged-in AIs by number, each on the replica it was put on."""

    def __init__(self, replicas: list[Service], clients: list[RawClient]) -> None:
        self.replicas = replicas
        self.clients = clients
        self.ais: dict[int, RawClient] = {}
        self._serial = 0

    async def put(self, n: int, replica: int) -> RawClient:
        self.ais[n] = await join(self.replicas[replica], f"AI_Node_{n}", self.clients)
        return self.ais[n]

    async def request(self, n: int, frame: dict[str, Any]) -> dict[str, Any]:
        self._serial += 1
        ref = f"m{self._serial}"
        await self.ais[n].send({**frame, "msg_id": ref})
        while True:
            reply = await self.ais[n].recv()
            if reply.get("ref") == ref:
                return reply

    async def ok(self, n: int, frame: dict[str, Any]) -> dict[str, Any]:
        reply = await self.request(n, frame)
        assert reply["type"] == "ACK", reply
        return reply

    async def collaborate(self, a: int, b: int) -> None:
        """``a`` requests, ``b`` accepts, ``a`` completes (the book is on ``a``'s replica)."""
        self._serial += 1
        request_id = f"r{self._serial}"
        await self.ok(
            a, {"type": "COLLABORATION_REQUEST", "request_id": request_id, "to": f"AI_Node_{b}"}
        )
        await self.ais[b].recv_type("COLLABORATION_REQUEST")
        accepted = await self.ok(
            b, {"type": "COLLABORATION_ACCEPT", "request_id": request_id, "to": f"AI_Node_{a}"}
        )
        cid = accepted["collaboration_id"]
        await self.ok(a, {"type": "COLLABORATION_COMPLETE", "collaboration_id": cid})

    async def rate(self, n: int, score: float) -> None:
        await self.ok(n, {"type": "FEEDBACK", "kind": "component", "id": "c1", "score": score})


async def api_reputation(service: Service) -> dict[str, tuple[float, int]]:
    transport = httpx.ASGITransport(app=create_app(service.hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        rows = (await client.get("/api/reputation")).json()
    return {row["ai_id"]: (row["reputation"], row["partners"]) for row in rows}


async def all_report(replicas: list[Service], ai_id: str, standing: float) -> None:
    """Every replica's standings, and its HTTP API, say ``standing`` for ``ai_id``."""
    await eventually(lambda: all(r.hub.standings.of(ai_id) == standing for r in replicas))
    for replica in replicas:
        assert (await api_reputation(replica))[ai_id][0] == standing


async def test_a_vote_on_one_replica_moves_the_standing_every_replica_reports(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await three(make_replica)
    world = Spread(replicas, clients)
    await world.put(1, 1)  # X, the contributor, on r2
    await world.put(2, 0)  # the rater on r1, with partners on every replica
    await world.put(3, 2)
    await world.put(4, 0)
    await world.put(5, 1)
    await seen_all(replicas, 5)
    await world.ok(
        1, {"type": "OS_COMPONENT_SHARE", "component_id": "c1", "component_data": {"w": 1}}
    )
    for partner in (1, 3, 4, 5):
        await world.collaborate(2, partner)  # completed on r1, the rater's replica
    # Every replica heard the completions: the rater has 4 partners everywhere, 3 besides X.
    await eventually(lambda: all(r.hub.standings.partners(RATER) == 4 for r in replicas))
    assert all(r.hub.standings.partners(X) == 1 for r in replicas)

    await world.rate(2, 0.0)  # recorded on r1
    await all_report(replicas, X, hub_reputation([(0.5, 0.0)]))
    # A trainer on r3 reads it in LIST_AIS, as trainers do.
    listed = await world.request(3, {"type": "LIST_AIS"})
    assert {ai["ai_id"]: ai["reputation"] for ai in listed["ais"]}[X] == hub_reputation(
        [(0.5, 0.0)]
    )

    # One vote per rater: a new one replaces it on every replica, never adds to it.
    await world.rate(2, 1.0)
    await all_report(replicas, X, hub_reputation([(0.5, 1.0)]))
    for _ in range(3):
        await world.rate(2, 1.0)
    await all_report(replicas, X, hub_reputation([(0.5, 1.0)]))

    # The rater moves to r3 and votes again there: still one voice, the latest.
    await world.ais[2].close()
    await eventually(lambda: all(r.hub.peers.total() == 4 for r in replicas))
    await world.put(2, 2)
    await world.rate(2, 0.25)
    await all_report(replicas, X, hub_reputation([(0.5, 0.25)]))

    # What every replica holds is what the database says (a restart would compute it).
    restarted = Standings(replicas[0].hub.store)
    await restarted.restore()
    everyone = [f"AI_Node_{n}" for n in range(1, 6)]
    expected = {ai: (restarted.of(ai), restarted.partners(ai)) for ai in everyone}
    for replica in replicas:
        standings = replica.hub.standings
        assert {ai: (standings.of(ai), standings.partners(ai)) for ai in everyone} == expected


async def test_a_replica_that_starts_late_has_the_standings_of_the_others(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    first = [await make_replica(), await make_replica()]
    await eventually(lambda: all(len(r.hub.cluster.replicas()) == 2 for r in first))  # type: ignore[union-attr]
    world = Spread(first, clients)
    for n, replica in ((1, 1), (2, 0), (3, 1), (4, 0), (5, 1)):
        await world.put(n, replica)
    await seen_all(first, 5)
    await world.ok(1, {"type": "OS_COMPONENT_SHARE", "component_id": "c1", "component_data": {}})
    for partner in (1, 3, 4, 5):
        await world.collaborate(2, partner)
    await world.rate(2, 0.0)
    late = await make_replica()
    replicas = [*first, late]
    await all_report(replicas, X, hub_reputation([(0.5, 0.0)]))
    await world.rate(2, 1.0)
    await all_report(replicas, X, hub_reputation([(0.5, 1.0)]))

    async def item_figures_agree() -> bool:
        usage = [
            [
                (c.component_id, c.usage_count, c.quality_score)
                for c in r.hub.knowledge.recent_components()
            ]
            for r in replicas
        ]
        return usage == [[("c1", 1, 1.0)]] * 3

    await eventually_async(item_figures_agree)
