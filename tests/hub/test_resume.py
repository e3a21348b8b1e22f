"""Resume without loss: a reconnecting client names the last relayed share it saw and gets
every share it missed, right after STATE; a client that missed too much is told so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kernal.protocol.messages import RelayedPatternShare
from kernal.trainer.client import HubClient, Incoming
from tests.conftest import HubFactory
from tests.helpers import RawClient, login

OPEN: list[RawClient] = []


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    yield
    while OPEN:
        await OPEN.pop().close()


async def hello(hub: Any, n: int, **fields: Any) -> tuple[RawClient, dict[str, Any]]:
    client = await RawClient.connect(hub)
    OPEN.append(client)
    await client.send({"ai_id": f"AI_Node_{n}", "token": f"secret{n}"})
    assert (await client.recv())["type"] == "AUTH_OK"
    await client.send({"type": "HELLO", "specialization": "networking", **fields})
    return client, await client.recv_type("STATE")


async def share(client: RawClient, pattern_id: str, **extra: Any) -> None:
    await client.send({"type": "PATTERN_SHARE", "pattern_id": pattern_id, "pattern_data": {}})
    await client.recv_type("ACK")


async def test_a_reconnecting_client_gets_what_it_missed(make_hub: HubFactory) -> None:
    hub = await make_hub()
    sharer = await login(hub, "AI_Node_2", "graphics")
    OPEN.append(sharer)
    await share(sharer, "before")
    away, state = await hello(hub, 1)
    run, seq = state["run"], state["seq"]
    assert seq == 1
    await share(sharer, "seen")
    assert (await away.recv_type("PATTERN_SHARE"))["seq"] == 2
    await away.close()
    await asyncio.sleep(0.05)
    await share(sharer, "missed-1")
    await sharer.send({"type": "OS_COMPONENT_SHARE", "component_id": "for-1", "component_data": {}})
    await sharer.recv_type("ACK")
    await share(sharer, "missed-2")
    back, state = await hello(hub, 1, resume={"run": run, "after": 2})
    assert (state["resumed"], state["seq"]) == (True, 5)
    replayed = [await back.recv() for _ in range(3)]
    assert [(f["type"], f.get("pattern_id") or f.get("component_id")) for f in replayed] == [
        ("PATTERN_SHARE", "missed-1"),
        ("OS_COMPONENT_SHARE", "for-1"),
        ("PATTERN_SHARE", "missed-2"),
    ]
    assert [f["seq"] for f in replayed] == [3, 4, 5]
    # One hub, no cluster: nothing of origins (see tests/cluster/test_resume.py).
    assert "origins" not in state and not any("origin" in f for f in replayed)
    await back.send({"type": "PING", "msg_id": "p"})
    assert (await back.recv())["type"] == "PONG"  # and nothing more was replayed


async def test_its_own_shares_and_unfollowed_topics_are_not_replayed(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub()
    sharer = await login(hub, "AI_Node_2", "graphics")
    OPEN.append(sharer)
    me, state = await hello(hub, 1, follow=["requests"])
    await share(me, "mine")
    await share(sharer, "not-followed")
    await sharer.send(
        {"type": "OS_COMPONENT_SHARE", "component_id": "c", "component_data": {}, "to": "AI_Node_1"}
    )
    await sharer.recv_type("ACK")
    await me.close()
    back, state2 = await hello(
        hub, 1, follow=["requests"], resume={"run": state["run"], "after": state["seq"]}
    )
    assert state2["resumed"] is True
    assert (await back.recv())["component_id"] == "c"  # meant for it: replayed
    await back.send({"type": "PING"})
    assert (await back.recv())["type"] == "PONG"


async def test_too_much_missed_or_another_run_is_not_resumed(make_hub: HubFactory) -> None:
    hub = await make_hub(replay_items=2)
    sharer = await login(hub, "AI_Node_2", "graphics")
    OPEN.append(sharer)
    _, state = await hello(hub, 1)
    for n in range(3):
        await share(sharer, f"p{n}")
    _, late = await hello(hub, 3, resume={"run": state["run"], "after": state["seq"]})
    assert late["resumed"] is False  # p0 is gone from the log: STATE is the catch-up
    _, other = await hello(hub, 4, resume={"run": "another-run", "after": 1})
    assert other["resumed"] is False


async def test_the_sdk_resumes_across_a_dropped_connection(make_hub: HubFactory) -> None:
    hub = await make_hub()
    sharer = await login(hub, "AI_Node_2", "graphics")
    OPEN.append(sharer)
    seen: list[str] = []

    async def on_message(message: Incoming) -> None:
        if isinstance(message, RelayedPatternShare):
            seen.append(message.pattern_id)

    client = HubClient(
        *hub.address,
        "AI_Node_1",
        "secret1",
        specialization="networking",
        capabilities=[],
        on_message=on_message,
        backoff_initial=0.3,
    )
    task = asyncio.create_task(client.run())
    await asyncio.wait_for(client.connected.wait(), 5)
    await share(sharer, "first")
    for _ in range(100):
        if seen:
            break
        await asyncio.sleep(0.01)
    session = hub.peers.get("AI_Node_1")
    assert session is not None
    session.conn.abort()  # type: ignore[attr-defined]  # the network drops it
    await asyncio.sleep(0.05)
    await share(sharer, "while-away")  # relayed while the client is reconnecting
    for _ in range(300):
        if "while-away" in seen:
            break
        await asyncio.sleep(0.01)
    assert seen == ["first", "while-away"] and client.connections == 2
    await client.close()
    await asyncio.wait_for(task, 5)
