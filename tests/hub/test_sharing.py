"""Patterns and components: persisted before the ACK, relayed with the hub-stamped sender,
idempotent for the same contributor, conflicting for another, and kept across restarts."""

from __future__ import annotations

import json
from typing import Any

from kernal.hub.server import Hub
from tests.conftest import HubFactory
from tests.helpers import RawClient, login, query


def _query(hub: Hub, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in query(hub, sql)]


async def test_pattern_share_is_stored_acked_and_relayed(hub: Hub) -> None:
    sender = await login(hub, "AI_Node_1")
    receiver = await login(hub, "AI_Node_2", "graphics")
    await sender.recv_type("AI_JOINED")
    await sender.send(
        {
            "type": "PATTERN_SHARE",
            "msg_id": "m1",
            "pattern_id": "p1",
            "pattern_data": {"weights": [1, 2], "note": "héllo"},
            "from": "AI_Node_7",  # forged: ignored
            "contributor": "AI_Node_7",
            "timestamp": 1,
        }
    )
    ack = await sender.recv()
    assert ack == {"type": "ACK", "ref": "m1", "of": "PATTERN_SHARE", "id": "p1"}
    # The ACK came after the commit: the row is already visible to another connection.
    rows = _query(
        hub,
        "SELECT pattern_id, pattern_data, contributor, timestamp, usage_count FROM shared_patterns",
    )
    assert len(rows) == 1
    pattern_id, data, contributor, timestamp, usage = rows[0]
    assert (pattern_id, contributor, usage) == ("p1", "AI_Node_1", 0)
    assert json.loads(data) == {"weights": [1, 2], "note": "héllo"}
    assert timestamp > 1_700_000_000
    relayed = await receiver.recv_type("PATTERN_SHARE")
    assert relayed["from"] == "AI_Node_1"
    assert relayed["pattern_id"] == "p1"
    assert relayed["pattern_data"] == {"weights": [1, 2], "note": "héllo"}
    assert relayed["timestamp"] == timestamp
    await sender.close()
    await receiver.close()


async def test_sender_does_not_get_its_own_relay(hub: Hub) -> None:
    sender = await login(hub, "AI_Node_1")
    await sender.send({"type": "PATTERN_SHARE", "pattern_id": "p1", "pattern_data": {}})
    assert (await sender.recv())["type"] == "ACK"
    await sender.send({"type": "PING"})
    assert (await sender.recv())["type"] == "PONG"
    await sender.close()


async def test_resend_is_idempotent_and_reuse_by_other_conflicts(hub: Hub) -> None:
    first = await login(hub, "AI_Node_1")
    other = await login(hub, "AI_Node_2")
    await first.send({"type": "PATTERN_SHARE", "pattern_id": "p1", "pattern_data": {"v": 1}})
    assert (await first.recv_type("ACK")).get("duplicate") is None
    await first.send({"type": "PATTERN_SHARE", "pattern_id": "p1", "pattern_data": {"v": 1}})
    assert (await first.recv_type("ACK"))["duplicate"] is True
    await other.send(
        {"type": "PATTERN_SHARE", "msg_id": "x", "pattern_id": "p1", "pattern_data": {}}
    )
    error = await other.recv_type("ERROR")
    assert (error["code"], error["ref"]) == ("conflict", "x")
    assert _query(
        hub, "SELECT COUNT(*), contributor FROM shared_patterns GROUP BY contributor"
    ) == [(1, "AI_Node_1")]
    # The relay of p1 reached AI_Node_2 exactly once.
    await other.send({"type": "PING"})
    seen = []
    while (message := await other.recv())["type"] != "PONG":
        seen.append(message["type"])
    assert seen.count("PATTERN_SHARE") <= 1
    await first.close()
    await other.close()


async def test_component_broadcast_and_targeted(hub: Hub) -> None:
    a = await login(hub, "AI_Node_1")
    b = await login(hub, "AI_Node_2")
    c = await login(hub, "AI_Node_3")
    await a.send(
        {
            "type": "OS_COMPONENT_SHARE",
            "component_id": "c1",
            "component_data": {"k": 1},
            "quality_score": 0.7,
        }
    )
    assert (await a.recv_type("ACK"))["id"] == "c1"
    for peer in (b, c):
        relayed = await peer.recv_type("OS_COMPONENT_SHARE")
        assert (relayed["from"], relayed["component_id"], relayed["quality_score"]) == (
            "AI_Node_1",
            "c1",
            0.7,
        )
    await a.send(
        {
            "type": "OS_COMPONENT_SHARE",
            "component_id": "c2",
            "component_data": {},
            "to": "AI_Node_3",
        }
    )
    await a.recv_type("ACK")
    assert (await c.recv_type("OS_COMPONENT_SHARE"))["component_id"] == "c2"
    await b.send({"type": "PING"})
    while (message := await b.recv())["type"] != "PONG":
        assert message.get("component_id") != "c2", "targeted share leaked to a third AI"
    rows = _query(
        hub,
        "SELECT component_id, contributor, quality_score, usage_count"
        " FROM shared_components ORDER BY component_id",
    )
    assert rows == [("c1", "AI_Node_1", 0.7, 0), ("c2", "AI_Node_1", None, 0)]
    for client in (a, b, c):
        await client.close()


async def test_targeted_share_to_absent_ai_stores_nothing(hub: Hub) -> None:
    a = await login(hub, "AI_Node_1")
    await a.send(
        {"type": "OS_COMPONENT_SHARE", "component_id": "c", "component_data": {}, "to": "AI_Node_5"}
    )
    assert (await a.recv_type("ERROR"))["code"] == "not_found"
    assert _query(hub, "SELECT COUNT(*) FROM shared_components") == [(0,)]
    await a.close()


async def test_feedback_counts_usage_and_averages_scores(hub: Hub) -> None:
    author = await login(hub, "AI_Node_1")
    user2 = await login(hub, "AI_Node_2")
    user3 = await login(hub, "AI_Node_3")
    await author.send(
        {
            "type": "OS_COMPONENT_SHARE",
            "component_id": "c1",
            "component_data": {},
            "quality_score": 0.99,
        }
    )
    await author.recv_type("ACK")
    await author.send({"type": "PATTERN_SHARE", "pattern_id": "p1", "pattern_data": {}})
    await author.recv_type("ACK")
    await user2.send({"type": "FEEDBACK", "kind": "component", "id": "c1", "score": 0.4})
    await user2.recv_type("ACK")
    await user3.send({"type": "FEEDBACK", "kind": "component", "id": "c1", "score": 0.6})
    await user3.recv_type("ACK")
    await user3.send({"type": "FEEDBACK", "kind": "component", "id": "c1"})
    await user3.recv_type("ACK")
    await user2.send({"type": "FEEDBACK", "kind": "pattern", "id": "p1"})
    await user2.recv_type("ACK")
    ((quality, usage),) = _query(hub, "SELECT quality_score, usage_count FROM shared_components")
    assert usage == 2  # two distinct users: AI_Node_3's second FEEDBACK is the same use
    assert abs(quality - 0.5) < 1e-9  # the mean of what users measured, not the author's 0.99
    assert _query(hub, "SELECT usage_count FROM shared_patterns") == [(1,)]
    await author.send({"type": "FEEDBACK", "kind": "component", "id": "c1", "score": 1.0})
    assert (await author.recv_type("ERROR"))["code"] == "forbidden"
    for client in (author, user2, user3):
        await client.close()


async def test_knowledge_survives_restart(make_hub: HubFactory, tmp_path: object) -> None:
    hub = await make_hub()
    a = await login(hub, "AI_Node_1")
    for n in range(3):
        await a.send({"type": "PATTERN_SHARE", "pattern_id": f"p{n}", "pattern_data": {"n": n}})
        await a.recv_type("ACK")
    await a.send({"type": "OS_COMPONENT_SHARE", "component_id": "c0", "component_data": {}})
    await a.recv_type("ACK")
    await a.close()
    before = await hub.status()
    await hub.stop()

    restarted = await make_hub(db=hub.settings.db)
    after = await restarted.status()
    assert (after.shared_patterns, after.shared_components) == (3, 1)
    assert (before.shared_patterns, before.shared_components) == (3, 1)
    newcomer = await RawClient.connect(restarted)
    state = await newcomer.login("AI_Node_2", "secret2")
    kb = state["knowledge_base"]
    assert (kb["shared_patterns"], kb["shared_components"]) == (3, 1)
    assert [p["pattern_id"] for p in kb["recent_patterns"]] == ["p2", "p1", "p0"]
    assert kb["recent_patterns"][0]["pattern_data"] == {"n": 2}
    assert kb["recent_components"][0]["component_id"] == "c0"
    await newcomer.close()


async def test_state_lists_active_ais_and_joins_are_announced(hub: Hub) -> None:
    a = await login(hub, "AI_Node_1", "networking")
    b = RawClient(*(await _open(hub)))
    state = await b.login("AI_Node_2", "secret2", "graphics")
    assert state["active_ais"] == [
        {
            "ai_id": "AI_Node_1",
            "specialization": "networking",
            "capabilities": ["x"],
            "reputation": 0.5,
        },
        {
            "ai_id": "AI_Node_2",
            "specialization": "graphics",
            "capabilities": ["x"],
            "reputation": 0.5,
        },
    ]
    joined = await a.recv_type("AI_JOINED")
    assert (joined["ai_id"], joined["specialization"]) == ("AI_Node_2", "graphics")
    await b.close()
    assert (await a.recv_type("AI_LEFT"))["ai_id"] == "AI_Node_2"
    rows = _query(hub, "SELECT ai_id, specialization, capabilities FROM ais ORDER BY ai_id")
    assert rows == [("AI_Node_1", "networking", '["x"]'), ("AI_Node_2", "graphics", '["x"]')]
    await a.close()


async def _open(hub: Hub) -> tuple[Any, Any]:
    import asyncio

    return await asyncio.open_connection(*hub.address)


async def test_state_recent_lists_are_bounded_by_frame_size(make_hub: HubFactory) -> None:
    hub = await make_hub(max_frame=64 * 1024)
    a = await login(hub, "AI_Node_1")
    for n in range(10):
        await a.send(
            {"type": "PATTERN_SHARE", "pattern_id": f"p{n}", "pattern_data": {"blob": "z" * 10_000}}
        )
        await a.recv_type("ACK")
    b = await RawClient.connect(hub)
    state = await b.login("AI_Node_2", "secret2")
    assert state["knowledge_base"]["shared_patterns"] == 10
    assert 0 < len(state["knowledge_base"]["recent_patterns"]) < 10
    assert len(json.dumps(state)) <= 32 * 1024
    await a.close()
    await b.close()
