"""One client connection: frames in, frames out, as an :class:`asyncio.Protocol`.

Reading: bytes are split into frames as they arrive (the pure ``LineFramer``) and wait for the
session to take them; past ``READ_PAUSE_FRAMES`` frames or ``read_buffer_bytes`` bytes waiting,
the connection stops reading (TCP pushes back on the client) until the session catches up.

Writing never waits for the network. Frames sent during one turn of the event loop are joined
and written once at the end of the turn (as Redis's ``writeToClient`` and NATS's
``flushClients`` do), so a relay to a thousand peers costs a list append per peer, and one
``write`` per peer per turn. A client whose unsent data grows past ``send_buffer_bytes``, or
past ``send_queue_limit`` frames while the kernel buffer is full, is dropped: the client that
does not read pays, nobody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, cast

from pydantic import BaseModel

from kernal.hub.counters import HubCounters
from kernal.protocol import FrameTooLarge, LineFramer, encode

log = logging.getLogger("kernal.hub")

READ_PAUSE_FRAMES = 1024  # frames waiting for the session before reading pauses
READ_RESUME_FRAMES = 256
# Blank lines the session has not taken yet before reading pauses: a throttled client that sends
# only blank lines has no frames waiting, and without this it would be read (and its bytes
# scanned) at full speed while its session sleeps off its debt.
READ_PAUSE_BLANK_LINES = 65_536
# Bytes of frames handed to the session at a time (at least one frame): it decodes what it takes
# before it yields, and a client sending megabytes must not hold the loop for all of them at once
# (a 500 KB share costs about 5 ms to decode).
TAKE_BYTES = 1024 * 1024
LINGER_SECONDS = 1.0  # how long a closing connection waits for the client to close too


class Connection(asyncio.Protocol):
    """Transport of one client. ``name`` labels its log lines (the peer address until the
    session knows the AI id)."""

    def __init__(
        self,
        *,
        max_frame: int,
        send_queue_limit: int,
        send_buffer_bytes: int,
        read_buffer_bytes: int,
        on_connected: Callable[[Connection], None] | None = None,
        counters: HubCounters | None = None,
    ) -> None:
        self._on_connected = on_connected
        self._sent = counters.sent if counters is not None else None
        self._framer = LineFramer(max_frame)
        self._blank_taken = 0
        self._frames: list[bytes] = []
        self._frames_bytes = 0
        self._reading_paused = False
        self._read_buffer_bytes = read_buffer_bytes
        self._waiter: asyncio.Future[None] | None = None
        self._out: list[bytes] = []
        self._send_queue_limit = send_queue_limit
        self._send_buffer_bytes = send_buffer_bytes
        self._write_paused = False
        self._frames_while_paused = 0
        self._closing = False
        self._eof = False
        self._lost = False
        self._closed: asyncio.Future[None] | None = None
        self._lingering: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._tls = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.peer: Any = None
        self.name = "?"

    # ------------------------------------------------------------------ protocol callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but they behave as one.
        self._transport = cast(asyncio.Transport, transport)
        self._loop = asyncio.get_running_loop()
        self._closed = self._loop.create_future()
        self._tls = transport.get_extra_info("sslcontext") is not None
        self.peer = transport.get_extra_info("peername")
        self.name = str(self.peer)
        if self._on_connected is not None:
            self._on_connected(self)

    def data_received(self, data: bytes) -> None:
        if self._framer.error is not None or self._closing:
            return  # oversized frame already seen: nothing more is read
        try:
            frames = self._framer.feed(data)
        except FrameTooLarge:
            frames = []  # kept in self._framer.error, raised to the session in order
        if frames:
            self._frames.extend(frames)
            self._frames_bytes += sum(map(len, frames))
        if not self._reading_paused and (
            len(self._frames) > READ_PAUSE_FRAMES
            or self._frames_bytes > self._read_buffer_bytes
            or self._framer.blank_lines - self._blank_taken > READ_PAUSE_BLANK_LINES
        ):
            self._reading_paused = True
            assert self._transport is not None
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        self._end_linger()
        # Half-closed: the replies to frames already received still go out. TLS has no half
        # close (the stream ends both ways), so there the transport closes itself.
        return not self._tls

    def _end_linger(self) -> None:
        if self._lingering is not None and not self._lingering.done():
            self._lingering.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._lost = True
        self._end_linger()
        self._closing = True
        self._out.clear()
        self._wake()
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True
        self._frames_while_paused = 0

    def resume_writing(self) -> None:
        self._write_paused = False

    @property
    def lost(self) -> bool:
        """The connection is gone (closed by either side, or failed)."""
        return self._lost

    @property
    def ended(self) -> asyncio.Future[None] | None:
        """Completes when the connection is gone (None before it is made)."""
        return self._closed

    # ------------------------------------------------------------------ reading

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next_frames(self, limit: int = 256) -> list[bytes] | None:
        """The frames received and not taken yet (at most ``limit``, and no more than
        :data:`TAKE_BYTES` unless the first is larger); None at EOF. An empty
        list when only blank lines came (they count against the rate limits all the same).
        Raises :class:`FrameTooLarge` once the frames before the oversized one are taken.

        Frames that arrived in the same read are kept for the following calls, so a client may
        pipeline AUTH, HELLO and more in one packet.
        """
        while not self._frames:
            if self._framer.error is not None:
                raise self._framer.error
            if self._framer.blank_lines != self._blank_taken:
                return []
            if self._eof or self._closing:
                return None
            assert self._loop is not None
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        batch = self._frames[:limit]
        size = 0
        for n, frame in enumerate(batch):
            size += len(frame)
            if size > TAKE_BYTES and n:
                del batch[n:]
                break
        # The taken frames leave the list now: kept until the session caught up with every
        # frame, those of a client that keeps sending would be held without bound.
        del self._frames[: len(batch)]
        self._frames_bytes -= sum(map(len, batch))
        self._maybe_resume()
        return batch

    def _maybe_resume(self) -> None:
        if (
            self._reading_paused
            and len(self._frames) <= READ_RESUME_FRAMES
            and self._framer.blank_lines - self._blank_taken <= READ_PAUSE_BLANK_LINES
        ):
            self._reading_paused = False
            if self._transport is not None and not self._transport.is_closing():
                self._transport.resume_reading()

    def take_blank_lines(self) -> int:
        """Blank lines received since the last call (they count against the rate limits)."""
        blank = self._framer.blank_lines - self._blank_taken
        self._blank_taken = self._framer.blank_lines
        self._maybe_resume()
        return blank

    async def next_frame(self) -> bytes | None:
        """The next frame, or None at EOF (see :meth:`next_frames`); blank lines are skipped."""
        while (frames := await self.next_frames(limit=1)) is not None:
            if frames:
                return frames[0]
            self.take_blank_lines()
        return None

    # ------------------------------------------------------------------ writing

    def send(self, message: BaseModel) -> None:
        self.send_raw(encode(message))

    def send_raw(self, frame: bytes) -> None:
        """Queue an encoded frame; it leaves with everything else queued in this turn."""
        if self._closing:
            return
        if self._sent is not None:
            self._sent(frame)
        self.send_uncounted(frame)

    def send_uncounted(self, frame: bytes) -> None:
        """:meth:`send_raw` for a caller that counts the frame itself (a broadcast, once for
        all its recipients); ``frame`` may be several frames, each ending with its newline."""
        if self._closing:
            return
        out = self._out
        out.append(frame)
        if len(out) == 1:
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        out = self._out
        transport = self._transport
        if not out or transport is None or self._lost:
            out.clear()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        transport.write(data)
        if self._write_paused:
            # Counted by their newlines: a queued item may hold many frames (a run of relays).
            self._frames_while_paused += data.count(b"\n")
        waiting = transport.get_write_buffer_size()
        if waiting > self._send_buffer_bytes or self._frames_while_paused > self._send_queue_limit:
            log.warning(
                "[%s] dropping slow client: %d bytes (%d frames) waiting to be sent",
                self.name,
                waiting,
                self._frames_while_paused,
            )
            self.abort()

    # ------------------------------------------------------------------ closing

    async def close(self, *, timeout: float = 2.0) -> None:
        """Send what is queued (within ``timeout``), then close. Idempotent.

        A lingering close: our side of the stream ends first (after the data queued), and what
        the client still sends is read and dropped until it closes too, or for a moment: closing
        with its bytes unread would reset the connection, and a reset can destroy the last
        frames (an ERROR saying why) before the client has read them.
        """
        if self._transport is None:
            return
        if not self._closing:
            self._flush()
            self._closing = True
            transport = self._transport
            if not self._eof and transport.can_write_eof():
                with contextlib.suppress(OSError, RuntimeError):
                    transport.write_eof()
                    self._lingering = asyncio.get_running_loop().create_future()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(min(timeout, LINGER_SECONDS)):
                            await asyncio.shield(self._lingering)
            transport.close()  # after the buffered data is written
        if self._closed is not None and not self._closed.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await asyncio.shield(self._closed)
            if not self._closed.done():
                self.abort()

    def abort(self) -> None:
        """Close now, dropping anything still queued."""
        self._closing = True
        self._out.clear()
        if self._transport is not None and not self._lost:
            self._transport.abort()
        self._wake()
