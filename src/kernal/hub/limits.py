"""Limits on what one client controls: its rate of frames and bytes, its connections, its
failed logins. The client over a limit is the one that pays; nobody else waits for it."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field


def address_of(peer: object) -> str:
    """The IP address a connection comes from (``peername`` is a tuple, or something else
    for a UNIX socket or a test transport: then its text)."""
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer)


def is_loopback_address(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; ``rate`` 0 means unlimited."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    stamp: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self.stamp = self.clock()

    def take(self, amount: float) -> float:
        """Take ``amount`` tokens; return 0, or how many seconds until they would have been
        there (the tokens are taken anyway: the caller waits that long, then goes on)."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= amount
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


@dataclass(frozen=True)
class RateLimits:
    """Per connection: frames and bytes per second (with a burst each), how long a client
    may stay over them before it is disconnected (sustained abuse), and how long its frames
    may hold the event loop before the other connections get a turn (``turn_seconds``; 0:
    a batch of frames at a time)."""

    frames_per_second: float = 2_000.0
    frame_burst: float = 20_000.0
    bytes_per_second: float = 4 * 2**20
    byte_burst: float = 8 * 2**20
    abuse_seconds: float = 30.0
    turn_seconds: float = 0.001


class Pace:
    """At most ``rate`` units per second per key (an AI id, an address), ``burst`` at once:
    :meth:`take` says how long the key's next units must wait (the caller waits, then carries
    them out: nothing is refused), and whether that wait starts an episode of being over (to
    say so once; the episode ends when half the burst has been saved up again). Keys are
    forgotten in bulk past ``max_keys``, so a parade of ids cannot grow it without bound.
    ``rate`` 0: no limit."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}
        self._over: set[str] = set()

    def take(self, key: str, amount: float = 1.0) -> tuple[float, bool]:
        """Count ``amount`` for ``key``: (seconds to wait first, whether this starts an
        episode of being over)."""
        if self.rate <= 0:
            return 0.0, False
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._buckets.clear()
                self._over.clear()
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self._clock)
        wait = bucket.take(amount)
        if wait <= 0:
            if bucket.tokens >= self.burst / 2:
                self._over.discard(key)
            return 0.0, False
        first = key not in self._over
        self._over.add(key)
        return wait, first


class Throttle:
    """One connection's rate limits: :meth:`charge` says how long to wait before handling the
    next frames, and whether the client has been over its limits too long."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._frames = TokenBucket(limits.frames_per_second, limits.frame_burst, clock)
        self._bytes = TokenBucket(limits.bytes_per_second, limits.byte_burst, clock)
        self._over_since: float | None = None
        self.throttled = 0.0  # seconds this connection was made to wait, in all

    def charge(self, frames: int, size: int) -> tuple[float, bool]:
        """Account for ``frames`` frames of ``size`` bytes (blank lines count as frames);
        return (seconds to wait, whether it is sustained abuse: over the limits without a
        break for more than ``abuse_seconds`` already)."""
        wait = max(self._frames.take(frames), self._bytes.take(size))
        now = self._clock()
        if wait <= 0:
            self._over_since = None
            return 0.0, False
        if self._over_since is None:
            self._over_since = now
        self.throttled += wait
        return wait, now - self._over_since > self.limits.abuse_seconds


@dataclass
class _Failures:
    count: int = 0
    until: float = 0.0  # no new attempt before this time


class _Turns:
    """Semaphores of ``size`` by key, each kept only while somebody holds or waits for it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: dict[object, tuple[asyncio.Semaphore, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: object) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = (asyncio.Semaphore(self.size), [0])
        semaphore, users = entry
        users[0] += 1
        try:
            async with semaphore:
                yield
        finally:
            users[0] -= 1
            if not users[0]:  # bounded: only keys with a login in progress are kept
                del self._entries[key]


async def _sleep_unless(seconds: float, gone: asyncio.Future[None] | None) -> None:
    """Sleep ``seconds``, or less if ``gone`` (the connection's end) completes first."""
    if gone is None:
        await asyncio.sleep(seconds)
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await asyncio.shield(gone)


class AddressBook:
    """Connections per address, and the backoff of failing logins.

    After each failed login of an AI id from an address, the next attempt for that id from
    that address waits twice as long (``backoff_initial`` up to ``backoff_max`` seconds); and
    an address whose failures come faster than ``failures_per_second`` (past a burst) has all
    its logins wait. Guessing a token is slowed to a crawl; other AIs behind the same address
    are held up only while it floods. A success clears the id's backoff.

    Every wait comes before the token is hashed (:meth:`checking`), and holds however many
    connections the guesses come on: the attempts for one id from one address are checked one
    at a time, each only once the failures before it have set its backoff. At most
    ``checks_per_address`` logins of one address have their token checked at once, and the
    addresses with a failure in the last ``backoff_max`` seconds share ``suspect_checks``
    checks at once between them all: the checks share a small pool of hashing threads (and
    the hub's CPU), and a burst of guesses must queue behind itself, not in front of
    everyone's logins.
    """

    def __init__(
        self,
        *,
        max_connections: int,
        max_per_address: int,
        backoff_initial: float = 0.25,
        backoff_max: float = 30.0,
        failures_per_second: float = 1.0,
        failure_burst: float = 10.0,
        checks_per_address: int = 2,
        suspect_checks: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._failure_rate = (failures_per_second, failure_burst)
        self._clock = clock
        self._open: dict[str, int] = {}
        self._total = 0
        self._failures: dict[tuple[str, str], _Failures] = {}
        self._floods: dict[str, TokenBucket] = {}
        self._flood_until: dict[str, float] = {}
        self._failed_at: dict[str, float] = {}
        self._per_id = _Turns(1)
        self._per_address = _Turns(checks_per_address)
        self._suspects = _Turns(suspect_checks)
        self.checks = 0  # logins let through to a token check, in all

    def admit(self, address: str) -> str | None:
        """Count a new connection from ``address``; None, or why it is refused (then it is not
        counted)."""
        if self.max_connections and self._total >= self.max_connections:
            return f"the hub is full ({self.max_connections} connections)"
        if self.max_per_address and self._open.get(address, 0) >= self.max_per_address:
            return f"too many connections from {address} ({self.max_per_address})"
        self._open[address] = self._open.get(address, 0) + 1
        self._total += 1
        return None

    def release(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count <= 0:
            self._open.pop(address, None)
        else:
            self._open[address] = count
        self._total = max(0, self._total - 1)

    def wait_before_login(self, address: str, ai_id: str) -> float:
        """Seconds a login of ``ai_id`` from ``address`` must wait before it is checked."""
        now = self._clock()
        failures = self._failures.get((address, ai_id))
        own = 0.0 if failures is None else failures.until - now
        flood = self._flood_until.get(address, 0.0) - now
        return max(0.0, own, flood)

    def suspect(self, address: str) -> bool:
        """Whether a login from ``address`` failed in the last ``backoff_max`` seconds."""
        failed = self._failed_at.get(address)
        return failed is not None and self._clock() - failed < self.backoff_max

    @contextlib.asynccontextmanager
    async def checking(
        self, address: str, ai_id: str, gone: asyncio.Future[None] | None = None
    ) -> AsyncIterator[bool]:
        """Wait until a login of ``ai_id`` from ``address`` may have its token checked (its
        backoff, then its turn: see the class), and hold that turn for the ``async with``.
        Yields False instead if ``gone`` (the connection's end) completed meanwhile: there is
        nothing to check then, and its guess costs no hashing."""
        async with self._per_id.hold((address, ai_id)):
            while True:
                if gone is not None and gone.done():
                    yield False
                    return
                wait = self.wait_before_login(address, ai_id)
                if wait > 0:
                    await _sleep_unless(wait, gone)
                    continue
                async with contextlib.AsyncExitStack() as turn:
                    await turn.enter_async_context(self._per_address.hold(address))
                    if self.suspect(address):
                        await turn.enter_async_context(self._suspects.hold(None))
                    if self.wait_before_login(address, ai_id) > 0:
                        continue  # the address failed more while this waited for a turn
                    if gone is not None and gone.done():
                        yield False
                        return
                    self.checks += 1
                    yield True
                    return

    def failed(self, address: str, ai_id: str) -> None:
        """A login of ``ai_id`` from ``address`` failed."""
        now = self._clock()
        failures = self._failures.setdefault((address, ai_id), _Failures())
        failures.count += 1
        delay = min(self.backoff_max, self.backoff_initial * 2 ** (failures.count - 1))
        failures.until = now + delay
        self._failed_at[address] = now
        bucket = self._floods.get(address)
        if bucket is None:
            bucket = self._floods[address] = TokenBucket(*self._failure_rate, clock=self._clock)
        flood = bucket.take(1)
        if flood > 0:
            self._flood_until[address] = now + flood
        if len(self._failures) > 100_000:  # bounded: forget the oldest backoffs
            for key in sorted(self._failures, key=lambda k: self._failures[k].until)[:10_000]:
                del self._failures[key]
        if len(self._floods) > 100_000:
            self._floods.clear()
            self._flood_until.clear()
            self._failed_at.clear()

    def succeeded(self, address: str, ai_id: str) -> None:
        self._failures.pop((address, ai_id), None)
