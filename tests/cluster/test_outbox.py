"""Frames for AIs on other replicas: one bus message per replica for a frame sent to several of
its AIs, in order; checked on the Outbox alone and on the real bus."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from kernal.hub.replica_wire import Outbox, unpack
from tests.cluster.conftest import REDIS_URL, ReplicaFactory, eventually
from tests.cluster.test_relay import join, seen_all
from tests.helpers import RawClient


async def test_one_frame_for_several_ais_of_a_replica_is_one_group_in_order() -> None:
    sent: list[tuple[str, bytes, list[str]]] = []
    outbox = Outbox(lambda replica, frame, ais: sent.append((replica, frame, ais)))
    a, b = b"A\n", b"B\n"
    outbox.add("r2", "x", a)
    outbox.add("r3", "y", a)
    outbox.add("r2", "z", a)
    outbox.add("r2", "x", b)
    outbox.add("r2", "z", a)  # after b: a group of its own, or z would get a before b
    assert sent == []  # gathered until the end of this turn
    await asyncio.sleep(0)
    assert sent == [
        ("r2", a, ["x", "z"]),
        ("r2", b, ["x"]),
        ("r2", a, ["z"]),
        ("r3", a, ["y"]),
    ]
    outbox.add("r2", "x", a)
    outbox.flush()  # what the cluster does before it publishes anything else
    assert sent[-1] == ("r2", a, ["x"]) and not outbox


async def test_a_request_to_everyone_is_one_bus_message_per_replica(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = [await make_replica(), await make_replica()]
    await eventually(lambda: all(len(r.hub.cluster.replicas()) == 2 for r in replicas))  # type: ignore[union-attr]
    cluster = replicas[1].hub.cluster
    assert cluster is not None
    requester = await join(replicas[0], "AI_Node_1", clients)
    others = [await join(replicas[1], f"AI_Node_{n}", clients) for n in (2, 3, 4)]
    await seen_all(replicas, 4)

    redis = Redis.from_url(REDIS_URL)
    listener = redis.pubsub(ignore_subscribe_messages=True)
    try:
        await listener.subscribe(cluster.channel_of("r2"))
        await requester.send(
            {
                "type": "COLLABORATION_REQUEST",
                "msg_id": "q",
                "request_id": "r1",
                "seeking_expertise": ["x"],
            }
        )
        assert (await requester.recv_type("ACK"))["ref"] == "q"
        for other in others:
            assert (await other.recv_type("COLLABORATION_REQUEST"))["request_id"] == "r1"
        # A barrier: a request for one AI, after which r2's channel has nothing more of r1.
        await requester.send(
            {"type": "COLLABORATION_REQUEST", "msg_id": "b", "request_id": "r2", "to": "AI_Node_2"}
        )
        sends: list[tuple[Any, bytes]] = []
        async with asyncio.timeout(10):
            while not sends or b'"r2"' not in sends[-1][1]:
                message = await listener.get_message(timeout=1.0)
                if message is not None:
                    header, body = unpack(message["data"])
                    if header["k"] == "s":
                        sends.append((header["to"], body))
        to_all, barrier = sends
        assert sorted(to_all[0]) == ["AI_Node_2", "AI_Node_3", "AI_Node_4"]
        assert barrier[0] == "AI_Node_2"
    finally:
        await listener.aclose()
        await redis.aclose()
