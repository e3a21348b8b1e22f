"""One client connection: framed reading and a bounded, non-blocking send queue.

Sending never awaits the network: frames go to a per-connection queue drained by a writer task,
so one slow reader cannot stall the hub or the other trainers. A client that falls more than
``send_queue_limit`` frames behind is disconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from pydantic import BaseModel

from kernal.protocol import LineFramer, encode

log = logging.getLogger("kernal.hub")

_READ_CHUNK = 64 * 1024


class Connection:
    """Transport of one client: frames in, frames out. ``name`` labels its log lines (the peer
    address until the session knows the AI id)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        max_frame: int,
        send_queue_limit: int,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._framer = LineFramer(max_frame)
        self._ready: deque[bytes] = deque()
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue(send_queue_limit)
        self._writer_task = asyncio.create_task(self._write_loop())
        self._closing = False
        self.peer: Any = writer.get_extra_info("peername")
        self.name = str(self.peer)

    async def next_frame(self) -> bytes | None:
        """The next complete frame, or None at EOF. Raises FrameTooLarge from the framer.

        Frames that arrived in the same read are kept for the following calls, so a client may
        pipeline AUTH, HELLO and more in one packet.
        """
        while not self._ready:
            if self._framer.error is not None:
                raise self._framer.error  # after the valid frames that preceded it
            if self._closing:
                return None
            try:
                data = await self._reader.read(_READ_CHUNK)
            except (ConnectionError, OSError):
                return None
            if not data:
                return None
            self._ready.extend(self._framer.feed(data))
        return self._ready.popleft()

    async def next_frames(self, limit: int = 256) -> list[bytes]:
        """Every frame already received (at least one, at most ``limit``); empty at EOF."""
        first = await self.next_frame()
        if first is None:
            return []
        frames = [first]
        while self._ready and len(frames) < limit:
            frames.append(self._ready.popleft())
        return frames

    def send(self, message: BaseModel) -> None:
        self.send_raw(encode(message))

    def send_raw(self, frame: bytes) -> None:
        """Queue a frame. Drops the connection if the client is too far behind."""
        if self._closing:
            return
        try:
            self._outbox.put_nowait(frame)
        except asyncio.QueueFull:
            log.warning(
                "[%s] dropping slow client: %d frames queued", self.name, self._outbox.qsize()
            )
            self.abort()

    async def _write_loop(self) -> None:
        try:
            while True:
                frame = await self._outbox.get()
                if frame is None:
                    break
                chunks = [frame]
                # Write everything already queued in one go: fewer syscalls under fan-out.
                while not self._outbox.empty():
                    more = self._outbox.get_nowait()
                    if more is None:
                        self._writer.write(b"".join(chunks))
                        await self._writer.drain()
                        return
                    chunks.append(more)
                self._writer.write(b"".join(chunks))
                await self._writer.drain()
        except (ConnectionError, OSError):
            self._closing = True
        finally:
            with contextlib.suppress(ConnectionError, OSError, RuntimeError):
                self._writer.close()

    async def close(self, *, timeout: float = 2.0) -> None:
        """Flush what is queued (within ``timeout``), then close. Idempotent."""
        if not self._closing:
            self._closing = True
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait(None)
        if not self._writer_task.done():
            _, pending = await asyncio.wait([self._writer_task], timeout=timeout)
            if pending:
                self.abort()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()

    def abort(self) -> None:
        """Close now, dropping anything still queued."""
        self._closing = True
        self._writer_task.cancel()
        transport = self._writer.transport
        if not transport.is_closing():
            transport.abort()
