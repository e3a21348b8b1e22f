"""A flaky network between trainers and a real hub (``tests/netproxy.py``): connections are
delayed and cut while SDK clients share; nothing ACKed is lost, nothing is stored twice, and a
reader that reconnects misses no relay. A partner that vanished without its connection closing
(a stalled route) ends its collaboration after the hub's collaboration timeout."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kernal.protocol.messages import PatternShare, RelayedPatternShare
from kernal.trainer.client import ConnectionLost, HubClient, Incoming
from tests.conftest import HubFactory
from tests.helpers import RawClient, login
from tests.netproxy import NetProxy

OPEN: list[RawClient] = []


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    yield
    while OPEN:
        await OPEN.pop().close()


def _client(proxy: NetProxy, n: int, **options: object) -> HubClient:
    return HubClient(
        *proxy.address,
        f"AI_Node_{n}",
        f"secret{n}",
        specialization="networking",
        capabilities=[],
        backoff_initial=0.05,
        backoff_max=0.2,
        request_timeout=5.0,
        **options,  # type: ignore[arg-type]
    )


async def _deliver(client: HubClient, share: PatternShare, retries: list[str]) -> None:
    """As the SDK's trainer does: send until ACKed, the same id every time."""
    while True:
        await client.connected.wait()
        with contextlib.suppress(ConnectionLost, TimeoutError):
            await client.request(share)
            return
        retries.append(share.pattern_id)
        await asyncio.sleep(0.01)


async def test_cut_connections_lose_no_acked_share_and_store_none_twice(
    make_hub: HubFactory, tmp_path: Path
) -> None:
    hub = await make_hub()
    proxy = await NetProxy.start(*hub.address, delay=0.001)
    seen: list[str] = []

    async def on_message(message: Incoming) -> None:
        if isinstance(message, RelayedPatternShare):
            seen.append(message.pattern_id)

    sharers = [_client(proxy, n) for n in (1, 2, 3)]
    reader = _client(proxy, 4, on_message=on_message, follow=["patterns"])
    clients = [*sharers, reader]
    runs = [asyncio.create_task(c.run()) for c in clients]
    try:
        await asyncio.wait_for(asyncio.gather(*(c.connected.wait() for c in clients)), 10)
        shares = [
            (client, PatternShare(pattern_id=f"{client.ai_id}-p{i}", pattern_data={"i": i}))
            for client in sharers
            for i in range(40)
        ]
        window = asyncio.Semaphore(24)  # shares unacknowledged at once, all clients together
        acked: list[str] = []
        retries: list[str] = []
        progress = asyncio.Event()

        async def one(client: HubClient, share: PatternShare) -> None:
            async with window:
                await _deliver(client, share, retries)
                acked.append(share.pattern_id)
                progress.set()

        sharing = asyncio.gather(*(one(c, s) for c, s in shares))

        async def cut_now_and_then() -> None:
            for target in (20, 50, 80):  # mid-stream, with shares in flight
                while len(acked) < target:
                    progress.clear()
                    await progress.wait()
                proxy.cut()

        await asyncio.wait_for(asyncio.gather(sharing, cut_now_and_then()), 30)
        assert proxy.cuts == 3 and all(c.connections >= 2 for c in clients)
        assert retries  # the cuts caught shares in flight: they went again, same ids
        assert sorted(acked) == sorted(s.pattern_id for _, s in shares)
        for _ in range(500):  # the reader catches up (resumed after each cut)
            if len(seen) >= len(acked):
                break
            await asyncio.sleep(0.01)
    finally:
        for client in clients:
            await client.close()
        await asyncio.wait_for(asyncio.gather(*runs, return_exceptions=True), 10)
        await proxy.close()
    with sqlite3.connect(tmp_path / "hub_data.db") as db:
        rows, distinct = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT pattern_id) FROM shared_patterns"
        ).fetchone()
        stored = {row[0] for row in db.execute("SELECT pattern_id FROM shared_patterns")}
    assert rows == distinct == len(acked)  # every ACKed share, none twice
    assert stored == set(acked)
    # The reader missed none of them across its cuts, and got none twice.
    assert sorted(seen) == sorted(acked)


async def test_a_stalled_partner_ends_its_collaboration_after_the_timeout(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(collaboration_timeout=0.5, stats_interval=0.5)
    survivor = await login(hub, "AI_Node_1")
    OPEN.append(survivor)
    proxy = await NetProxy.start(*hub.address)
    try:
        partner = await RawClient.connect_to(*proxy.address)
        OPEN.append(partner)
        await partner.login("AI_Node_2", "secret2", "graphics")
        await survivor.send({"type": "COLLABORATION_REQUEST", "request_id": "r1"})
        await survivor.recv_type("ACK")
        await partner.send({"type": "COLLABORATION_ACCEPT", "request_id": "r1", "to": "AI_Node_1"})
        collaboration_id = (await partner.recv_type("ACK"))["collaboration_id"]
        proxy.stall()  # the partner's route dies; its connection never closes
        failed = await survivor.recv_type("COLLABORATION_FAILED", timeout=10)
        assert failed["collaboration_id"] == collaboration_id
        assert "no member spoke on it" in failed["reason"]
        # Ended by the timeout, not by a disconnect: the hub still counts the partner online.
        assert hub.peers.get("AI_Node_2") is not None
        assert (await hub.status()).active_collaborations == 0
        record = await hub.store.get_collaboration(collaboration_id)
        assert record is not None and record.status == "failed"
    finally:
        await proxy.close()
