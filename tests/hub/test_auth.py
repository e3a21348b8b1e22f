"""Authentication: demo tokens, stored tokens, refusals, timeouts, takeover, loopback policy."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from kernal.hub.auth import hash_token, is_loopback, verify_token
from kernal.hub.server import Hub, HubConfigError
from kernal.storage.sql import SqlStore, database_url
from tests.conftest import HubFactory
from tests.helpers import RawClient, login


async def test_demo_token_accepted_on_empty_store(hub: Hub) -> None:
    client = await RawClient.connect(hub)
    await client.send({"ai_id": "AI_Node_1", "token": "secret1"})
    assert await client.recv() == {"type": "AUTH_OK", "ai_id": "AI_Node_1", "protocol_version": 1}
    await client.close()


@pytest.mark.parametrize(
    ("first", "fragment"),
    [
        ({"ai_id": "AI_Node_1", "token": "wrong"}, "invalid token"),
        ({"ai_id": "AI_Nobody", "token": "secret1"}, "kernal token add AI_Nobody"),
        ({"type": "HELLO", "specialization": "x"}, "first message must authenticate"),
        ({"ai_id": "AI_Node_1"}, "token"),
        ({"ai_id": "bad id with spaces", "token": "t"}, "ai_id"),
    ],
)
async def test_bad_first_message_fails_auth_and_closes(
    hub: Hub, first: dict[str, str], fragment: str
) -> None:
    client = await RawClient.connect(hub)
    await client.send(first)
    reply = await client.recv()
    assert reply["type"] == "AUTH_FAILED"
    assert fragment in reply["error"]
    await client.expect_closed()
    await client.close()
    assert hub.peers.sessions() == {}


async def test_garbage_first_frame_fails_auth(hub: Hub) -> None:
    client = await RawClient.connect(hub)
    await client.send_bytes(b"not json at all\n")
    assert (await client.recv())["type"] == "AUTH_FAILED"
    await client.expect_closed()
    await client.close()


async def test_silent_client_times_out(make_hub: HubFactory) -> None:
    hub = await make_hub(auth_timeout=0.2)
    client = await RawClient.connect(hub)
    reply = await client.recv(timeout=5)
    assert reply["type"] == "AUTH_FAILED"
    assert "no AUTH within" in reply["error"]
    await client.expect_closed()
    await client.close()


async def test_stored_tokens_replace_demo_tokens(hub: Hub) -> None:
    await hub.store.set_token_hash("AI_Custom", hash_token("s3cret-X", iterations=1000), 0.0)
    assert not await hub.auth.demo_mode()
    custom = await RawClient.connect(hub)
    await custom.send({"ai_id": "AI_Custom", "token": "s3cret-X"})
    assert (await custom.recv())["type"] == "AUTH_OK"
    demo = await RawClient.connect(hub)
    await demo.send({"ai_id": "AI_Node_1", "token": "secret1"})
    assert (await demo.recv())["type"] == "AUTH_FAILED"
    await custom.close()
    await demo.close()


async def test_revoked_token_refused_without_restart(hub: Hub) -> None:
    await hub.store.set_token_hash("AI_Custom", hash_token("tok", iterations=1000), 0.0)
    first = await RawClient.connect(hub)
    await first.send({"ai_id": "AI_Custom", "token": "tok"})
    assert (await first.recv())["type"] == "AUTH_OK"  # now cached as verified
    await first.close()
    await hub.store.set_token_hash("AI_Custom", hash_token("new", iterations=1000), 0.0)
    again = await RawClient.connect(hub)
    await again.send({"ai_id": "AI_Custom", "token": "tok"})
    assert (await again.recv())["type"] == "AUTH_FAILED"
    await again.close()


async def test_tokens_are_stored_hashed(hub: Hub) -> None:
    await hub.store.set_token_hash("AI_Custom", hash_token("plain-secret", iterations=1000), 0.0)
    with sqlite3.connect(hub.settings.db) as db:
        dump = "\n".join(db.iterdump())
    assert "plain-secret" not in dump
    assert "pbkdf2_sha256$" in dump


def test_token_hash_roundtrip() -> None:
    stored = hash_token("abc", iterations=1000)
    assert verify_token("abc", stored)
    assert not verify_token("abd", stored)
    assert not verify_token("abc", "garbage")
    assert hash_token("abc", iterations=1000) != stored  # salted


async def test_same_ai_connecting_again_takes_over(hub: Hub) -> None:
    old = await login(hub, "AI_Node_1")
    watcher = await login(hub, "AI_Node_2", "graphics")
    new = await RawClient.connect(hub)
    await new.send({"ai_id": "AI_Node_1", "token": "secret1"})
    assert (await new.recv())["type"] == "AUTH_OK"
    replaced = await old.recv_type("ERROR")
    assert replaced["code"] == "replaced"
    await old.expect_closed()
    await old.close()
    assert (await watcher.recv_type("AI_LEFT"))["ai_id"] == "AI_Node_1"
    await new.send({"type": "HELLO", "specialization": "networking", "capabilities": []})
    state = await new.recv_type("STATE")
    assert {ai["ai_id"] for ai in state["active_ais"]} == {"AI_Node_1", "AI_Node_2"}
    assert (await watcher.recv_type("AI_JOINED"))["ai_id"] == "AI_Node_1"
    assert hub.peers.get("AI_Node_1") is hub.peers.sessions()["AI_Node_1"]
    for client in (new, watcher):
        await client.close()


async def test_simultaneous_logins_of_one_ai_leave_exactly_one_live_session(hub: Hub) -> None:
    watcher = await login(hub, "AI_Node_2", "graphics")
    first = await login(hub, "AI_Node_1")
    rivals = [await RawClient.connect(hub) for _ in range(3)]
    for rival in rivals:  # three logins in flight at once, the first one already joined
        rival.writer.write(b'{"ai_id": "AI_Node_1", "token": "secret1"}\n')
    await asyncio.gather(*(rival.writer.drain() for rival in rivals))
    survivors = []
    for client in (first, *rivals):
        try:
            while (frame := await client.recv(timeout=5))["type"] != "AUTH_OK":
                assert frame["type"] in ("ERROR", "AI_JOINED", "AI_LEFT"), frame
            survivors.append(client)
        except ConnectionError:
            pass  # replaced and closed
    # Whoever got AUTH_OK and was then replaced is closed too: exactly one stays open.
    open_ones = []
    for client in survivors:
        await client.send({"type": "PING", "msg_id": "alive"})
        try:
            while (frame := await client.recv(timeout=5))["type"] != "PONG":
                pass
            open_ones.append(client)
        except ConnectionError:
            pass
    assert len(open_ones) == 1
    (live,) = open_ones
    await live.send({"type": "HELLO", "specialization": "networking", "capabilities": []})
    await live.recv_type("STATE")
    assert list(hub.peers.sessions()) == ["AI_Node_2", "AI_Node_1"] and len(hub.peers) == 2
    await watcher.send({"type": "PATTERN_SHARE", "pattern_id": "p", "pattern_data": {}})
    assert (await live.recv_type("PATTERN_SHARE"))["from"] == "AI_Node_2"
    for client in (first, *rivals, watcher):
        await client.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_non_loopback_addresses(host: str) -> None:
    assert not is_loopback(host)


async def test_refuses_public_bind_without_tokens(tmp_path: object) -> None:
    from pathlib import Path

    db = str(Path(str(tmp_path)) / "hub.db")
    from kernal.config import HubSettings

    hub = Hub(
        HubSettings(host="0.0.0.0", port=0, dashboard_port=None, db=db), SqlStore(database_url(db))
    )
    with pytest.raises(HubConfigError, match="kernal token add"):
        await hub.start()


async def test_public_bind_allowed_with_tokens_and_no_demo(tmp_path: object) -> None:
    from pathlib import Path

    from kernal.config import HubSettings

    db = str(Path(str(tmp_path)) / "hub.db")
    store = SqlStore(database_url(db))
    await store.open()
    await store.set_token_hash("AI_Custom", hash_token("tok", iterations=1000), 0.0)
    await store.close()
    hub = Hub(
        HubSettings(host="0.0.0.0", port=0, dashboard_port=None, db=db), SqlStore(database_url(db))
    )
    await hub.start()
    try:
        client = await RawClient.connect_to("127.0.0.1", hub.address[1])
        await client.send({"ai_id": "AI_Node_1", "token": "secret1"})
        assert (await client.recv())["type"] == "AUTH_FAILED"
        await client.close()
    finally:
        await hub.stop()


async def test_many_logins_at_once(hub: Hub) -> None:
    clients = await asyncio.gather(*(login(hub, f"AI_Node_{n}") for n in range(1, 9)))
    assert len(hub.peers) == 8
    for client in clients:
        await client.close()


async def test_pipelined_handshake_in_one_packet(hub: Hub) -> None:
    client = await RawClient.connect(hub)
    await client.send_bytes(
        b'{"ai_id": "AI_Node_1", "token": "secret1"}\n'
        b'{"type": "HELLO", "specialization": "networking"}\n'
        b'{"type": "PING", "msg_id": "p"}\n'
    )
    assert [(await client.recv())["type"] for _ in range(3)] == ["AUTH_OK", "STATE", "PONG"]
    await client.close()
