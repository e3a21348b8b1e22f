"""Shares and requests between trainers on different replicas: relayed once, stored once."""

from __future__ import annotations

from typing import Any

from kernal.serve import Service
from kernal.storage import ItemKind
from tests.cluster.conftest import ReplicaFactory, eventually
from tests.helpers import RawClient


async def join(
    service: Service, ai_id: str, clients: list[RawClient], spec: str = "net"
) -> RawClient:
    client = await RawClient.connect(service.hub)
    clients.append(client)
    await client.login(ai_id, f"secret{ai_id.rsplit('_', 1)[1]}", spec)
    return client


async def three(make_replica: ReplicaFactory) -> list[Service]:
    replicas = [await make_replica() for _ in range(3)]
    for replica in replicas:
        cluster = replica.hub.cluster
        assert cluster is not None
    await eventually(lambda: all(len(r.hub.cluster.replicas()) == 3 for r in replicas))  # type: ignore[union-attr]
    return replicas


async def seen_all(replicas: list[Service], count: int) -> None:
    await eventually(lambda: all(r.hub.peers.total() == count for r in replicas))


async def until(client: RawClient, predicate: Any) -> list[dict[str, Any]]:
    """Frames up to and including the first that ``predicate`` accepts."""
    frames = []
    while True:
        frame = await client.recv()
        frames.append(frame)
        if predicate(frame):
            return frames


def share(pattern_id: str, msg_id: str) -> dict[str, Any]:
    return {
        "type": "PATTERN_SHARE",
        "msg_id": msg_id,
        "pattern_id": pattern_id,
        "pattern_data": {"w": [1, 2, 3]},
    }


async def test_a_share_reaches_every_replica_once_and_is_stored_once(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await three(make_replica)
    a = await join(replicas[0], "AI_Node_1", clients)
    b = await join(replicas[1], "AI_Node_2", clients)
    c = await join(replicas[2], "AI_Node_3", clients)
    await seen_all(replicas, 3)

    await a.send(share("p1", "m1"))
    assert (await a.recv_type("ACK"))["ref"] == "m1"
    # A share from the last replica is the barrier: whatever the others relayed because of p1
    # was published before it, so everything b and a would get of p1 arrived before p3.
    relayed_to_c = await c.recv_type("PATTERN_SHARE")
    assert (relayed_to_c["pattern_id"], relayed_to_c["from"]) == ("p1", "AI_Node_1")
    await c.send(share("p3", "m3"))
    assert (await c.recv_type("ACK"))["ref"] == "m3"

    got_b = await until(b, lambda f: f.get("pattern_id") == "p3")
    shares_b = [f for f in got_b if f["type"] == "PATTERN_SHARE"]
    assert [f["pattern_id"] for f in shares_b] == ["p1", "p3"]
    assert shares_b[0]["pattern_data"] == {"w": [1, 2, 3]}
    got_a = await until(a, lambda f: f.get("pattern_id") == "p3")
    assert [f["pattern_id"] for f in got_a if f["type"] == "PATTERN_SHARE"] == ["p3"]

    # Stored once (one database), and every replica counts both in its knowledge base.
    counts = await replicas[1].hub.store.counts()
    assert counts.shared_patterns == 2
    for replica in replicas:
        assert replica.hub.knowledge.count(ItemKind.PATTERN) == 2

    # A trainer arriving at another replica sees both in STATE.
    newcomer = await RawClient.connect(replicas[1].hub)
    clients.append(newcomer)
    state = await newcomer.login("AI_Node_4", "secret4")
    assert [p["pattern_id"] for p in state["knowledge_base"]["recent_patterns"]] == ["p3", "p1"]


async def test_a_component_for_one_ai_goes_to_its_replica_only(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await three(make_replica)
    a = await join(replicas[0], "AI_Node_1", clients)
    b = await join(replicas[1], "AI_Node_2", clients)
    c = await join(replicas[2], "AI_Node_3", clients)
    await seen_all(replicas, 3)

    await a.send(
        {
            "type": "OS_COMPONENT_SHARE",
            "msg_id": "m1",
            "component_id": "k1",
            "component_data": {"x": 1},
            "to": "AI_Node_2",
        }
    )
    assert (await a.recv_type("ACK"))["ref"] == "m1"
    await a.send(share("barrier", "m2"))
    got_b = await until(b, lambda f: f.get("pattern_id") == "barrier")
    components = [f for f in got_b if f["type"] == "OS_COMPONENT_SHARE"]
    assert [(f["component_id"], f["from"]) for f in components] == [("k1", "AI_Node_1")]
    got_c = await until(c, lambda f: f.get("pattern_id") == "barrier")
    assert [f for f in got_c if f["type"] == "OS_COMPONENT_SHARE"] == []


async def test_requests_to_everyone_and_to_one_ai_cross_replicas(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await three(make_replica)
    a = await join(replicas[0], "AI_Node_1", clients)
    b = await join(replicas[1], "AI_Node_2", clients)
    c = await join(replicas[2], "AI_Node_3", clients)
    await seen_all(replicas, 3)
    request = {
        "type": "COLLABORATION_REQUEST",
        "request_id": "q1",
        "expertise_offered": ["a"],
        "seeking_expertise": ["b"],
    }
    await a.send({**request, "msg_id": "m1"})
    assert (await a.recv_type("ACK"))["ref"] == "m1"
    for client in (b, c):
        got = await client.recv_type("COLLABORATION_REQUEST")
        assert (got["from"], got["request_id"], got["specialization"]) == ("AI_Node_1", "q1", "net")

    await a.send({**request, "msg_id": "m2", "request_id": "q2", "to": "AI_Node_3"})
    assert (await a.recv_type("ACK"))["ref"] == "m2"
    await a.send(share("barrier", "m3"))
    got_b = await until(b, lambda f: f.get("pattern_id") == "barrier")
    assert [f for f in got_b if f["type"] == "COLLABORATION_REQUEST"] == []
    got_c = await until(c, lambda f: f.get("pattern_id") == "barrier")
    assert [f["request_id"] for f in got_c if f["type"] == "COLLABORATION_REQUEST"] == ["q2"]

    # Only AIs online somewhere in the cluster can be addressed.
    await a.send({**request, "msg_id": "m4", "request_id": "q3", "to": "AI_Node_8"})
    error = await a.recv_type("ERROR")
    assert (error["code"], error["ref"]) == ("not_found", "m4")
