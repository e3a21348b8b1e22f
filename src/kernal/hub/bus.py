"""The bus between hub replicas: publish bytes to a channel, receive what others publish, and
keys that expire (a replica's heartbeat and figures).

:class:`Bus` is the seam; :class:`RedisBus` implements it on Redis (``redis://host:port``).
Redis was chosen because it does the three things the cluster needs with one dependency the
deployment already runs (``deploy/compose.yaml``'s ``bus`` profile): pub/sub fan-out to every
replica, keys with a TTL for presence that must vanish when a replica dies, and nothing kept
on disk. :class:`~kernal.hub.nats_bus.NatsBus` implements it on NATS (core pub/sub and a
JetStream key-value bucket with a TTL, ``nats://host:4222``); :func:`open_bus` picks one by the
URL's scheme.

Contract of every bus: :meth:`Bus.publish` never waits (it queues); the messages one bus
publishes reach each subscriber in the order they were published, across channels; a message
is delivered to each subscriber at most once (pub/sub: a replica that is not subscribed at the
time misses it, so the cluster never relies on a message being kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("kernal.hub.bus")

Handler = Callable[[str, bytes], None]  # (channel, data), called in publish order

MAX_QUEUED = 200_000  # messages waiting for the broker before the oldest are dropped
PUBLISH_BATCH = 512  # messages sent in one pipeline round trip


class BusError(Exception):
    """The bus URL is not usable; the message says what to do."""


class Bus(Protocol):
    """What the cluster needs of a broker."""

    async def start(self, channels: list[str], handler: Handler) -> None:
        """Connect and subscribe to ``channels``; ``handler`` gets every message published to
        them from then on (its own may be included, or not). Raises OSError/ConnectionError
        (or the client library's own errors) if unreachable."""

    def publish(self, channel: str, data: bytes) -> None:
        """Queue ``data`` for ``channel``; never waits."""

    async def flush(self) -> None:
        """Wait until everything queued so far has been handed to the broker."""

    async def set_key(self, key: str, value: bytes, ttl: float) -> None:
        """Set ``key`` to ``value``, to vanish after ``ttl`` seconds unless set again."""

    async def get_keys(self, keys: list[str]) -> list[bytes | None]:
        """The values of ``keys`` (None for a missing or expired one)."""

    async def delete_key(self, key: str) -> None: ...

    async def find_keys(self, prefix: str) -> list[str]:
        """The keys that start with ``prefix`` (a scan: for rare use, e.g. at start)."""

    async def close(self) -> None:
        """Send what is queued (briefly), unsubscribe, disconnect."""

    def sever(self) -> None:
        """Drop the connections at once, sending nothing more: what a crash looks like to the
        other replicas (used by the tests of a replica that dies)."""


async def cancel_all(tasks: list[asyncio.Task[Any]], *, rounds: int = 3) -> None:
    """Cancel ``tasks`` and wait for them, briefly. A task that survives its cancellation (a
    client library that took it for a timeout and retried: seen with redis-py under load) is
    cancelled again, up to ``rounds`` times a second apart, then left behind with a log line,
    so that stopping never hangs."""
    pending = [task for task in tasks if not task.done()]
    for _ in range(rounds):
        if not pending:
            break
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=1.0)
        pending = [task for task in pending if not task.done()]
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: it ended with an error while stopping
    if pending:
        log.warning("%d bus tasks did not stop when cancelled; left behind", len(pending))


def open_bus(url: str) -> Bus:
    """The (not started) bus for ``url``; raises :class:`BusError` for a scheme or a missing
    client library."""
    scheme = url.partition("://")[0].lower()
    if scheme in ("redis", "rediss", "unix"):
        try:
            import redis.asyncio  # noqa: F401  (optional: only a clustered hub needs it)
        except ImportError:
            raise BusError(
                "--bus redis://... needs the Redis client: pip install 'kernal[bus]'"
            ) from None
        return RedisBus(url)
    if scheme == "nats":
        try:
            import nats  # noqa: F401  (optional: only a clustered hub on NATS needs it)
        except ImportError:
            raise BusError(
                "--bus nats://... needs the NATS client: pip install 'kernal[nats]'"
            ) from None
        from kernal.hub.nats_bus import NatsBus

        return NatsBus(url)
    raise BusError(f"unknown bus {url!r}: expected redis://HOST:PORT or nats://HOST:PORT")


class Outbound:
    """Messages a bus has accepted and not yet handed to its broker, in publish order. Bounded:
    past :data:`MAX_QUEUED` the oldest are dropped (with a log line), so a broker that is slow
    or gone costs memory up to a limit, never the hub's loop. ``idle`` is set while empty;
    ``wake`` tells the bus's publisher task that something arrived."""

    def __init__(self) -> None:
        self.items: deque[tuple[str, bytes]] = deque()
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.dropped = 0
        self.severed = False

    def put(self, channel: str, data: bytes) -> None:
        if self.severed:
            return
        if len(self.items) >= MAX_QUEUED:
            self.items.popleft()
            self.dropped += 1
            if self.dropped % 10_000 == 1:
                log.warning("Bus queue full (broker slow or gone): dropped %d", self.dropped)
        self.items.append((channel, data))
        self.idle.clear()
        self.wake.set()

    def sever(self) -> None:
        """Drop what waits and ignore later messages."""
        self.severed = True
        self.items.clear()
        self.idle.set()


class RedisBus:
    """:class:`Bus` on Redis pub/sub (one connection publishing, one subscribed) and keys with
    a TTL (``SET ... PX``)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._redis: Redis | None = None
        self._pubsub: Any = None
        self._out = Outbound()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, channels: list[str], handler: Handler) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(self.url, socket_connect_timeout=5)
        await self._redis.ping()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(*channels)
        self._tasks = [
            asyncio.create_task(self._publisher()),
            asyncio.create_task(self._subscriber(handler)),
        ]

    def publish(self, channel: str, data: bytes) -> None:
        self._out.put(channel, data)

    async def flush(self) -> None:
        await self._out.idle.wait()

    async def _publisher(self) -> None:
        assert self._redis is not None
        while True:
            await self._out.wake.wait()
            self._out.wake.clear()
            while self._out.items:
                batch = [
                    self._out.items.popleft()
                    for _ in range(min(PUBLISH_BATCH, len(self._out.items)))
                ]
                pipe = self._redis.pipeline(transaction=False)
                for channel, data in batch:
                    pipe.publish(channel, data)
                try:
                    await pipe.execute()
                except (ConnectionError, OSError, TimeoutError) as exc:
                    # Keep the order: put the batch back and try again shortly.
                    log.warning("Bus publish failed (%s); retrying", exc)
                    self._out.items.extendleft(reversed(batch))
                    await asyncio.sleep(0.5)
                except Exception as exc:  # redis-py's own connection errors
                    log.warning("Bus publish failed (%s); retrying", exc)
                    self._out.items.extendleft(reversed(batch))
                    await asyncio.sleep(0.5)
            self._out.idle.set()

    async def _subscriber(self, handler: Handler) -> None:
        pubsub = self._pubsub
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("Bus subscription failed (%s); retrying", exc)
                await asyncio.sleep(0.5)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            name = channel.decode() if isinstance(channel, bytes) else str(channel)
            try:
                handler(name, message["data"])
            except Exception:
                log.exception("Bus message handler failed; message skipped")

    async def set_key(self, key: str, value: bytes, ttl: float) -> None:
        assert self._redis is not None
        await self._redis.set(key, value, px=max(1, int(ttl * 1000)))

    async def get_keys(self, keys: list[str]) -> list[bytes | None]:
        assert self._redis is not None
        if not keys:
            return []
        values = await self._redis.mget(keys)
        return [value.encode() if isinstance(value, str) else value for value in values]

    async def delete_key(self, key: str) -> None:
        assert self._redis is not None
        await self._redis.delete(key)

    async def find_keys(self, prefix: str) -> list[str]:
        assert self._redis is not None
        found: list[str] = []
        async for key in self._redis.scan_iter(match=prefix + "*", count=1000):
            found.append(key.decode() if isinstance(key, bytes) else str(key))
        return found

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self.flush()
        await self._stop_tasks()
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                # Its reader task is gone, so wait for the socket to close: aclose() alone
                # does not (redis-py#3941) and the socket would outlive the event loop.
                if self._pubsub.connection is not None:
                    await self._pubsub.connection.disconnect()
                await self._pubsub.aclose()
        if self._redis is not None:
            with contextlib.suppress(Exception):
                await self._redis.aclose()

    def sever(self) -> None:
        # Nothing more leaves this bus: the queue is dropped, the tasks stop, and later
        # publishes are ignored. The sockets close with close(), which publishes nothing.
        self._out.sever()
        for task in self._tasks:
            task.cancel()

    async def _stop_tasks(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []
