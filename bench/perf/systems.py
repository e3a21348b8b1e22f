"""The three servers the relay row compares, each as the same four steps on :class:`Link`s:
start the server, join a subscriber, join the publisher, encode a batch of messages.

Every message is the same 256-byte JSON text: the hub gets it as a ``COLLABORATION_REQUEST``
frame (relayed to every other joined AI), Redis as a ``PUBLISH`` payload and NATS as a ``PUB``
payload on one channel/subject every subscriber listens to.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from perf import procs
from perf.wire import TS, TS_DIGITS, Counter, HandshakeError, Link, Replies, Tally

MESSAGE_BYTES = 256
CHANNEL = b"bench"
PUBLISHER = "bench-pub"
HELLO = b'{"type":"HELLO","specialization":"networking","capabilities":["routing"]}\n'
_REQUEST = (
    b'{"type":"COLLABORATION_REQUEST","request_id":"r%09d","expertise_offered":["'
    + TS
    + b'%s","%s"],"seeking_expertise":["networking"]}'
)
_PAD = b"x" * (MESSAGE_BYTES - len(_REQUEST % (0, b"0" * TS_DIGITS, b"")))


def request(seq: int, ts: bytes) -> bytes:
    """Message ``seq`` stamped ``ts``: exactly :data:`MESSAGE_BYTES` of JSON, no newline."""
    return _REQUEST % (seq, ts, _PAD)


async def join_hub(port: int, ai_id: str, token: str, timeout: float) -> Link:
    """A connection to the hub on ``port`` that has logged in as ``ai_id`` and read its STATE."""
    link = await Link.open(port, timeout)
    link.write(json.dumps({"ai_id": ai_id, "token": token}).encode() + b"\n" + HELLO)
    if b"AUTH_OK" not in await link.read_until(b"\n", timeout):
        link.close()
        raise HandshakeError(f"{ai_id}: no AUTH_OK")
    if b'"STATE"' not in await link.read_until(b"\n", timeout):
        link.close()
        raise HandshakeError(f"{ai_id}: no STATE")
    return link


def subscriber_id(i: int) -> str:
    return f"bench-sub-{i:05d}"


class System:
    """One server under test. ``marker``/``marker_ends_frame`` say how a subscriber counts."""

    name = ""
    marker = b""
    marker_ends_frame = False
    window_unit = "messages"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.server: procs.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    async def start(self, subscribers: int, profile: Path | None) -> None:
        raise NotImplementedError

    async def join_subscriber(self, i: int, timeout: float) -> Link:
        raise NotImplementedError

    async def join_publisher(self, timeout: float) -> tuple[Link, Replies]:
        raise NotImplementedError

    async def before_counting(self, link: Link, timeout: float) -> None:
        """What a joined subscriber must still read before every frame is a message."""

    def counter(self, tally: Tally) -> Counter:
        return Counter(tally, self.marker, marker_ends_frame=self.marker_ends_frame)

    def batch(self, seq: int, count: int) -> bytes:
        raise NotImplementedError

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(60 if self.server.profile else 15)


class Hub(System):
    """kernal: AUTH + HELLO → STATE; a request is ACKed to the sender, relayed to the rest."""

    name = "kernal"
    # The opening of a relayed request, not its newline: ``bytes.count`` of one byte walks the
    # data a byte at a time (about 0.24 us per 320-byte frame here), while a longer marker is
    # found by a skipping search (0.09 us), as Redis's and NATS's are; with the newline the
    # harness's counting, not the hub, set the N = 100 figure. It also counts only relayed
    # requests, nothing else the hub might send a subscriber.
    marker = b'{"type":"COLLABORATION_REQUEST","from":"' + PUBLISHER.encode() + b'"'

    async def start(self, subscribers: int, profile: Path | None) -> None:
        db = self.workdir / f"relay-{subscribers}.db"
        ids = [subscriber_id(i) for i in range(subscribers)] + [PUBLISHER]
        self.tokens = await procs.register_tokens(db, ids)
        # Every subscriber gets every request, as on a hub with fewer followers than its
        # --request-fanout (past it, the hub relays a request to everyone to that many only).
        fanout = ["--request-fanout", str(subscribers)]
        # And every one is told of the publisher's arrival (before_counting waits for it), as
        # on a hub with fewer AIs than its --presence-limit (past it, arrivals are not
        # broadcast: docs/protocol.md).
        presence = ["--presence-limit", str(subscribers + 1)]
        self.server = await procs.start_hub(
            self.workdir, db, profile=profile, extra=fanout + presence
        )

    async def _join(self, ai_id: str, timeout: float) -> Link:
        link = await Link.open(self.port, timeout)
        auth = {"ai_id": ai_id, "token": self.tokens[ai_id]}
        link.write(json.dumps(auth).encode() + b"\n" + HELLO)
        ok = await link.read_until(b"\n", timeout)
        if b"AUTH_OK" not in ok:
            link.close()
            raise HandshakeError(f"{ai_id}: {ok[:200]!r}")
        state = await link.read_until(b"\n", timeout)
        if b'"STATE"' not in state:
            link.close()
            raise HandshakeError(f"{ai_id}: expected STATE, got {state[:200]!r}")
        return link

    async def join_subscriber(self, i: int, timeout: float) -> Link:
        return await self._join(subscriber_id(i), timeout)

    async def before_counting(self, link: Link, timeout: float) -> None:
        # The publisher joins last: after its AI_JOINED, every frame is a relayed request.
        await link.read_until(b'"' + PUBLISHER.encode() + b'"', timeout)
        await link.read_until(b"\n", timeout)

    async def join_publisher(self, timeout: float) -> tuple[Link, Replies]:
        link = await self._join(PUBLISHER, timeout)
        replies = Replies(b"\n", b'"ERROR"')  # one ACK (or ERROR) line per request
        link.count_with(replies.feed, lambda: None)
        return link, replies

    def batch(self, seq: int, count: int) -> bytes:
        ts = b"%019d" % _now_ns()
        return b"".join(request(seq + i, ts) + b"\n" for i in range(count))


class Redis(System):
    """redis-server pub/sub: ``SUBSCRIBE`` once, pipelined ``PUBLISH`` with every reply read."""

    name = "redis"
    marker = b"*3\r\n$7\r\nmessage\r\n$%d\r\n%s\r\n$%d\r\n" % (
        len(CHANNEL),
        CHANNEL,
        MESSAGE_BYTES,
    )
    _publish = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n" % (
        len(CHANNEL),
        CHANNEL,
        MESSAGE_BYTES,
    )

    async def start(self, subscribers: int, profile: Path | None) -> None:
        self.server = await procs.start_redis(self.workdir)

    async def join_subscriber(self, i: int, timeout: float) -> Link:
        link = await Link.open(self.port, timeout)
        link.write(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(CHANNEL), CHANNEL))
        await link.read_until(b":1\r\n", timeout)  # the confirmation ends with 1 subscription
        return link

    async def join_publisher(self, timeout: float) -> tuple[Link, Replies]:
        link = await Link.open(self.port, timeout)
        replies = Replies(b"\r\n", b"-ERR")  # one integer reply line per PUBLISH
        link.count_with(replies.feed, lambda: None)
        return link, replies

    def batch(self, seq: int, count: int) -> bytes:
        ts = b"%019d" % _now_ns()
        return (self._publish + request(seq, ts) + b"\r\n") * count


class Nats(System):
    """nats-server core: ``SUB`` once, ``PUB`` batches each followed by ``PING`` (flush)."""

    name = "nats"
    marker = b"MSG %s 1 %d\r\n" % (CHANNEL, MESSAGE_BYTES)
    window_unit = "messages (PONG per batch)"
    _connect = b'CONNECT {"verbose":false,"pedantic":false,"protocol":1,"echo":false}\r\n'

    async def start(self, subscribers: int, profile: Path | None) -> None:
        self.server = await procs.start_nats(self.workdir)

    async def _connect_link(self, timeout: float) -> Link:
        link = await Link.open(self.port, timeout)
        info = await link.read_until(b"\r\n", timeout)
        if not info.startswith(b"INFO"):
            link.close()
            raise HandshakeError(f"expected INFO, got {info[:200]!r}")
        return link

    async def join_subscriber(self, i: int, timeout: float) -> Link:
        link = await self._connect_link(timeout)
        link.write(self._connect + b"SUB %s 1\r\nPING\r\n" % CHANNEL)
        await link.read_until(b"PONG\r\n", timeout)  # the server has the subscription
        return link

    async def join_publisher(self, timeout: float) -> tuple[Link, Replies]:
        link = await self._connect_link(timeout)
        link.write(self._connect + b"PING\r\n")
        await link.read_until(b"PONG\r\n", timeout)
        self._replies = Replies(b"PONG\r\n", b"-ERR")
        link.count_with(self._replies.feed, lambda: None)
        return link, self._replies

    def batch(self, seq: int, count: int) -> bytes:
        self._replies.per = count  # one PONG acknowledges the whole batch before it
        ts = b"%019d" % _now_ns()
        pub = b"PUB %s %d\r\n" % (CHANNEL, MESSAGE_BYTES)
        return (pub + request(seq, ts) + b"\r\n") * count + b"PING\r\n"


def _now_ns() -> int:
    return time.perf_counter_ns()


SYSTEMS: dict[str, type[System]] = {"kernal": Hub, "redis": Redis, "nats": Nats}
