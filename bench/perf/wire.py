"""The client harness: one set of raw asyncio connections for the hub, Redis and NATS.

Every connection is a :class:`Link` (an ``asyncio.Protocol``). During its handshake it buffers
bytes and the caller reads lines or tokens (:meth:`Link.read_until`); once the handshake is done
it hands every chunk to a :class:`Counter` and never parses again, except one frame in ``k``
for latency. Counting is ``bytes.count`` of the frame marker per chunk (the opening of the hub's
relayed request, the start of Redis's ``message`` push or NATS's ``MSG`` line), so the harness
costs about the same per byte for the three servers and little per frame. The markers are all
longer than one byte on purpose: CPython counts a one-byte marker (a newline) a byte at a time,
about 2.5 times the cost of a skipping search for a longer one, enough to make the harness, not
the server, the limit of a run.

Latency: every payload carries ``@T`` and the publisher's ``perf_counter_ns`` (19 digits, taken
just before the write that sends it); a subscriber parses the timestamp of every ``k``-th frame
it counts (the same ``k`` for every server) and subtracts it from the time the chunk arrived.
Publishers and subscribers share this process, so one clock serves both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

TS = b"@T"
TS_DIGITS = 19
SAMPLE_EVERY = 50  # k: latency is parsed from every 50th frame a subscriber counts
READ_LIMIT = 64 * 2**20  # a handshake buffer may grow to 64 MiB (STATE can be ~1 MB at 10k)


def stamp() -> bytes:
    """The timestamp digits a payload carries: now, in ``perf_counter_ns``."""
    return b"%019d" % time.perf_counter_ns()


class HandshakeError(Exception):
    """A server answered a handshake with something other than what the protocol promises."""


@dataclass
class Tally:
    """What the subscribers of one run received, and the publisher's bound on outstanding work.

    ``expected`` is what the publisher has sent times the subscribers it reaches; the publisher
    waits (:meth:`wait_below`) while more than ``bound`` deliveries are outstanding.
    """

    k: int = SAMPLE_EVERY
    bound: int = 0
    delivered: int = 0
    expected: int = 0
    first_send_ns: int = 0
    last_delivery_ns: int = 0
    latencies: list[float] = field(default_factory=list)
    skipped: int = 0  # samples whose timestamp was cut by a chunk boundary
    lost: int = 0  # counting connections that closed
    _resume_at: int = -1
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def outstanding(self) -> int:
        return self.expected - self.delivered

    async def wait_below(self, level: int, timeout: float) -> bool:
        """Until at most ``level`` deliveries are outstanding; False on timeout."""
        if self.outstanding() <= level:
            return True
        self._resume_at = level
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._resume_at = -1

    def _progress(self) -> None:
        if self._resume_at >= 0 and self.expected - self.delivered <= self._resume_at:
            self._wake.set()


class Marker:
    """Counts occurrences of ``marker`` in a stream of chunks, including across boundaries."""

    __slots__ = ("marker", "size", "tail")

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.size = len(marker)
        self.tail = b""

    def count(self, data: bytes) -> tuple[int, int]:
        """``(straddling, inside)``: markers that began in the previous chunk, and in ``data``."""
        inside = data.count(self.marker)
        if self.size == 1:
            return 0, inside
        # The tail is shorter than the marker, so only a marker across the boundary is in here.
        straddling = (self.tail + data[: self.size - 1]).count(self.marker) if self.tail else 0
        keep = self.size - 1
        self.tail = data[-keep:] if len(data) >= keep else (self.tail + data)[-keep:]
        return straddling, inside


class Counter:
    """A subscriber's frame counter: ``marker`` per frame, latency from every k-th frame.

    ``marker_ends_frame``: the marker is the frame's last bytes (a newline) and the timestamp
    comes before it; otherwise the marker starts the frame (the relay row's three servers).
    """

    __slots__ = ("ends", "frame", "marker", "seen", "span", "tally")

    def __init__(self, tally: Tally, marker: bytes, *, marker_ends_frame: bool) -> None:
        self.tally = tally
        self.marker = Marker(marker)
        self.ends = marker_ends_frame
        self.seen = 0
        self.frame = 0  # learned frame size, to find the j-th frame of a chunk without a walk
        self.span = 4096  # how far from the marker to look for the timestamp

    def feed(self, data: bytes) -> None:
        straddling, inside = self.marker.count(data)
        total = straddling + inside
        if not total:
            return
        now = time.perf_counter_ns()
        tally = self.tally
        before = self.seen
        self.seen = after = before + total
        tally.delivered += total
        tally.last_delivery_ns = now
        k = tally.k
        if before // k != after // k:
            for index in range(k - 1 - before % k, total, k):
                self._sample(data, index - straddling, now)
        tally._progress()

    def _sample(self, data: bytes, j: int, now: int) -> None:
        """Latency of the ``j``-th frame marker inside ``data`` (skipped if it straddles)."""
        tally = self.tally
        if j < 0:
            tally.skipped += 1
            return
        m = self.marker.marker
        first = data.find(m)
        if not self.frame:
            second = data.find(m, first + len(m))
            if second > 0:
                self.frame = second - first
        pos = first + j * self.frame
        if not (self.frame and data.startswith(m, pos)):
            pos = first
            for _ in range(j):
                pos = data.find(m, pos + len(m))
        if self.ends:
            at = data.rfind(TS, max(0, pos - self.span), pos)
            ok = at >= 0 and data.find(m, at, pos) < 0
        else:
            at = data.find(TS, pos + len(m), pos + self.span)
            ok = at >= 0
        end = at + len(TS) + TS_DIGITS
        if not ok or end > len(data):
            tally.skipped += 1
            return
        tally.latencies.append((now - int(data[at + len(TS) : end])) / 1e9)


class Replies:
    """A publisher's reply counter: ``marker`` per reply, ``per`` messages acknowledged by each.

    ``error`` is the marker of an error reply; the first one seen is kept in :attr:`error_text`.
    """

    __slots__ = ("_wake", "_want", "acked", "error", "error_text", "marker", "per", "times")

    def __init__(self, marker: bytes, error: bytes, *, per: int = 1) -> None:
        self.marker = Marker(marker)
        self.error = error
        self.error_text: str | None = None
        self.per = per
        self.acked = 0
        self.times: list[float] | None = None  # ACK latencies, when the caller wants them
        self._want = -1
        self._wake = asyncio.Event()

    def feed(self, data: bytes) -> None:
        straddling, inside = self.marker.count(data)
        if self.error in data and self.error_text is None:
            at = data.find(self.error)
            self.error_text = data[max(0, at - 40) : at + 200].decode(errors="replace")
            self._wake.set()
        if straddling + inside:
            self.acked += (straddling + inside) * self.per
            if 0 <= self._want <= self.acked:
                self._wake.set()

    async def wait_acked(self, want: int, timeout: float) -> bool:
        """Until ``want`` messages are acknowledged; False on timeout or an error reply."""
        if self.acked >= want:
            return True
        self._want = want
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), timeout)
        except TimeoutError:
            return False
        finally:
            self._want = -1
        return self.error_text is None and self.acked >= want


class Link(asyncio.Protocol):
    """One client connection: buffered reads during the handshake, a counter afterwards."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.feed: Callable[[bytes], None] | None = None
        self.on_lost: Callable[[], None] | None = None
        self.closed = False
        self._scan = 0
        self._want: tuple[bytes, asyncio.Future[bytes]] | None = None
        self._paused = False
        self._drained: asyncio.Future[None] | None = None

    @classmethod
    async def open(cls, port: int, timeout: float = 30.0) -> Link:
        loop = asyncio.get_running_loop()
        _, link = await asyncio.wait_for(loop.create_connection(cls, "127.0.0.1", port), timeout)
        return link

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        feed = self.feed
        if feed is not None:
            feed(data)
            return
        self.buf += data
        if len(self.buf) > READ_LIMIT:
            self._fail(HandshakeError(f"handshake buffer over {READ_LIMIT} bytes"))
            return
        self._look()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.feed is not None and self.on_lost is not None:
            self.on_lost()
        self._fail(ConnectionError("connection closed by the server"))
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # -- handshake
    def _look(self) -> None:
        if self._want is None:
            return
        token, future = self._want
        at = self.buf.find(token, self._scan)
        if at < 0:
            self._scan = max(0, len(self.buf) - len(token) + 1)
            return
        end = at + len(token)
        chunk = bytes(self.buf[:end])
        del self.buf[:end]
        self._scan = 0
        self._want = None
        if not future.done():
            future.set_result(chunk)

    def _fail(self, exc: Exception) -> None:
        if self._want is not None:
            _, future = self._want
            self._want = None
            if not future.done():
                future.set_exception(exc)

    async def read_until(self, token: bytes, timeout: float) -> bytes:
        """Everything up to and including the next ``token``; raises on close or timeout."""
        if self.closed:
            raise ConnectionError("connection closed by the server")
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._want = (token, future)
        self._look()
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._want = None

    def count_with(self, feed: Callable[[bytes], None], on_lost: Callable[[], None]) -> None:
        """From now on every chunk goes to ``feed`` (what was buffered first)."""
        self.feed, self.on_lost = feed, on_lost
        if self.buf:
            data = bytes(self.buf)
            self.buf.clear()
            feed(data)
        if self.closed:
            on_lost()

    # -- writing
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    async def drain(self) -> None:
        if self._paused and not self.closed:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    @property
    def paused(self) -> bool:
        return self._paused

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def open_all(
    count: int, join: Callable[[int], object], *, concurrency: int, deadline: float
) -> tuple[list[object], list[str]]:
    """Run ``join(i)`` (a coroutine function) for ``i < count``, ``concurrency`` at a time,
    until ``deadline`` (``time.monotonic``). Returns the results of those that succeeded and
    the distinct errors (at most 5) of the others; joins not started by the deadline are not."""
    slots = asyncio.Semaphore(concurrency)
    errors: list[str] = []

    async def one(i: int) -> object | None:
        async with slots:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                return await asyncio.wait_for(join(i), left)  # type: ignore[arg-type]
            except Exception as exc:
                text = f"{type(exc).__name__}: {str(exc) or 'timed out'}"[:200]
                if text not in errors and len(errors) < 5:
                    errors.append(text)
                return None

    results = await asyncio.gather(*(one(i) for i in range(count)))
    return [r for r in results if r is not None], errors


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
