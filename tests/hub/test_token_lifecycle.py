"""Tokens that change while the hub runs: expiry, revoke and rotate from another process, the
tokens file, and the sessions that used them."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kernal.cli import app
from kernal.hub.auth import hash_token, refusal
from kernal.hub.server import Hub, HubConfigError
from kernal.storage import StoredToken
from kernal.timing import Clock
from kernal.trainer.client import AuthenticationError, HubClient
from tests.conftest import HubFactory
from tests.helpers import RawClient, login

runner = CliRunner()
FAST = {"token_check_interval": 0.05}  # real seconds; the default is 2


async def connect(hub: Hub, ai_id: str, token: str) -> RawClient:
    client = await RawClient.connect(hub)
    await client.login(ai_id, token)
    return client


async def auth_reply(hub: Hub, ai_id: str, token: str) -> dict[str, Any]:
    client = await RawClient.connect(hub)
    try:
        await client.send({"ai_id": ai_id, "token": token})
        return await client.recv()
    finally:
        await client.close()


async def cli(*args: str) -> Any:
    """The CLI in its own event loop, as when typed in another terminal."""
    return await asyncio.to_thread(runner.invoke, app, list(args))


async def add_token(hub: Hub, ai_id: str, token: str, expires_at: float | None = None) -> None:
    await hub.store.set_token_hash(
        ai_id, hash_token(token, iterations=1000), Clock.now(), expires_at=expires_at
    )


async def test_an_expired_token_gets_the_answer_of_a_wrong_one(make_hub: HubFactory) -> None:
    hub = await make_hub()
    await add_token(hub, "AI_Old", "right", expires_at=Clock.now() - 1)
    expired = await auth_reply(hub, "AI_Old", "right")
    wrong = await auth_reply(hub, "AI_Old", "wrong")
    unknown = await auth_reply(hub, "AI_Nobody", "right")
    assert expired == wrong == {"type": "AUTH_FAILED", "error": refusal("AI_Old")}
    assert unknown["error"] == refusal("AI_Nobody")


async def test_revoking_disconnects_the_live_session(make_hub: HubFactory, tmp_path: Path) -> None:
    hub = await make_hub(**FAST)
    db = hub.settings.db
    await add_token(hub, "AI_A", "token-a")
    await add_token(hub, "AI_B", "token-b")
    a = await connect(hub, "AI_A", "token-a")
    b = await connect(hub, "AI_B", "token-b")
    result = await cli("token", "revoke", "AI_A", "--db", db)
    assert result.exit_code == 0, result.output
    error = await a.recv_type("ERROR")
    assert error["code"] == "token_revoked" and "revoked" in error["error"]
    await a.expect_closed()
    await a.close()
    assert (await b.recv_type("AI_LEFT"))["ai_id"] == "AI_A"  # B stays, and sees A go
    await b.send({"type": "PING", "msg_id": "still-here"})
    assert (await b.recv_type("PONG"))["ref"] == "still-here"
    assert (await auth_reply(hub, "AI_A", "token-a"))["type"] == "AUTH_FAILED"
    await b.close()


async def test_rotating_disconnects_the_old_token_and_the_new_one_works(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(**FAST)
    await add_token(hub, "AI_A", "token-a")
    a = await connect(hub, "AI_A", "token-a")
    result = await cli("token", "rotate", "AI_A", "--expires", "30d", "--db", hub.settings.db)
    assert result.exit_code == 0, result.output
    new_token = result.stdout.strip().splitlines()[-1]
    error = await a.recv_type("ERROR")
    assert error["code"] == "token_revoked" and "rotated" in error["error"]
    await a.expect_closed()
    await a.close()
    assert (await auth_reply(hub, "AI_A", "token-a"))["type"] == "AUTH_FAILED"
    again = await connect(hub, "AI_A", new_token)
    stored = await hub.store.get_token("AI_A")
    assert stored is not None and stored.expires_at is not None
    assert 29 * 86_400 < stored.expires_at - Clock.now() <= 30 * 86_400
    await again.close()


async def test_a_token_that_expires_while_connected_ends_the_session(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(**FAST)
    await add_token(hub, "AI_A", "token-a", expires_at=Clock.now() + 0.5)
    a = await connect(hub, "AI_A", "token-a")
    error = await a.recv_type("ERROR")
    assert error["code"] == "token_revoked" and "expired" in error["error"]
    await a.expect_closed()
    await a.close()


async def test_adding_the_first_token_ends_demo_sessions(make_hub: HubFactory) -> None:
    hub = await make_hub(**FAST)
    demo = await login(hub, "AI_Node_1")
    await add_token(hub, "AI_Real", "real")
    error = await demo.recv_type("ERROR")
    assert error["code"] == "token_revoked" and "demo tokens" in error["error"]
    await demo.expect_closed()
    await demo.close()


async def test_a_session_is_checked_when_its_token_changed_while_it_logged_in(
    make_hub: HubFactory,
) -> None:
    """A change committed between a login's read of the token and the check that follows is
    not missed: the session's grant remembers which changes it has seen."""
    hub = await make_hub(token_check_interval=0)  # checks only when called
    await hub.tokens.check()
    await add_token(hub, "AI_A", "token-a")
    a = await connect(hub, "AI_A", "token-a")
    await hub.tokens.check()  # sees the add, and that A's token is the added one
    assert await hub.store.delete_token("AI_A")
    assert await hub.tokens.check() == 1
    assert (await a.recv_type("ERROR"))["code"] == "token_revoked"
    await a.close()


async def test_the_sdk_stops_on_token_revoked(make_hub: HubFactory) -> None:
    hub = await make_hub(**FAST)
    await add_token(hub, "AI_A", "token-a")
    host, port = hub.address
    client = HubClient(host, port, "AI_A", "token-a", specialization="x", capabilities=["y"])
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(client.connected.wait(), 5)
        await hub.store.delete_token("AI_A")
        with pytest.raises(AuthenticationError, match="revoked"):
            await asyncio.wait_for(task, 10)
        assert client.last_error is not None and client.last_error.startswith("token revoked")
        assert client.connections == 1  # it did not try again
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, AuthenticationError):
            await task
        await client.close()


# ---------------------------------------------------------------------------- tokens file


async def test_tokens_file_is_loaded_hashed_and_followed(
    make_hub: HubFactory, tmp_path: Path
) -> None:
    path = tmp_path / "tokens"
    hashed = hash_token("token-b", iterations=1000)
    path.write_text(f"# trainers\nAI_A:token-a\n\nAI_B:{hashed}\n", encoding="utf-8")
    hub = await make_hub(tokens_file=str(path), **FAST)
    stored = await hub.store.get_token("AI_A")
    assert stored is not None and stored.source == "file" and "token-a" not in stored.token_hash
    assert await hub.store.get_token("AI_B") == StoredToken(hashed, None, "file")
    assert not await hub.auth.demo_mode()
    a = await connect(hub, "AI_A", "token-a")
    b = await connect(hub, "AI_B", "token-b")
    # A token added with the CLI is not the file's: the file leaves it alone.
    await add_token(hub, "AI_C", "token-c")
    # Dropping AI_A and changing AI_B's token, while the hub runs:
    path.write_text("AI_B:token-b2\n", encoding="utf-8")
    for client, word in ((a, "revoked"), (b, "rotated")):
        error = await client.recv_type("ERROR")
        assert error["code"] == "token_revoked" and word in error["error"]
        await client.close()
    assert await hub.store.get_token("AI_A") is None
    assert (await auth_reply(hub, "AI_B", "token-b2"))["type"] == "AUTH_OK"
    assert (await auth_reply(hub, "AI_C", "token-c"))["type"] == "AUTH_OK"


async def test_restarting_with_the_same_tokens_file_changes_nothing(
    make_hub: HubFactory, tmp_path: Path
) -> None:
    path = tmp_path / "tokens"
    path.write_text("AI_A:token-a\n", encoding="utf-8")
    first = await make_hub(tokens_file=str(path), db=str(tmp_path / "one.db"))
    seq = await first.store.last_token_change()
    await first.stop()
    second = await make_hub(tokens_file=str(path), db=str(tmp_path / "one.db"))
    assert await second.store.last_token_change() == seq


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AI_A token-a\n", "tokens:1: expected AI_ID:TOKEN"),
        ("AI_A:x\nAI_A:y\n", "tokens:2: AI_A is listed twice"),
        ("bad id:x\n", "tokens:1: invalid AI id 'bad id'"),
    ],
)
async def test_a_bad_tokens_file_stops_the_hub(
    make_hub: HubFactory, tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "tokens"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HubConfigError, match=expected):
        await make_hub(tokens_file=str(path))


async def test_a_tokens_file_broken_while_running_keeps_the_tokens(
    make_hub: HubFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "tokens"
    path.write_text("AI_A:token-a\n", encoding="utf-8")
    hub = await make_hub(tokens_file=str(path), token_check_interval=0)
    a = await connect(hub, "AI_A", "token-a")
    path.write_text("AI_A token-a\n", encoding="utf-8")  # a typo
    assert await hub.tokens.check() == 0
    assert await hub.tokens.check() == 0
    logged = [r.getMessage() for r in caplog.records if "keeping the tokens" in r.message]
    assert len(logged) == 1 and "tokens:1: expected AI_ID:TOKEN" in logged[0]  # once
    assert await hub.store.get_token("AI_A") is not None
    await a.send({"type": "PING", "msg_id": "p"})
    assert (await a.recv_type("PONG"))["ref"] == "p"
    await a.close()
