""":class:`~kernal.hub.bus.Bus` on NATS (``kernal hub --bus nats://HOST:4222``): core pub/sub
for the channels, a JetStream key-value bucket with a TTL for the keys. The server needs
JetStream (``nats-server -js``) for the keys.

Every channel of a namespace travels on one subject, ``kernal.bus.NS``, with the channel's
name in front of each message: nats-py gives each subscription its own queue and task, so two
subscriptions (``NS:all`` and ``NS:r:ID``) would not keep one publisher's order between them,
and the cluster relies on that order (a snapshot and a later arrival, a forwarded accept and a
later departure). The price: a frame for one replica reaches every replica of the namespace,
which drops what is not for it. A replica does not hear its own messages (``no_echo``).

Keys: one bucket per TTL (``kernal_keys_<ms>``, every heartbeat key has the same), the key's
``:`` written ``=`` (KV keys allow neither ``:`` nor most other punctuation).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from kernal.hub.bus import Handler, Outbound, cancel_all

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.kv import KeyValue

log = logging.getLogger("kernal.hub.bus")

_SEP = b"\n"
CONNECT_TIMEOUT = 5.0  # seconds for the first connection


def subject_of(channel: str) -> str:
    """The subject that carries ``channel``: its namespace's (the part before the first ``:``)."""
    return f"kernal.bus.{channel.partition(':')[0]}"


def _kv_key(key: str) -> str:
    return key.replace(":", "=")


class NatsBus:
    """The NATS :class:`~kernal.hub.bus.Bus` (see the module docstring)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._nc: Client | None = None
        self._buckets: dict[int, KeyValue] = {}
        self._channels: set[str] = set()
        self._out = Outbound()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, channels: list[str], handler: Handler) -> None:
        import nats

        async def on_error(exc: Exception) -> None:
            log.warning("Bus connection error (%s); the client reconnects", exc)

        try:
            # Bounded here: with reconnects unlimited (what a running replica wants), nats-py
            # would retry a first connection that cannot succeed for ever.
            async with asyncio.timeout(CONNECT_TIMEOUT):
                self._nc = await nats.connect(
                    self.url,
                    no_echo=True,
                    connect_timeout=CONNECT_TIMEOUT,
                    max_reconnect_attempts=-1,
                    error_cb=on_error,
                )
        except TimeoutError:
            raise ConnectionError(
                f"no NATS server answered at {self.url} within {CONNECT_TIMEOUT:g} s"
            ) from None
        self._channels = set(channels)

        async def on_message(msg: Any) -> None:
            channel, _, data = msg.data.partition(_SEP)
            name = channel.decode(errors="replace")
            if name not in self._channels:
                return  # for another replica of the namespace
            try:
                handler(name, data)
            except Exception:
                log.exception("Bus message handler failed; message skipped")

        for subject in sorted({subject_of(channel) for channel in channels}):
            # No pending limit: the cluster bounds what it publishes, and a dropped message
            # (nats-py's slow-consumer default) would be a silent hole in the order.
            await self._nc.subscribe(
                subject, cb=on_message, pending_msgs_limit=0, pending_bytes_limit=0
            )
        await self._nc.flush()
        self._tasks = [asyncio.create_task(self._publisher())]

    def publish(self, channel: str, data: bytes) -> None:
        self._out.put(channel, data)

    async def _publisher(self) -> None:
        nc = self._nc
        assert nc is not None
        while True:
            await self._out.wake.wait()
            self._out.wake.clear()
            while self._out.items:
                channel, data = self._out.items[0]
                try:
                    # nats-py buffers the write (its flusher sends it): no round trip here.
                    await nc.publish(subject_of(channel), channel.encode() + _SEP + data)
                except Exception as exc:  # nats-py's own errors while it reconnects
                    log.warning("Bus publish failed (%s); retrying", exc)
                    await asyncio.sleep(0.5)
                    continue
                self._out.items.popleft()
            self._out.idle.set()

    async def flush(self) -> None:
        await self._out.idle.wait()
        if self._nc is not None:
            await self._nc.flush()

    async def _bucket(self, ttl: float) -> KeyValue:
        ms = max(1, int(ttl * 1000))
        found = self._buckets.get(ms)
        if found is None:
            from nats.js.errors import BucketNotFoundError

            assert self._nc is not None
            js = self._nc.jetstream()
            name = f"kernal_keys_{ms}"
            try:
                found = await js.key_value(name)
            except BucketNotFoundError:
                found = await js.create_key_value(bucket=name, ttl=ms / 1000, history=1)
            self._buckets[ms] = found
        return found

    async def set_key(self, key: str, value: bytes, ttl: float) -> None:
        await (await self._bucket(ttl)).put(_kv_key(key), value)

    async def get_keys(self, keys: list[str]) -> list[bytes | None]:
        from nats.js.errors import KeyNotFoundError

        values: list[bytes | None] = []
        for key in keys:
            value: bytes | None = None
            for bucket in self._buckets.values():
                try:
                    entry = await bucket.get(_kv_key(key))
                except KeyNotFoundError:  # also a deleted key, or one whose TTL passed
                    continue
                value = entry.value
                break
            values.append(value)
        return values

    async def delete_key(self, key: str) -> None:
        for bucket in self._buckets.values():
            await bucket.delete(_kv_key(key))

    async def find_keys(self, prefix: str) -> list[str]:
        from nats.js.errors import NoKeysError

        found: list[str] = []
        for bucket in self._buckets.values():
            with contextlib.suppress(NoKeysError):
                found += [k.replace("=", ":") for k in await bucket.keys()]
        return [key for key in found if key.startswith(prefix)]

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await self._out.idle.wait()
        await cancel_all(self._tasks)
        self._tasks = []
        if self._nc is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    if self._out.severed:
                        await self._nc.close()
                    else:
                        await self._nc.drain()

    def sever(self) -> None:
        self._out.sever()
        for task in self._tasks:
            task.cancel()
