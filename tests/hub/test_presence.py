"""Presence and broadcasts that scale: what an AI follows, bounded STATE, LIST_AIS, and the
bounded fan-out of requests sent to everyone. Small hubs keep the original behaviour."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from tests.conftest import HubFactory
from tests.helpers import RawClient, login

OPEN: list[RawClient] = []  # closed after each test (and kept open until then)


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    yield
    while OPEN:
        await OPEN.pop().close()


async def join(
    hub: object, n: int, specialization: str = "networking", **hello: object
) -> RawClient:
    client = await RawClient.connect(hub)  # type: ignore[arg-type]
    OPEN.append(client)
    await client.send({"ai_id": f"AI_Node_{n}", "token": f"secret{n}"})
    assert (await client.recv())["type"] == "AUTH_OK"
    await client.send({"type": "HELLO", "specialization": specialization, **hello})
    await client.recv_type("STATE")
    return client


async def nothing_more(client: RawClient, wait: float = 0.2) -> list[dict[str, object]]:
    """Every frame that arrives within ``wait`` seconds."""
    frames = []
    try:
        while True:
            frames.append(await client.recv(timeout=wait))
    except TimeoutError:
        return frames


async def test_an_ai_gets_only_the_broadcasts_it_follows(make_hub: HubFactory) -> None:
    hub = await make_hub()
    picky = await join(hub, 1, follow=["requests"])
    sharer = await login(hub, "AI_Node_2", "graphics")
    OPEN.append(sharer)
    assert await nothing_more(picky) == []  # no AI_JOINED: it does not follow presence
    await sharer.send({"type": "PATTERN_SHARE", "pattern_id": "p", "pattern_data": {}})
    await sharer.send({"type": "OS_COMPONENT_SHARE", "component_id": "c", "component_data": {}})
    await sharer.send(
        {"type": "OS_COMPONENT_SHARE", "component_id": "d", "component_data": {}, "to": "AI_Node_1"}
    )
    await sharer.send({"type": "COLLABORATION_REQUEST", "request_id": "r"})
    got = await nothing_more(picky)
    assert [(f["type"], f.get("component_id")) for f in got] == [
        ("OS_COMPONENT_SHARE", "d"),  # meant for it alone: always delivered
        ("COLLABORATION_REQUEST", None),
    ]
    # A later HELLO changes what it follows.
    await picky.send({"type": "HELLO", "specialization": "networking", "follow": ["patterns"]})
    await picky.recv_type("STATE")
    await sharer.send({"type": "PATTERN_SHARE", "pattern_id": "p2", "pattern_data": {}})
    await sharer.send({"type": "COLLABORATION_REQUEST", "request_id": "r2"})
    assert [f["type"] for f in await nothing_more(picky)] == ["PATTERN_SHARE"]
    for client in (picky, sharer):
        await client.close()


async def test_past_the_presence_limit_state_is_bounded_and_arrivals_are_quiet(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(presence_limit=2)
    first = await join(hub, 1)
    await join(hub, 2)
    assert [f["type"] for f in await nothing_more(first)] == ["AI_JOINED"]
    third = await RawClient.connect(hub)
    OPEN.append(third)
    await third.send({"ai_id": "AI_Node_3", "token": "secret3"})
    await third.recv()
    await third.send({"type": "HELLO", "specialization": "security"})
    state = await third.recv_type("STATE")
    assert {ai["ai_id"] for ai in state["active_ais"]} == {"AI_Node_1", "AI_Node_2", "AI_Node_3"}
    assert state["active_total"] == 3
    assert await nothing_more(first) == []  # a third AI is past the limit: not announced
    fourth = await RawClient.connect(hub)
    OPEN.append(fourth)
    await fourth.send({"ai_id": "AI_Node_4", "token": "secret4"})
    await fourth.recv()
    await fourth.send({"type": "HELLO", "specialization": "audio"})
    state = await fourth.recv_type("STATE")
    assert {ai["ai_id"] for ai in state["active_ais"]} == {"AI_Node_2", "AI_Node_3", "AI_Node_4"}
    assert state["active_total"] == 4
    assert await nothing_more(first) == []  # past the limit: no AI_JOINED
    # Everyone, a page at a time.
    await fourth.send({"type": "LIST_AIS", "msg_id": "l1", "limit": 3})
    page = await fourth.recv_type("AIS")
    assert page["ref"] == "l1" and page["active_total"] == 4
    assert [ai["ai_id"] for ai in page["ais"]] == ["AI_Node_1", "AI_Node_2", "AI_Node_3"]
    assert all(ai["reputation"] == 0.5 and ai["specialization"] for ai in page["ais"])
    await fourth.send({"type": "LIST_AIS", "after": page["next"], "limit": 3})
    rest = await fourth.recv_type("AIS")
    assert [ai["ai_id"] for ai in rest["ais"]] == ["AI_Node_4"] and "next" not in rest
    await fourth.send({"type": "LIST_AIS", "specialization": "security"})
    assert [ai["ai_id"] for ai in (await fourth.recv_type("AIS"))["ais"]] == ["AI_Node_3"]
    # Departures are quiet too, until the hub is back within the limit.
    await third.close()
    await fourth.close()
    assert await nothing_more(first) == []
    second_to_last = OPEN[1]
    await second_to_last.close()
    assert [f["type"] for f in await nothing_more(first)] == ["AI_LEFT"]


async def test_list_ais_by_id_lists_only_those_joined(make_hub: HubFactory) -> None:
    hub = await make_hub(presence_limit=2)
    asker = await join(hub, 1)
    for n in (2, 3, 4):
        await join(hub, n, "graphics" if n == 3 else "networking")
    named = ["AI_Node_4", "AI_Node_2", "AI_Gone", "AI_Node_4"]  # unsorted, unknown, twice
    await asker.send({"type": "LIST_AIS", "msg_id": "i", "ids": named})
    page = await asker.recv_type("AIS")
    assert page["ref"] == "i" and page["active_total"] == 4 and "next" not in page
    assert [ai["ai_id"] for ai in page["ais"]] == ["AI_Node_2", "AI_Node_4"]
    assert all(ai["reputation"] == 0.5 for ai in page["ais"])
    # after, limit and specialization still apply, among the ids.
    three = ["AI_Node_1", "AI_Node_2", "AI_Node_3"]
    await asker.send({"type": "LIST_AIS", "ids": three, "limit": 2})
    first = await asker.recv_type("AIS")
    assert [ai["ai_id"] for ai in first["ais"]] == ["AI_Node_1", "AI_Node_2"]
    await asker.send({"type": "LIST_AIS", "ids": three, "limit": 2, "after": first["next"]})
    assert [ai["ai_id"] for ai in (await asker.recv_type("AIS"))["ais"]] == ["AI_Node_3"]
    await asker.send({"type": "LIST_AIS", "ids": three, "specialization": "graphics"})
    assert [ai["ai_id"] for ai in (await asker.recv_type("AIS"))["ais"]] == ["AI_Node_3"]
    await asker.send({"type": "LIST_AIS", "ids": []})
    assert (await asker.recv_type("AIS"))["ais"] == []


@pytest.mark.parametrize(
    ("ids", "reason"),
    [
        ([f"AI_{n}" for n in range(1001)], "ids: List should have at most 1000 items"),
        (["not an id"], "ids.0: String should match pattern"),
        ("AI_Node_2", "ids: Input should be a valid list"),
    ],
)
async def test_list_ais_ids_out_of_bounds_get_an_error(
    make_hub: HubFactory, ids: object, reason: str
) -> None:
    hub = await make_hub()
    asker = await join(hub, 1)
    await asker.send({"type": "LIST_AIS", "msg_id": "bad", "ids": ids})
    error = await asker.recv_type("ERROR")
    assert (error["code"], error["ref"]) == ("invalid_field", "bad")
    assert reason in error["error"]


async def test_list_ais_needs_hello(make_hub: HubFactory) -> None:
    hub = await make_hub()
    client = await RawClient.connect(hub)
    OPEN.append(client)
    await client.send({"ai_id": "AI_Node_1", "token": "secret1"})
    await client.recv()
    await client.send({"type": "LIST_AIS", "msg_id": "x"})
    error = await client.recv_type("ERROR")
    assert (error["code"], error["ref"]) == ("forbidden", "x")


async def test_a_request_to_everyone_reaches_a_bounded_sample_complementary_first(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(request_fanout=2)
    asker = await join(hub, 1, "networking", follow=["requests"])
    same = [await join(hub, n, "networking", follow=["requests"]) for n in (2, 3, 4)]
    other = [await join(hub, n, "graphics", follow=["requests"]) for n in (5, 6)]
    for round_ in range(5):
        await asker.send({"type": "COLLABORATION_REQUEST", "request_id": f"r{round_}"})
        await asker.recv_type("ACK")
        got_other = [len(await nothing_more(c, 0.1)) for c in other]
        got_same = [len(await nothing_more(c, 0.05)) for c in same]
        assert got_other == [1, 1] and got_same == [0, 0, 0]  # two complementary peers first
    # With fewer complementary peers than the fan-out, the rest come from the others.
    await other[0].close()
    await asyncio.sleep(0.1)
    await asker.send({"type": "COLLABORATION_REQUEST", "request_id": "r-last"})
    await asker.recv_type("ACK")
    assert len(await nothing_more(other[1], 0.1)) == 1
    assert sum([len(await nothing_more(c, 0.05)) for c in same]) == 1
    # Any joined AI may still accept a request it did not receive.
    await same[2].send(
        {"type": "COLLABORATION_ACCEPT", "request_id": "r0", "to": "AI_Node_1", "msg_id": "a"}
    )
    assert (await same[2].recv_type("ACK"))["collaboration_id"].startswith("collab_")


async def test_state_shows_feedback_on_recent_items_without_reading_the_store(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub()
    author = await login(hub, "AI_Node_1")
    OPEN.append(author)
    await author.send({"type": "OS_COMPONENT_SHARE", "component_id": "c", "component_data": {}})
    await author.recv_type("ACK")
    rater = await login(hub, "AI_Node_2", "graphics")
    OPEN.append(rater)
    await rater.send({"type": "FEEDBACK", "kind": "component", "id": "c", "score": 0.25})
    await rater.recv_type("ACK")
    late = await RawClient.connect(hub)
    OPEN.append(late)
    state = await late.login("AI_Node_3", "secret3")
    (item,) = state["knowledge_base"]["recent_components"]
    assert (item["usage_count"], item["quality_score"]) == (1, 0.25)
    assert state["knowledge_base"]["shared_components"] == 1


async def test_state_is_what_the_state_model_says(make_hub: HubFactory) -> None:
    """STATE is assembled from cached pieces: it must still be exactly a valid STATE."""
    from kernal.protocol import decode_server_message, encode
    from kernal.protocol.messages import State

    hub = await make_hub()
    first = await join(hub, 1)
    await first.send({"type": "OS_COMPONENT_SHARE", "component_id": "c", "component_data": {}})
    await first.send(
        {"type": "PATTERN_SHARE", "pattern_id": "p", "pattern_data": {"w": [1e15, "é"]}}
    )
    await first.recv_type("ACK")
    await first.recv_type("ACK")
    late = await RawClient.connect(hub)
    OPEN.append(late)
    await late.send({"ai_id": "AI_Node_2", "token": "secret2"})
    await late.recv()
    await late.send({"type": "HELLO", "specialization": "graphics", "capabilities": ["a"]})
    line = await late.reader.readline()
    state = decode_server_message(line)
    assert isinstance(state, State)
    assert json.loads(line) == json.loads(encode(state))
    raw = json.loads(line)
    assert raw["knowledge_base"]["recent_components"][0]["quality_score"] is None  # key kept
    assert raw["knowledge_base"]["recent_patterns"][0]["pattern_data"] == {"w": [1e15, "é"]}
    assert [ai["ai_id"] for ai in raw["active_ais"]] == ["AI_Node_1", "AI_Node_2"]


async def test_a_component_shared_with_one_ai_stays_out_of_state(make_hub: HubFactory) -> None:
    hub = await make_hub()
    author = await join(hub, 1)
    await join(hub, 2)
    await author.send(
        {
            "type": "OS_COMPONENT_SHARE",
            "component_id": "secret",
            "component_data": {},
            "to": "AI_Node_2",
        }
    )
    await author.recv_type("ACK")
    late = await RawClient.connect(hub)
    OPEN.append(late)
    state = await late.login("AI_Node_3", "secret3")
    assert state["knowledge_base"]["recent_components"] == []
    assert state["knowledge_base"]["shared_components"] == 1
