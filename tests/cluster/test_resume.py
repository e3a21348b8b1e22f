"""Resume across replicas: a trainer that left one replica and comes back to another gets the
shares it missed, once, by the origins it saw (``origin``/``origin_seq``); a replica that
cannot vouch for them says ``resumed: false``."""

from __future__ import annotations

from typing import Any

from kernal.serve import Service
from kernal.storage import ItemKind
from tests.cluster.conftest import ReplicaFactory, eventually
from tests.cluster.test_relay import join, seen_all, share, three
from tests.helpers import RawClient


async def hello(
    service: Service, ai_id: str, clients: list[RawClient], resume: dict[str, Any]
) -> tuple[RawClient, dict[str, Any]]:
    client = await RawClient.connect(service.hub)
    clients.append(client)
    await client.send({"ai_id": ai_id, "token": f"secret{ai_id.rsplit('_', 1)[1]}"})
    assert (await client.recv())["type"] == "AUTH_OK"
    await client.send({"type": "HELLO", "specialization": "net", "resume": resume})
    return client, await client.recv_type("STATE")


async def shared(client: RawClient, pattern_id: str) -> None:
    await client.send(share(pattern_id, f"m-{pattern_id}"))
    ack = await client.recv_type("ACK")
    assert ack["id"] == pattern_id


class Seen:
    """What a client keeps to resume: the run and seq of its replica, and per origin the last
    origin_seq (from STATE's ``origins``, raised by every share received)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.run: str = state["run"]
        self.after: int = state["seq"]
        self.origins: dict[str, int] = dict(state["origins"])

    def saw(self, frame: dict[str, Any]) -> None:
        self.after = max(self.after, frame["seq"])
        origin = frame["origin"]
        self.origins[origin] = max(self.origins.get(origin, 0), frame["origin_seq"])

    def point(self) -> dict[str, Any]:
        return {"run": self.run, "after": self.after, "origins": self.origins}


async def test_a_trainer_resumes_on_another_replica(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    replicas = await three(make_replica)
    trainer = await RawClient.connect(replicas[0].hub)
    state = await trainer.login("AI_Node_1", "secret1")
    assert state["origins"].keys() == {r.hub.replay.run for r in replicas}
    seen = Seen(state)
    near = await join(replicas[0], "AI_Node_2", clients)  # on the trainer's replica
    far = await join(replicas[1], "AI_Node_3", clients)
    farther = await join(replicas[2], "AI_Node_4", clients)
    await seen_all(replicas, 4)

    await shared(far, "before-1")
    await shared(near, "before-2")
    for _ in range(2):
        frame = await trainer.recv_type("PATTERN_SHARE")
        assert frame["origin"] in seen.origins and frame["origin_seq"] >= 1
        seen.saw(frame)
    await trainer.close()
    await eventually(lambda: all(r.hub.peers.total() == 3 for r in replicas))

    # While it is away: shares stored by each of the three replicas.
    for client, pattern_id in ((far, "away-1"), (near, "away-2"), (farther, "away-3")):
        await shared(client, pattern_id)
    await eventually(lambda: all(r.hub.knowledge.count(ItemKind.PATTERN) == 5 for r in replicas))

    back, state = await hello(replicas[1], "AI_Node_1", clients, seen.point())
    assert state["resumed"] is True
    missed = [await back.recv_type("PATTERN_SHARE") for _ in range(3)]
    assert sorted(f["pattern_id"] for f in missed) == ["away-1", "away-2", "away-3"]
    # Nothing it had seen comes again, and nothing newer came first: a share after STATE is
    # the barrier.
    await shared(far, "after")
    frame = await back.recv_type("PATTERN_SHARE")
    assert frame["pattern_id"] == "after"


async def test_a_replica_that_started_later_does_not_claim_to_resume(
    make_replica: ReplicaFactory, clients: list[RawClient]
) -> None:
    first, second = await make_replica(), await make_replica()
    await eventually(lambda: len(first.hub.cluster.replicas()) == 2)  # type: ignore[union-attr]
    trainer = await RawClient.connect(first.hub)
    seen = Seen(await trainer.login("AI_Node_1", "secret1"))
    await trainer.close()
    sharer = await join(second, "AI_Node_2", clients)
    await shared(sharer, "missed")  # before the new replica heard of anyone
    late = await make_replica()
    await eventually(lambda: len(late.hub.cluster.replicas()) == 3)  # type: ignore[union-attr]
    await eventually(lambda: late.hub.replay.origins().keys() >= {second.hub.replay.run})
    _, state = await hello(late, "AI_Node_1", clients, seen.point())
    assert state["resumed"] is False  # it never held "missed": STATE is the catch-up
    assert [p["pattern_id"] for p in state["knowledge_base"]["recent_patterns"]] == ["missed"]
    # And an origin nobody here ever heard of cannot be vouched for either.
    unknown = {**seen.point(), "origins": {**seen.origins, "f" * 16: 3}}
    _, other = await hello(first, "AI_Node_3", clients, unknown | {"run": "elsewhere"})
    assert other["resumed"] is False
