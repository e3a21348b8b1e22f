"""The abusers of ``bench/abuse.py``, each run in a process of its own.

An abuser in the process of the honest clients would slow them down itself (one event loop), so
``bench/abuse.py`` starts ``bench/abuse.py --attack NAME SPEC.json`` for each one; the attack
runs for ``spec["seconds"]`` and prints one JSON object: what it sent, every frame type and
ERROR code it got back, whether the hub closed it, and a one-line ``outcome``.

Abusers connect from their own loopback address (``spec["source"]``, e.g. 127.0.0.2) as an
attacker on another machine would, so per-address limits fall on them and not on the honest
clients (127.0.0.1). Every attack reads through :class:`Peer`, a newline-JSON client that
counts what it receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

READ_LIMIT = 64 * 2**20  # STATE with large recent items is several MB
BLANK_CHUNK = b"\n" * 65536
PING_COUNT = 30_000
FEEDBACK_ROUND = 1_000
AUTH_FLOOD = 200

Spec = dict[str, Any]


class Peer:
    """One connection of an abuser: newline JSON, every frame it gets counted by type/code."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.got: Counter[str] = Counter()
        self.closed_by_hub = False
        self.errors: list[str] = []  # the first few ERROR texts

    @classmethod
    async def open(
        cls, spec: Spec, *, source: str | None = None, rcvbuf: int | None = None
    ) -> Peer:
        """Connect to the hub from ``source`` (default: the spec's), optionally with a small
        receive buffer (a reader that does not read then pushes back at once)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((source or spec["source"], 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", spec["port"]))
        reader, writer = await asyncio.open_connection(sock=sock, limit=READ_LIMIT)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def recv(self, timeout: float = 30.0) -> dict[str, Any] | None:
        """The next frame (counted), or None once the hub closed the connection."""
        try:
            line = await asyncio.wait_for(self.reader.readline(), timeout)
        except TimeoutError:  # before OSError: it is one
            return None
        except (ConnectionError, OSError, asyncio.LimitOverrunError, ValueError):
            line = b""
        if not line.endswith(b"\n"):  # closed, perhaps in the middle of a frame
            self.closed_by_hub = True
            return None
        return self._count(line)

    def _count(self, line: bytes) -> dict[str, Any]:
        frame: dict[str, Any] = json.loads(line)
        kind = str(frame.get("type"))
        if kind == "ERROR":
            kind = f"ERROR {frame.get('code')}"
            if len(self.errors) < 3:
                self.errors.append(str(frame.get("error"))[:160])
        self.got[kind] += 1
        return frame

    async def count_until(self, until: float, kind: str, enough: int) -> None:
        """Read in bulk until ``enough`` frames of ``kind`` came, the hub closed, or ``until``
        (``time.monotonic``); count every frame as :meth:`recv` does. Those of ``kind`` are
        counted by their bytes: parsing tens of thousands of frames one at a time would cost
        this process seconds of CPU on the honest clients' core, which the hub never spent."""
        marker = b'"type":"%s"' % kind.encode()
        tail = b""
        while self.got[kind] < enough and (left := until - time.monotonic()) > 0:
            try:
                data = await asyncio.wait_for(self.reader.read(2**20), left)
            except TimeoutError:  # before OSError: it is one
                return
            except (ConnectionError, OSError):
                data = b""
            if not data:
                self.closed_by_hub = True
                return
            lines = (tail + data).split(b"\n")
            tail = lines.pop()
            for line in lines:
                if marker in line:
                    self.got[kind] += 1
                elif line.strip():
                    self._count(line)

    async def recv_type(self, kind: str, timeout: float = 30.0) -> dict[str, Any] | None:
        while (frame := await self.recv(timeout)) is not None:
            if frame.get("type") == kind:
                return frame
        return None

    async def login(self, ai_id: str, token: str, **hello: Any) -> dict[str, Any] | None:
        """AUTH + HELLO; the STATE frame (None if refused or closed)."""
        await self.send(_line({"ai_id": ai_id, "token": token}))
        reply = await self.recv()
        if reply is None or reply.get("type") != "AUTH_OK":
            return None
        await self.send(_line({"type": "HELLO", "specialization": "security", **hello}))
        return await self.recv_type("STATE")

    async def drain_replies(self, until: float) -> None:
        """Read (and count) until the hub closes or ``until`` (``time.monotonic``)."""
        while (left := until - time.monotonic()) > 0:
            if await self.recv(timeout=left) is None:
                return

    def close(self) -> None:
        self.writer.transport.abort()

    def reset(self) -> None:
        """Close with a TCP reset (SO_LINGER 0), so the hub sees the connection lost at once."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    def summary(self) -> dict[str, Any]:
        return {"got": dict(self.got), "closed_by_hub": self.closed_by_hub, "errors": self.errors}


def _line(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _counts(got: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {kind}" for kind, n in sorted(got.items(), key=lambda kv: -kv[1]))


async def _reading(peer: Peer, until: float) -> asyncio.Task[None]:
    return asyncio.create_task(peer.drain_replies(until))


# ---------------------------------------------------------------------- attacks


async def feedback_flood(spec: Spec) -> dict[str, Any]:
    """Rounds of 1,000 ``FEEDBACK`` score 0 from one rater on one item of a victim; the
    victim's standing (the ``reputation`` the hub stamps on its requests) before and after."""
    end = time.monotonic() + spec["seconds"]
    victim, rater = await Peer.open(spec), await Peer.open(spec)
    tokens = spec["tokens"]
    await victim.login("victim", tokens["victim"], follow=[])
    await rater.login("rater", tokens["rater"], follow=["requests"])
    await victim.send(_line({"type": "PATTERN_SHARE", "pattern_id": "victim-item",
                             "pattern_data": {"w": [0.5] * 16}}))  # fmt: skip
    await victim.recv_type("ACK")

    async def standing(request_id: str) -> float | None:
        await victim.send(_line({"type": "COLLABORATION_REQUEST", "request_id": request_id}))
        while (frame := await rater.recv(10)) is not None:
            if frame.get("type") == "COLLABORATION_REQUEST" and frame.get("from") == "victim":
                value = frame.get("reputation")
                return None if value is None else float(value)
        return None

    before = await standing("before")
    rounds = acked = 0
    first_round_s = None
    while time.monotonic() < end and not rater.closed_by_hub:
        started = time.monotonic()
        await rater.send(
            b"".join(
                _line(
                    {
                        "type": "FEEDBACK",
                        "msg_id": f"fb-{rounds}-{i}",
                        "kind": "pattern",
                        "id": "victim-item",
                        "score": 0,
                    }
                )
                for i in range(FEEDBACK_ROUND)
            )
        )
        answered = 0
        while answered < FEEDBACK_ROUND:
            reply = await rater.recv(max(1.0, end - time.monotonic() + 10))
            if reply is None:
                break
            if str(reply.get("ref", "")).startswith("fb-"):  # its ACK or ERROR
                answered += 1
                acked += reply.get("type") == "ACK"
        rounds += 1
        if first_round_s is None:
            first_round_s = time.monotonic() - started
    after = await standing("after")
    victim.close()
    rater.close()
    limited = rater.got.get("ERROR rate_limited", 0)
    outcome = (
        f"{'dropped' if rater.closed_by_hub else 'served'}: {acked:,} of "
        f"{rounds * FEEDBACK_ROUND:,} FEEDBACK ACKed"
        + (f", {limited} rate_limited" if limited else ", not limited")
        + f"; victim standing {_num(before)} -> {_num(after)}"
    )
    return {
        "sent": rounds * FEEDBACK_ROUND,
        "acked": acked,
        "first_round_s": first_round_s,
        "standing_before": before,
        "standing_after": after,
        "rater": rater.summary(),
        "outcome": outcome,
    }


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:.3g}"


async def _flood_blank(peer: Peer, until: float) -> int:
    """Write blank lines until ``until`` or the connection fails; bytes written."""
    sent = 0
    try:
        while time.monotonic() < until and not peer.closed_by_hub:
            peer.writer.write(BLANK_CHUNK)
            await asyncio.wait_for(peer.writer.drain(), max(0.01, until - time.monotonic()))
            sent += len(BLANK_CHUNK)
    except TimeoutError:
        pass  # the hub stopped reading (TCP pushes back): the connection is still open
    except (ConnectionError, OSError, RuntimeError):
        peer.closed_by_hub = True
    return sent


async def blank_flood(spec: Spec) -> dict[str, Any]:
    """``b"\\n" * 65536`` in a loop on two connections: one that never logs in, one after AUTH
    and HELLO."""
    until = time.monotonic() + spec["seconds"]
    before = await Peer.open(spec)
    after = await Peer.open(spec)
    await after.login("blank", spec["tokens"]["blank"], follow=[])
    readers = [await _reading(p, until + 2) for p in (before, after)]
    sent = await asyncio.gather(
        *(_flood_blank(p, until) for p in (before, after)), return_exceptions=True
    )
    await asyncio.gather(*readers)
    sizes = [s if isinstance(s, int) else 0 for s in sent]
    parts = []
    for name, peer, size in (("before login", before, sizes[0]), ("after", after, sizes[1])):
        fate = "dropped" if peer.closed_by_hub else "open"
        parts.append(f"{name}: {size / 2**20:,.0f} MB sent, {fate}, got {_counts(peer.got) or '-'}")
        peer.close()
    return {
        "sent_bytes": sizes,
        "before_login": before.summary(),
        "after_login": after.summary(),
        "outcome": "; ".join(parts),
    }


async def slow_reader(spec: Spec) -> dict[str, Any]:
    """A login that sends 500 KB components ``to`` itself and never reads what comes back."""
    until = time.monotonic() + spec["seconds"]
    peer = await Peer.open(spec, rcvbuf=4096)
    await peer.login("slow", spec["tokens"]["slow"], follow=[])
    # Not reading means not reading the socket either: a StreamReader would keep reading into
    # its own buffer (up to twice its limit) and spare the hub.
    peer.writer.transport.pause_reading()
    data = json.dumps({"blob": "s" * spec["component_bytes"]})
    shares = 0
    started = time.monotonic()
    dropped_after = None
    try:
        while time.monotonic() < until:
            frame = (
                b'{"type":"OS_COMPONENT_SHARE","component_id":"slow-%d","to":"slow",'
                b'"component_data":%s}\n' % (shares, data.encode())
            )
            peer.writer.write(frame)
            await asyncio.wait_for(peer.writer.drain(), max(0.01, until - time.monotonic()))
            shares += 1
    except TimeoutError:  # before OSError: it is one
        pass  # the hub stopped reading us (TCP pushes back): still open at the end
    except (ConnectionError, OSError, RuntimeError):
        dropped_after = time.monotonic() - started
    # Only now read: what the hub left in the socket, and whether it closed it.
    peer.writer.transport.resume_reading()
    if dropped_after is None:
        await peer.drain_replies(time.monotonic() + 3)
    closed = dropped_after is not None or peer.closed_by_hub
    peer.close()
    mb = shares * spec["component_bytes"] / 2**20
    fate = (
        f"dropped after {dropped_after:.1f} s" if dropped_after is not None
        else ("dropped" if closed else "still connected")
    )  # fmt: skip
    return {
        "shares": shares,
        "dropped_after_s": dropped_after,
        "closed": closed,
        "peer": peer.summary(),
        "outcome": f"{fate}: {shares} x {spec['component_bytes'] // 1000} KB sent "
        f"({mb:,.0f} MB), read nothing",
    }


async def auth_flood(spec: Spec) -> dict[str, Any]:
    """200 concurrent wrong-token logins for an id with a chosen (stretched) token, each
    connection trying again as soon as it is answered; meanwhile an honest login (its own id,
    from the honest address) every second, timed to STATE."""
    until = time.monotonic() + spec["seconds"]
    answers: Counter[str] = Counter()
    waits: list[float] = []

    async def attacker(n: int) -> None:
        attempt = 0
        while time.monotonic() < until:
            try:
                peer = await Peer.open(spec)
            except OSError:
                answers["connect failed"] += 1
                await asyncio.sleep(0.1)
                continue
            started = time.monotonic()
            attempt += 1
            try:
                await peer.send(_line({"ai_id": "guarded", "token": f"guess-{n}-{attempt}"}))
                reply = await peer.recv(timeout=max(0.1, until - time.monotonic()))
            except (ConnectionError, OSError):
                reply = None
            if reply is None and time.monotonic() >= until:
                # Reset, not closed: a closed connection is only half-closed for the hub, which
                # would go on checking the guesses that wait in its backoff and spill them into
                # the next phase of the bench. A reset one is dropped unchecked.
                peer.reset()
                answers["unanswered at the end"] += 1
                return
            peer.close()
            answers["closed" if reply is None else str(reply.get("type"))] += 1
            waits.append(time.monotonic() - started)

    logins: list[float] = []
    failed_logins: list[str] = []

    async def honest() -> None:
        await asyncio.sleep(1.0)  # once the flood is on
        while time.monotonic() < until - 1:
            started = time.monotonic()
            peer = await Peer.open(spec, source="127.0.0.1")
            try:
                state = await peer.login("probe", spec["tokens"]["probe"], follow=[])
            finally:
                peer.close()
            if state is None:
                failed_logins.append(_counts(peer.got))
            else:
                logins.append(time.monotonic() - started)
            await asyncio.sleep(1.0)

    await asyncio.gather(honest(), *(attacker(n) for n in range(AUTH_FLOOD)))
    waits.sort()
    logins.sort()
    median = waits[len(waits) // 2] if waits else None
    tried = sum(answers.values())
    outcome = (
        f"{tried:,} wrong logins ({_counts(dict(answers))}), answered after "
        f"p50 {_num(median)} s (backed off); honest logins meanwhile: {len(logins)} ok"
        + (f", {len(failed_logins)} failed" if failed_logins else "")
        + (f", max {logins[-1] * 1000:,.0f} ms" if logins else "")
    )
    return {
        "answers": dict(answers),
        "answer_p50_s": median,
        "answer_max_s": waits[-1] if waits else None,
        "honest_login_s": logins,
        "honest_failed": failed_logins,
        "outcome": outcome,
    }


async def hello_repeat(spec: Spec) -> dict[str, Any]:
    """One joined client repeating HELLO (each answered with a STATE carrying the large recent
    items), 100 at a time, reading everything it gets."""
    until = time.monotonic() + spec["seconds"]
    peer = await Peer.open(spec)
    await peer.login("hello", spec["tokens"]["hello"], follow=[])
    reader = await _reading(peer, until + 5)
    hello = _line({"type": "HELLO", "specialization": "security", "follow": []}) * 100
    sent = 0
    with contextlib.suppress(ConnectionError, OSError, RuntimeError):  # the hub closed it
        while time.monotonic() < until and not peer.closed_by_hub:
            # At most a few hundred unanswered: the point is the hub's work, not our buffer.
            if sent - peer.got.get("STATE", 0) > 300:
                await asyncio.sleep(0.01)
                continue
            await peer.send(hello)
            sent += 100
    await reader
    peer.close()
    fate = "dropped" if peer.closed_by_hub else "served"
    return {
        "sent": sent,
        "peer": peer.summary(),
        "outcome": f"{fate}: {sent:,} HELLO sent, got {_counts(peer.got)}",
    }


async def big_pages(spec: Spec) -> dict[str, Any]:
    """``GET /api/components?limit=500`` (large items stored), 3 at a time in a loop."""
    import httpx

    until = time.monotonic() + spec["seconds"]
    url = f"http://127.0.0.1:{spec['dashboard_port']}/api/components?limit=500"
    results: list[tuple[int, int, float]] = []
    statuses: Counter[str] = Counter()

    async def fetch() -> None:
        transport = httpx.AsyncHTTPTransport(local_address=spec["source"])
        async with httpx.AsyncClient(transport=transport, timeout=120) as client:
            while time.monotonic() < until:
                started = time.monotonic()
                try:
                    size = 0
                    async with client.stream("GET", url) as response:
                        async for chunk in response.aiter_bytes():
                            size += len(chunk)
                    statuses[str(response.status_code)] += 1
                    results.append((response.status_code, size, time.monotonic() - started))
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1

    await asyncio.gather(*(fetch() for _ in range(3)))
    sizes = [r[1] for r in results]
    seconds = sorted(r[2] for r in results)
    biggest = max(sizes, default=0) / 2**20
    slowest = seconds[-1] if seconds else 0.0
    return {
        "responses": len(results),
        "statuses": dict(statuses),
        "max_mb": biggest,
        "seconds": seconds,
        "outcome": f"{len(results)} responses ({_counts(dict(statuses))}), up to "
        f"{biggest:,.1f} MB and {slowest:.1f} s each",
    }


async def pipelined_pings(spec: Spec) -> dict[str, Any]:
    """30,000 PINGs in one write, then read until every PONG came, the hub closed, or the
    time is up."""
    until = time.monotonic() + spec["seconds"]
    peer = await Peer.open(spec)
    await peer.login("pinger", spec["tokens"]["pinger"], follow=[])
    started = time.monotonic()
    with contextlib.suppress(ConnectionError, OSError):
        peer.writer.write(b'{"type":"PING"}\n' * PING_COUNT)
    await peer.count_until(until + 10, "PONG", PING_COUNT)
    all_in = time.monotonic() - started if peer.got["PONG"] >= PING_COUNT else None
    peer.close()
    pongs = peer.got.get("PONG", 0)
    fate = "dropped" if peer.closed_by_hub else "served"
    limited = peer.got.get("ERROR rate_limited", 0)
    return {
        "pongs": pongs,
        "all_in_s": all_in,
        "peer": peer.summary(),
        "outcome": f"{fate}: {pongs:,}/{PING_COUNT:,} PONGs"
        + (f" in {all_in:.1f} s" if all_in is not None else "")
        + (f", {limited} rate_limited (slowed)" if limited else ""),
    }


async def seed_components(spec: Spec) -> dict[str, Any]:
    """Store ``spec["count"]`` components of ``spec["component_bytes"]`` (for the big API pages
    and HELLO's recent items), over 4 connections with 8 unacknowledged each."""
    per = -(-spec["count"] // 4)
    data = json.dumps({"blob": "c" * spec["component_bytes"]}).encode()

    async def seeder(n: int) -> int:
        peer = await Peer.open(spec)
        await peer.login(f"seed-{n}", spec["tokens"][f"seed-{n}"], follow=[])
        ids = range(n * per, min(spec["count"], (n + 1) * per))
        acked = sent = 0
        for i in ids:
            peer.writer.write(
                b'{"type":"OS_COMPONENT_SHARE","component_id":"big-%d","component_data":%s}\n'
                % (i, data)
            )
            await peer.writer.drain()
            sent += 1
            while sent - acked >= 8 and await peer.recv_type("ACK") is not None:
                acked += 1
        while acked < sent and await peer.recv_type("ACK") is not None:
            acked += 1
        peer.close()
        return acked

    started = time.monotonic()
    acked = sum(await asyncio.gather(*(seeder(n) for n in range(4))))
    seconds = time.monotonic() - started
    return {"acked": acked, "seconds": seconds, "outcome": f"{acked} stored in {seconds:.1f} s"}


ATTACKS: dict[str, Callable[[Spec], Awaitable[dict[str, Any]]]] = {
    "feedback_flood": feedback_flood,
    "blank_flood": blank_flood,
    "slow_reader": slow_reader,
    "auth_flood": auth_flood,
    "hello_repeat": hello_repeat,
    "big_pages": big_pages,
    "pipelined_pings": pipelined_pings,
    "seed": seed_components,
}

ABUSER_IDS = ("victim", "rater", "blank", "slow", "hello", "pinger", "probe")
SEED_IDS = tuple(f"seed-{n}" for n in range(4))
GUARDED_ID = "guarded"  # the id the auth flood guesses at: a token a person chose


def run_attack(name: str, spec: Spec) -> dict[str, Any]:
    """Run one attack in this process (the child ``bench/abuse.py --attack`` starts)."""
    started = time.monotonic()
    try:
        result = asyncio.run(ATTACKS[name](spec))
    except Exception as exc:  # the bench reports it instead of losing the whole table
        result = {"outcome": f"the attack broke: {type(exc).__name__}: {exc}"[:300]}
    result["wall_s"] = round(time.monotonic() - started, 2)
    return result
