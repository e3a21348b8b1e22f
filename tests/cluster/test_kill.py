"""One of three replicas killed (SIGKILL, a separate process) while trainers spread over all
three keep sharing: no ACKed share is lost, the dead replica's trainers carry on on the
survivors, and the survivors' ``/status`` agree."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kernal.protocol.messages import PatternShare
from kernal.serve import Service
from kernal.storage import ItemKind
from kernal.trainer.client import ConnectionLost, HubClient, HubError
from tests.cluster.conftest import REDIS_URL, ReplicaFactory, eventually, eventually_async
from tests.cluster.test_status import per_replica, status

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(rb"Hub listening for trainers on ([\d.]+):(\d+)")
Address = tuple[str, int]


@contextlib.asynccontextmanager
async def replica_process(
    db: str, namespace: str, replica_id: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, Address]]:
    """``kernal hub`` as a replica in its own process; killed at exit if still running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "kernal.py"),
        "hub",
        "--port=0",
        "--dashboard-port=-1",
        f"--db={db}",
        f"--bus={REDIS_URL}",
        f"--bus-namespace={namespace}",
        f"--replica-id={replica_id}",
        "--bus-heartbeat=0.2",
        "--bus-ttl=1",
        "--speed=50",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    log = bytearray()
    drain: asyncio.Task[bytes] | None = None
    try:
        while not (match := LISTENING.search(log)):
            line = await asyncio.wait_for(proc.stderr.readline(), 60)
            assert line, f"replica exited early:\n{log.decode()}"
            log += line
        # Keep reading its log, or a full pipe would block the replica.
        drain = asyncio.create_task(proc.stderr.read())
        yield proc, (match.group(1).decode(), int(match.group(2)))
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        if drain is not None:
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)


class Sharer:
    """A trainer that shares patterns in a loop and remembers which the hub ACKed."""

    def __init__(self, n: int, addresses: list[Address]) -> None:
        self.ai_id = f"AI_Node_{n}"
        self.client = HubClient(
            *addresses[0],
            self.ai_id,
            f"secret{n}",
            specialization="net",
            capabilities=["x"],
            addresses=addresses,
            backoff_initial=0.05,
            backoff_max=0.5,
            request_timeout=5.0,
        )
        self.acked: list[str] = []
        self.acked_at_connection: list[int] = []  # the connection each ACK came on
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self.client.run()), asyncio.create_task(self._share())]

    async def _share(self) -> None:
        n = 0
        while True:
            await self.client.connected.wait()
            n += 1
            pattern_id = f"{self.ai_id}-p{n}"
            share = PatternShare(pattern_id=pattern_id, pattern_data={"n": n})
            try:
                await self.client.request(share)
            except (ConnectionLost, TimeoutError, HubError):
                await asyncio.sleep(0.02)  # unACKed: may be stored or not; never counted
                continue
            self.acked.append(pattern_id)
            self.acked_at_connection.append(self.client.connections)

    def acks_on(self, connection: int) -> int:
        return sum(1 for c in self.acked_at_connection if c == connection)

    async def stop(self) -> None:
        await self.client.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.mark.timeout(120)
async def test_killing_one_of_three_replicas_loses_no_acked_share(
    make_replica: ReplicaFactory, pg_database: str
) -> None:
    survivors: list[Service] = [await make_replica(replica_id="r2")]
    cluster = survivors[0].hub.cluster
    assert cluster is not None
    survivors.append(await make_replica(replica_id="r3"))
    async with replica_process(pg_database, cluster.config.namespace, "r1") as (doomed, r1):
        r2, r3 = (s.hub.address for s in survivors)
        await eventually(lambda: all(len(s.hub.cluster.replicas()) == 3 for s in survivors))  # type: ignore[union-attr]
        # Two trainers on each replica, each given every address, its own replica first.
        homes = {1: [r1, r2, r3], 2: [r1, r3, r2], 3: [r2, r3, r1], 4: [r2, r1, r3]}
        homes |= {5: [r3, r1, r2], 6: [r3, r2, r1]}
        sharers = [Sharer(n, addresses) for n, addresses in homes.items()]
        try:
            for sharer in sharers:
                sharer.start()
            await eventually(lambda: all(s.acks_on(1) >= 10 for s in sharers), timeout=30)
            assert [s.client.address for s in sharers[:2]] == [r1, r1]

            doomed.send_signal(signal.SIGKILL)
            await doomed.wait()
            # r1's trainers are back, on a survivor, and share there; the others never left.
            moved = sharers[:2]
            await eventually(lambda: all(s.acks_on(2) >= 10 for s in moved), timeout=30)
            assert all(s.client.address in (r2, r3) for s in moved)
            assert all(s.client.connections == 1 for s in sharers[2:])
            await eventually(lambda: all(s.acks_on(1) >= 30 for s in sharers[2:]), timeout=30)

            # The survivors agree on who is where: all six, none on r1.
            async def agreed() -> bool:
                bodies = [await status(s) for s in survivors]
                seen = [per_replica(body) for body in bodies]
                mine = sum(body["connected_ais"] for body in bodies)
                agree = seen[0] == seen[1] and set(seen[0]) == {"r2", "r3"}
                return agree and mine == sum(seen[0].values()) == 6

            await eventually_async(agreed)
        finally:
            for sharer in sharers:
                await sharer.stop()

    # Every ACKed share is in the database: ACKed after its commit, whichever replica died.
    store = survivors[0].hub.store
    acked = [pattern_id for s in sharers for pattern_id in s.acked]
    missing = [p for p in acked if await store.get_item(ItemKind.PATTERN, p) is None]
    assert missing == []
    assert len(acked) >= 2 * 10 + 2 * 10 + 4 * 30
