"""A small TCP proxy for tests: a flaky network between clients and a real hub.

    proxy = await NetProxy.start("127.0.0.1", hub_port, delay=0.002)
    client = HubClient(*proxy.address, ...)   # connect through it
    proxy.cut()                                # every connection through it drops, now
    proxy.stall()                              # bytes stop flowing both ways; nothing closes
    proxy.resume()
    await proxy.close()

Each accepted connection gets its own upstream connection and two pumps (one per direction)
that forward chunks in order, each chunk ``delay`` seconds late. ``cut`` aborts both sides
(the peers see a reset, as when a route dies); ``stall`` holds every chunk until ``resume``
(a partner that vanished without its connection closing).
"""

from __future__ import annotations

import asyncio
import contextlib


class _Pair:
    def __init__(
        self,
        down: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        up: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.down, self.up = down, up
        self.pumps: list[asyncio.Task[None]] = []

    def abort(self) -> None:
        for _, writer in (self.down, self.up):
            writer.transport.abort()
        for pump in self.pumps:
            pump.cancel()


class NetProxy:
    """Forwards connections on ``address`` to ``target``; see the module docstring."""

    def __init__(self, target: tuple[str, int], delay: float) -> None:
        self.target = target
        self.delay = delay
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self.connections = 0  # accepted so far
        self.cuts = 0
        self._pairs: set[_Pair] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None

    @classmethod
    async def start(cls, host: str, port: int, *, delay: float = 0.0) -> NetProxy:
        proxy = cls((host, port), delay)
        proxy._server = await asyncio.start_server(proxy._accept, "127.0.0.1", 0)
        proxy.address = proxy._server.sockets[0].getsockname()[:2]
        return proxy

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = _Pair((reader, writer), upstream)
        self._pairs.add(pair)
        pair.pumps = [
            asyncio.create_task(self._pump(reader, upstream[1])),
            asyncio.create_task(self._pump(upstream[0], writer)),
        ]
        try:
            await asyncio.gather(*pair.pumps, return_exceptions=True)
        finally:
            self._pairs.discard(pair)
            pair.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()  # a clean close goes through as one

    def cut(self) -> None:
        """Drop every connection through the proxy now (both peers see a reset)."""
        self.cuts += 1
        for pair in list(self._pairs):
            pair.abort()
        self._pairs.clear()

    def stall(self) -> None:
        """Hold every byte, both ways, until :meth:`resume`; no connection closes."""
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.resume()
        self.cut()
        if self._server is not None:
            await self._server.wait_closed()
