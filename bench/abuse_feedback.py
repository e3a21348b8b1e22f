"""Can reputation be bought? The standings a real hub reports after FEEDBACK abuse.

Usage::

    .venv/bin/python bench/abuse_feedback.py                  # this checkout
    .venv/bin/python bench/abuse_feedback.py --before main    # and the hub of another revision

Each scenario starts a fresh hub (``python -m kernal hub`` on a free port, a temporary SQLite
file, demo tokens ``AI_Node_1..8``), plays its frames over TCP, and reads the standings the
way trainers do (``LIST_AIS``) and a component's ``quality_score`` from a newcomer's
``STATE``. With ``--before REV`` the same frames are also played against the hub of ``REV``
(``git archive REV src``, run from a temporary directory), so the table reads before/after.

Scenarios, with AI_Node_2 established first (it completes collaborations with the victim and
three others, so under the vote rule its opinion of the victim counts, at half weight):

* ``flood``: AI_Node_2 sends 1,000 x ``score: 0`` on the victim's component (one vote would
  give 0.4 under the new rule);
* ``stranger flood``: AI_Node_6, which never worked with the victim, does the same;
* ``colluder lift``: AI_Node_6 sends 500 x ``score: 1`` on a sybil's (AI_Node_7) component;
* ``clique``: AI_Node_2..4, new accounts, collaborate among themselves and with an honest AI,
  and rate each other 1.0 and the honest AI 0.0, 50 times each; the table gives the clique's
  highest standing and the honest one's;
* ``quality``: 200 x ``score: 0`` from one AI on a component of quality 0.9 (one other rater
  at 0.9).

The reference trainer's trust threshold is 0.5: a standing below it is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

Scenario = Callable[["Hub"], Awaitable[dict[str, float]]]


class Client:
    """A raw newline-JSON client with numbered requests."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.serial = 0

    async def send(self, frame: dict[str, Any]) -> None:
        self.writer.write(json.dumps(frame).encode() + b"\n")
        await self.writer.drain()

    async def recv(self) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), 30)
        if not line:
            raise ConnectionError("the hub closed the connection")
        frame: dict[str, Any] = json.loads(line)
        return frame

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        self.serial += 1
        ref = f"b{self.serial}"
        await self.send({**frame, "msg_id": ref})
        while True:
            reply = await self.recv()
            if reply.get("ref") == ref:
                return reply

    async def flood(self, frame: dict[str, Any], times: int) -> None:
        """``times`` copies of ``frame`` in one write, then every reply."""
        self.writer.write((json.dumps(frame) + "\n").encode() * times)
        await self.writer.drain()
        replies = 0
        while replies < times:
            if (await self.recv()).get("type") in ("ACK", "ERROR"):
                replies += 1

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class Hub:
    """Logged-in demo AIs on one running hub."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.clients: dict[int, Client] = {}

    async def ai(self, n: int) -> Client:
        if n not in self.clients:
            self.clients[n], _ = await self.login(n)
        return self.clients[n]

    async def login(self, n: int) -> tuple[Client, dict[str, Any]]:
        """A new connection of ``AI_Node_n``, and the ``STATE`` it was welcomed with."""
        client = Client(*await asyncio.open_connection("127.0.0.1", self.port, limit=2**24))
        await client.send({"ai_id": f"AI_Node_{n}", "token": f"secret{n}"})
        assert (await client.recv())["type"] == "AUTH_OK"
        await client.send({"type": "HELLO", "specialization": "bench", "capabilities": []})
        while (state := await client.recv())["type"] != "STATE":
            pass
        return client, state

    async def share(self, n: int, component_id: str, quality: float | None = None) -> None:
        frame: dict[str, Any] = {
            "type": "OS_COMPONENT_SHARE",
            "component_id": component_id,
            "component_data": {},
        }
        if quality is not None:
            frame["quality_score"] = quality
        await (await self.ai(n)).request(frame)

    async def collaborate(self, a: int, b: int) -> None:
        await self.ai(b)
        rid = f"r{a}-{b}-{time.monotonic_ns()}"
        request = {"type": "COLLABORATION_REQUEST", "request_id": rid, "to": f"AI_Node_{b}"}
        await (await self.ai(a)).request(request)
        accept = {"type": "COLLABORATION_ACCEPT", "request_id": rid, "to": f"AI_Node_{a}"}
        accepted = await (await self.ai(b)).request(accept)
        complete = {
            "type": "COLLABORATION_COMPLETE",
            "collaboration_id": accepted["collaboration_id"],
        }
        await (await self.ai(a)).request(complete)

    async def flood(self, n: int, component_id: str, score: float, times: int) -> None:
        frame = {"type": "FEEDBACK", "kind": "component", "id": component_id, "score": score}
        await (await self.ai(n)).flood(frame, times)

    async def standing(self, ai: int) -> float:
        reply = await (await self.ai(8)).request({"type": "LIST_AIS"})
        (found,) = [a["reputation"] for a in reply["ais"] if a["ai_id"] == f"AI_Node_{ai}"]
        return float(found)

    async def quality(self, component_id: str) -> float:
        """The component's ``quality_score`` as a newcomer's ``STATE`` lists it."""
        newcomer, state = await self.login(7)
        await newcomer.close()
        (found,) = [
            c["quality_score"]
            for c in state["knowledge_base"]["recent_components"]
            if c["component_id"] == component_id
        ]
        return float(found)

    async def close(self) -> None:
        for client in self.clients.values():
            await client.close()


async def established(hub: Hub) -> None:
    """AI_Node_2 completes collaborations with AI_Node_1 (the victim), 3, 4 and 5."""
    for partner in (1, 3, 4, 5):
        await hub.collaborate(2, partner)


async def flood(hub: Hub) -> dict[str, float]:
    await hub.share(1, "victim-work")
    await established(hub)
    await hub.flood(2, "victim-work", 0.0, 1)
    one = await hub.standing(1)
    await hub.flood(2, "victim-work", 0.0, 999)
    return {"after 1 vote": one, "after 1,000 votes": await hub.standing(1)}


async def stranger_flood(hub: Hub) -> dict[str, float]:
    await hub.share(1, "victim-work")
    await hub.flood(6, "victim-work", 0.0, 1000)
    return {"victim": await hub.standing(1)}


async def colluder_lift(hub: Hub) -> dict[str, float]:
    await hub.share(7, "sybil-work")
    await hub.flood(6, "sybil-work", 1.0, 500)
    return {"sybil": await hub.standing(7)}


async def clique(hub: Hub) -> dict[str, float]:
    await hub.share(1, "honest-work")
    members = (2, 3, 4)
    for member in members:
        await hub.share(member, f"clique-{member}")
    for a, b in ((2, 3), (2, 4), (3, 4), (2, 1), (3, 1), (4, 1)):
        await hub.collaborate(a, b)
    for member in members:
        for other in members:
            if other != member:
                await hub.flood(member, f"clique-{other}", 1.0, 50)
        await hub.flood(member, "honest-work", 0.0, 50)
    best = max([await hub.standing(member) for member in members])
    return {"clique (highest)": best, "honest": await hub.standing(1)}


async def quality(hub: Hub) -> dict[str, float]:
    await hub.share(1, "component", quality=0.9)
    await hub.flood(3, "component", 0.9, 1)
    await hub.flood(2, "component", 0.0, 200)
    return {"quality_score": await hub.quality("component")}


SCENARIOS: dict[str, Scenario] = {
    "flood": flood,
    "stranger flood": stranger_flood,
    "colluder lift": colluder_lift,
    "clique": clique,
    "quality": quality,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spawn_hub(src: Path, workdir: Path, port: int) -> subprocess.Popen[bytes]:
    """Start ``python -m kernal hub`` from the source tree ``src``, logging to ``hub.log``."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    command = [sys.executable, "-m", "kernal", "hub", "--port", str(port), "--dashboard-port"]
    command += ["-1", "--db", str(workdir / "hub.db"), "--log-level", "WARNING"]
    with open(workdir / "hub.log", "ab") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=workdir)


@contextlib.asynccontextmanager
async def running_hub(src: Path, workdir: Path) -> AsyncIterator[Hub]:
    """A hub process from the source tree ``src``, on a fresh database in ``workdir``."""
    port = free_port()
    process = spawn_hub(src, workdir, port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = workdir / "hub.log"
                    raise RuntimeError(f"the hub did not start: see {log}") from None
                await asyncio.sleep(0.1)
        hub = Hub(port)
        try:
            yield hub
        finally:
            await hub.close()
    finally:
        process.terminate()
        process.wait(10)


async def play(src: Path) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    for name, scenario in SCENARIOS.items():
        with tempfile.TemporaryDirectory(prefix="kernal-abuse-") as tmp:
            async with running_hub(src, Path(tmp)) as hub:
                results[name] = await scenario(hub)
    return results


def source_of(revision: str, into: Path) -> Path:
    """``src/`` of ``revision`` of this repository, extracted into ``into``."""
    archive = into / "src.tar"
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", "-o", str(archive), revision, "src"],
        check=True,
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", metavar="REV", help="also run the hub of this revision")
    args = parser.parse_args()
    after = asyncio.run(play(ROOT / "src"))
    before: dict[str, dict[str, float]] = {}
    if args.before:
        with tempfile.TemporaryDirectory(prefix="kernal-before-") as tmp:
            before = asyncio.run(play(source_of(args.before, Path(tmp))))
    print(f"{'scenario':<16} {'figure':<20} {'before':>8} {'now':>8}")
    for name, figures in after.items():
        for figure, value in figures.items():
            old = before.get(name, {}).get(figure)
            shown = "" if old is None else f"{old:.3f}"
            print(f"{name:<16} {figure:<20} {shown:>8} {value:>8.3f}")
    print("reference trainer: refuses a peer below 0.5; never seeds one above 0.5")


if __name__ == "__main__":
    main()
