"""Every kind of bad frame gets an ERROR with a reason; nothing of it is stored or relayed, and
the connection stays usable (except for oversized frames, which close it)."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from kernal.hub.server import Hub
from tests.conftest import HubFactory
from tests.helpers import RawClient, login


def _rows(hub: Hub, table: str) -> int:
    with sqlite3.connect(hub.settings.db) as db:
        count: int = db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    return count


BAD_FRAMES: list[tuple[bytes, str]] = [
    (b"{not json", "bad_json"),
    (b"\xff\xfe{}", "bad_json"),
    (b'{"type": "PING", "x": NaN}', "bad_json"),
    (b"[1, 2, 3]", "not_an_object"),
    (b'"PATTERN_SHARE"', "not_an_object"),
    (b'{"type": "TELEPORT"}', "unknown_type"),
    (b'{"pattern_id": "p"}', "invalid_field"),
    (b'{"type": 7}', "invalid_field"),
    (b'{"type": "PATTERN_SHARE", "pattern_id": 5, "pattern_data": {}}', "invalid_field"),
    (b'{"type": "PATTERN_SHARE", "pattern_id": "p", "pattern_data": "text"}', "invalid_field"),
    (b'{"type": "PATTERN_SHARE", "pattern_id": "", "pattern_data": {}}', "invalid_field"),
    (
        b'{"type": "OS_COMPONENT_SHARE", "component_id": "c", "component_data": {},'
        b' "quality_score": 1.5}',
        "invalid_field",
    ),
    (
        b'{"type": "OS_COMPONENT_SHARE", "component_id": "c", "component_data": {},'
        b' "quality_score": "0.5"}',
        "invalid_field",
    ),
    (
        b'{"type": "OS_COMPONENT_SHARE", "component_id": "c", "component_data": {},'
        b' "collaboration_complete": true}',
        "invalid_field",
    ),
    (
        b'{"type": "COLLABORATION_PROGRESS", "collaboration_id": "x", "progress": true}',
        "invalid_field",
    ),
    (
        b'{"type": "COLLABORATION_REQUEST", "request_id": "r", "expertise_offered": "all"}',
        "invalid_field",
    ),
    (b'{"type": "FEEDBACK", "kind": "opinion", "id": "x"}', "invalid_field"),
    (b'{"type": "HELLO", "specialization": "x", "protocol_version": 2}', "invalid_field"),
    (b'{"type": "AUTH", "ai_id": "AI_Node_2", "token": "secret2"}', "forbidden"),
    (b'{"type": "COLLABORATION_PROGRESS", "collaboration_id": "nope", "progress": 5}', "not_found"),
    (b'{"type": "COLLABORATION_ACCEPT", "request_id": "r", "to": "AI_Node_9"}', "not_found"),
    (b'{"type": "FEEDBACK", "kind": "pattern", "id": "missing"}', "not_found"),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
async def test_bad_frame_gets_error_and_connection_survives(
    hub: Hub, frame: bytes, code: str
) -> None:
    client = await login(hub, "AI_Node_1")
    peer = await login(hub, "AI_Node_2", "graphics")
    await client.recv_type("AI_JOINED")
    await client.send_bytes(frame + b"\n")
    error = await client.recv()
    assert error["type"] == "ERROR", error
    assert error["code"] == code, error
    assert error["error"]  # a human-readable reason
    # Still usable afterwards, and nothing was stored or relayed.
    await client.send({"type": "PING", "msg_id": "after"})
    assert await client.recv() == {"type": "PONG", "ref": "after"}
    assert _rows(hub, "shared_patterns") == 0
    assert _rows(hub, "shared_components") == 0
    await peer.send({"type": "PING"})
    assert (await peer.recv())["type"] == "PONG"  # no relay arrived before the PONG
    await client.close()
    await peer.close()


async def test_error_carries_ref_of_msg_id(hub: Hub) -> None:
    client = await login(hub, "AI_Node_1")
    await client.send({"type": "PATTERN_SHARE", "msg_id": "m-42", "pattern_id": 1})
    error = await client.recv()
    assert (error["code"], error["ref"]) == ("invalid_field", "m-42")
    assert "pattern_id" in error["error"] and "pattern_data" in error["error"]
    await client.close()


async def test_messages_before_hello_are_refused(hub: Hub) -> None:
    client = await RawClient.connect(hub)
    await client.send({"ai_id": "AI_Node_1", "token": "secret1"})
    await client.recv()
    await client.send({"type": "PATTERN_SHARE", "pattern_id": "p", "pattern_data": {}})
    error = await client.recv()
    assert error["code"] == "forbidden" and "HELLO" in error["error"]
    await client.send({"type": "PING"})
    assert (await client.recv())["type"] == "PONG"
    assert _rows(hub, "shared_patterns") == 0
    await client.close()


async def test_oversized_frame_is_refused_and_closed(make_hub: HubFactory) -> None:
    hub = await make_hub(max_frame=4096)
    client = await login(hub, "AI_Node_1")
    big = (
        b'{"type":"PATTERN_SHARE","pattern_id":"big","pattern_data":{"x":"' + b"a" * 5000 + b'"}}\n'
    )
    await client.send_bytes(big)
    error = await client.recv()
    assert error["code"] == "frame_too_large"
    await client.expect_closed()
    await client.close()
    assert _rows(hub, "shared_patterns") == 0


async def test_oversized_frame_without_newline_is_cut_early(make_hub: HubFactory) -> None:
    hub = await make_hub(max_frame=4096)
    client = await login(hub, "AI_Node_1")
    await client.send_bytes(b"x" * 10_000)  # never terminated: must not be buffered forever
    assert (await client.recv())["code"] == "frame_too_large"
    await client.expect_closed()
    await client.close()


async def test_frame_at_the_limit_is_accepted(make_hub: HubFactory) -> None:
    hub = await make_hub(max_frame=4096)
    client = await login(hub, "AI_Node_1")
    head = b'{"type":"PATTERN_SHARE","pattern_id":"edge","pattern_data":{"x":"'
    tail = b'"}}'
    frame = head + b"a" * (4096 - len(head) - len(tail)) + tail
    assert len(frame) == 4096
    await client.send_bytes(frame + b"\n")
    assert (await client.recv())["type"] == "ACK"
    await client.close()


async def test_abrupt_disconnect_mid_frame_does_not_hurt_the_hub(hub: Hub) -> None:
    client = await login(hub, "AI_Node_1")
    await client.send_bytes(b'{"type":"PATTERN_SHARE","pattern_id":"half",')
    client.writer.transport.abort()
    await asyncio.sleep(0.1)
    assert "AI_Node_1" not in hub.peers.sessions()
    other = await login(hub, "AI_Node_2")
    await other.send({"type": "PING"})
    assert (await other.recv())["type"] == "PONG"
    assert _rows(hub, "shared_patterns") == 0
    await client.close()
    await other.close()


async def test_store_failure_is_an_internal_error_not_a_lost_connection(hub: Hub) -> None:
    client = await login(hub, "AI_Node_1")

    async def broken(*_: object, **__: object) -> None:
        raise OSError("disk unplugged")

    # Both ways a pattern reaches the store: alone, and in a run of shares.
    real, real_many = hub.store.add_pattern, hub.store.add_shares
    hub.store.add_pattern = broken  # type: ignore[method-assign]
    hub.store.add_shares = broken  # type: ignore[method-assign,assignment]
    try:
        await client.send(
            {"type": "PATTERN_SHARE", "msg_id": "m", "pattern_id": "p", "pattern_data": {}}
        )
        error = await client.recv_type("ERROR")
        assert (error["code"], error["ref"]) == ("internal_error", "m")
    finally:
        hub.store.add_pattern = real  # type: ignore[method-assign]
        hub.store.add_shares = real_many  # type: ignore[method-assign]
    await client.send(
        {"type": "PATTERN_SHARE", "msg_id": "again", "pattern_id": "p", "pattern_data": {}}
    )
    assert (await client.recv_type("ACK"))["ref"] == "again"
    await client.close()


async def test_frames_before_an_oversized_one_are_still_answered(make_hub: HubFactory) -> None:
    hub = await make_hub(max_frame=4096)
    client = await login(hub, "AI_Node_1")
    good = b'{"type":"PATTERN_SHARE","msg_id":"ok","pattern_id":"p","pattern_data":{}}\n'
    await client.send_bytes(good + b"y" * 5000 + b"\n")
    assert (await client.recv())["ref"] == "ok"
    assert (await client.recv())["code"] == "frame_too_large"
    await client.expect_closed()
    await client.close()
    assert _rows(hub, "shared_patterns") == 1


async def test_pipelined_shares_are_answered_in_order(hub: Hub) -> None:
    client = await login(hub, "AI_Node_1")
    frames = b"".join(
        b'{"type":"PATTERN_SHARE","msg_id":"m%d","pattern_id":"p%d","pattern_data":{}}\n' % (n, n)
        for n in range(50)
    )
    await client.send_bytes(frames + b'{"type":"PATTERN_SHARE","msg_id":"bad","pattern_id":7}\n')
    refs = [(await client.recv())["ref"] for _ in range(51)]
    assert refs == [f"m{n}" for n in range(50)] + ["bad"]
    assert _rows(hub, "shared_patterns") == 50
    await client.close()
