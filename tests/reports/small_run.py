"""A small real run for the report tests: a hub, three AIs sharing and rating, one
collaboration completed and one failed, several stats snapshots; its database is left behind."""

from __future__ import annotations

import asyncio
from typing import Any

from kernal.hub.server import Hub
from tests.conftest import HubFactory
from tests.helpers import RawClient, login


async def _acked(client: RawClient, frame: dict[str, Any]) -> dict[str, Any]:
    await client.send({"msg_id": "m", **frame})
    reply = await client.recv_type("ACK")
    return reply


async def _collaborate(
    requester: tuple[str, RawClient], acceptor: tuple[str, RawClient], rid: str
) -> str:
    """``requester`` asks ``acceptor`` (both ``(ai_id, client)``), which accepts."""
    frame = {"type": "COLLABORATION_REQUEST", "request_id": rid, "to": acceptor[0]}
    await _acked(requester[1], frame)
    accept = {"type": "COLLABORATION_ACCEPT", "request_id": rid, "to": requester[0]}
    cid: str = (await _acked(acceptor[1], accept))["collaboration_id"]
    return cid


async def make_small_run(make_hub: HubFactory, db: str) -> Hub:
    """Run it on ``db``; returns the stopped hub."""
    hub = await make_hub(db=db, speed=50.0, stats_interval=5.0)  # a snapshot every 0.1 s
    one = await login(hub, "AI_Node_1", "networking")
    two = await login(hub, "AI_Node_2", "graphics")
    for n in range(3):
        await _acked(
            one, {"type": "PATTERN_SHARE", "pattern_id": f"tcp-{n}", "pattern_data": {"n": n}}
        )
    await _acked(
        two,
        {"type": "OS_COMPONENT_SHARE", "component_id": "shader-1", "component_data": {"v": 1}},
    )
    for _ in range(2):
        await _acked(two, {"type": "FEEDBACK", "kind": "pattern", "id": "tcp-1", "score": 0.9})
    await _acked(one, {"type": "FEEDBACK", "kind": "component", "id": "shader-1", "score": 0.7})
    done = await _collaborate(("AI_Node_1", one), ("AI_Node_2", two), "r1")
    await asyncio.sleep(0.25)  # snapshots see it active
    await _acked(one, {"type": "COLLABORATION_COMPLETE", "collaboration_id": done})
    failed = await _collaborate(("AI_Node_2", two), ("AI_Node_1", one), "r2")
    await _acked(two, {"type": "COLLABORATION_FAILED", "collaboration_id": failed, "reason": "x"})
    for _ in range(400):  # bounded: a hub that stopped snapshotting fails the test below
        if len(await hub.store.stats_history()) >= 5:
            break
        await asyncio.sleep(0.05)
    for client in (one, two):
        await client.close()
    await hub.stop()
    return hub
