"""Presence across replicas: STATE, AI_JOINED/AI_LEFT, LIST_AIS, takeover, a replica dying."""

from __future__ import annotations

import asyncio

from kernal.serve import Service
from kernal.trainer.client import HubClient
from tests.cluster.conftest import ReplicaFactory, eventually
from tests.cluster.test_relay import join, seen_all, three
from tests.helpers import RawClient


async def test_state_and_arrivals_and_departures_span_the_cluster(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await three(make_replica)
    a = await join(replicas[0], "AI_Node_1", clients, "networking")
    await seen_all(replicas, 1)
    b = await join(replicas[1], "AI_Node_2", clients, "graphics")
    joined = await a.recv_type("AI_JOINED")
    assert (joined["ai_id"], joined["specialization"]) == ("AI_Node_2", "graphics")
    await seen_all(replicas, 2)

    c = RawClient(*(await asyncio.open_connection(*replicas[2].hub.address)))
    clients.append(c)
    state = await c.login("AI_Node_3", "secret3", "security")
    assert [ai["ai_id"] for ai in state["active_ais"]] == ["AI_Node_1", "AI_Node_2", "AI_Node_3"]
    assert state["active_total"] == 3
    for client in (a, b):
        assert (await client.recv_type("AI_JOINED"))["ai_id"] == "AI_Node_3"
    await seen_all(replicas, 3)

    await c.send({"type": "LIST_AIS", "msg_id": "l"})
    page = await c.recv_type("AIS")
    assert [ai["ai_id"] for ai in page["ais"]] == ["AI_Node_1", "AI_Node_2", "AI_Node_3"]
    await c.send({"type": "LIST_AIS", "ids": ["AI_Node_2", "AI_Node_9"]})  # on another replica
    assert [ai["ai_id"] for ai in (await c.recv_type("AIS"))["ais"]] == ["AI_Node_2"]

    await b.close()
    for client in (a, c):
        assert (await client.recv_type("AI_LEFT"))["ai_id"] == "AI_Node_2"
    await seen_all(replicas, 2)


async def test_the_same_ai_on_another_replica_takes_over(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await three(make_replica)
    watcher = await join(replicas[2], "AI_Node_3", clients)
    first = await join(replicas[0], "AI_Node_1", clients)
    assert (await watcher.recv_type("AI_JOINED"))["ai_id"] == "AI_Node_1"
    await seen_all(replicas, 2)

    second = await join(replicas[1], "AI_Node_1", clients)
    error = await first.recv_type("ERROR")
    assert error["code"] == "replaced"
    await first.expect_closed()
    # The watcher hears the old session leave before the new one arrives.
    assert (await watcher.recv_type("AI_LEFT"))["ai_id"] == "AI_Node_1"
    assert (await watcher.recv_type("AI_JOINED"))["ai_id"] == "AI_Node_1"
    cluster = replicas[2].hub.cluster
    assert cluster is not None
    await eventually(lambda: getattr(cluster.directory.get("AI_Node_1"), "replica", "") == "r2")

    # The new session works across the cluster.
    await second.send(
        {"type": "PATTERN_SHARE", "msg_id": "m", "pattern_id": "p", "pattern_data": {}}
    )
    assert (await second.recv_type("ACK"))["ref"] == "m"
    assert (await watcher.recv_type("PATTERN_SHARE"))["from"] == "AI_Node_1"


async def crash(service: Service) -> None:
    """What a replica that dies looks like to the others: it falls silent on the bus (no
    goodbye, its heartbeat stops), and its trainers' connections drop."""
    assert service.hub.cluster is not None
    service.hub.cluster.sever()
    await service.stop()


async def test_a_dead_replica_s_ais_leave_and_its_trainers_move(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await three(make_replica)
    watcher = await join(replicas[2], "AI_Node_3", clients)
    doomed = await join(replicas[0], "AI_Node_1", clients)
    assert (await watcher.recv_type("AI_JOINED"))["ai_id"] == "AI_Node_1"

    addresses = [replicas[0].hub.address, replicas[1].hub.address]
    trainer = HubClient(
        *addresses[0],
        "AI_Node_2",
        "secret2",
        specialization="graphics",
        capabilities=["x"],
        addresses=addresses,
        backoff_initial=0.05,
    )
    runner = asyncio.create_task(trainer.run())
    try:
        await asyncio.wait_for(trainer.connected.wait(), 5)
        assert trainer.address == replicas[0].hub.address
        assert (await watcher.recv_type("AI_JOINED"))["ai_id"] == "AI_Node_2"
        await seen_all(replicas, 3)

        await crash(replicas[0])
        await doomed.expect_closed()
        # The survivors notice from the heartbeat alone (no goodbye, no AI_LEFT from r1):
        # AI_Node_1 leaves; AI_Node_2 comes back, on r2.
        # AI_Node_2's move may reach the watcher before or after r1 is found dead.
        while (await watcher.recv_type("AI_LEFT"))["ai_id"] != "AI_Node_1":
            pass
        await eventually(lambda: trainer.connected.is_set() and trainer.connections == 2)
        assert trainer.address == replicas[1].hub.address
        survivors = replicas[1:]
        await eventually(lambda: all(r.hub.peers.total() == 2 for r in survivors))
        assert sorted(p.ai_id for p in replicas[2].hub.peers.profiles()) == [
            "AI_Node_2",
            "AI_Node_3",
        ]
        cluster = replicas[2].hub.cluster
        assert cluster is not None
        assert sorted(cluster.replicas()) == ["r2", "r3"]
    finally:
        await trainer.close()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)


async def test_of_two_logins_on_two_replicas_at_once_exactly_one_stays(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = [await make_replica() for _ in range(2)]
    await eventually(lambda: all(len(r.hub.cluster.replicas()) == 2 for r in replicas))  # type: ignore[union-attr]
    logins = [await RawClient.connect(r.hub) for r in replicas]
    clients.extend(logins)
    await asyncio.gather(*(c.send({"ai_id": "AI_Node_1", "token": "secret1"}) for c in logins))

    async def frames_of(client: RawClient) -> list[str]:
        seen = []
        try:
            while True:  # until the hub closes it, or nothing more comes for a while
                seen.append((await client.recv(timeout=2.0))["type"])
        except (TimeoutError, ConnectionError):
            return seen

    outcomes = await asyncio.gather(*(frames_of(c) for c in logins))
    assert sorted("ERROR" in seen for seen in outcomes) == [False, True]
    assert sum(r.hub.peers.live("AI_Node_1") is not None for r in replicas) == 1
