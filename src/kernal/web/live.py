"""Headline figures pushed to the dashboard as server-sent events: ``GET /api/events``.

One :class:`LiveFeed` per app reads :meth:`Hub.status` once a second while at least one page
listens (however many are listening) and keeps the latest frame; each stream sends a frame when
the figures changed, a comment every :data:`KEEPALIVE_SECONDS` otherwise. A stream holds no
queue: a client that reads slowly only ever misses intermediate figures, never makes the hub
buffer them, so memory is bounded per client by one frame.

The stream, as the page reads it (``text/event-stream``)::

    retry: 3000                        reconnect after 3 s (EventSource does it by itself)
    event: run                         once, first: {"started_at", "server_time", "stats_interval"}
    event: status                      HubStatus fields + "server_time", on change
    : keepalive                        when nothing changed for 15 s
    event: closing                     last: the hub is stopping, or the stream reached its age

Bounds: :data:`MAX_STREAMS` streams in all and :data:`MAX_STREAMS_PER_CLIENT` per client address
(a 503 JSON error beyond; the page then polls ``/status``), and no stream lives longer than
:data:`MAX_STREAM_SECONDS` (the page reconnects), so a forgotten tab never pins a response forever.
On shutdown :meth:`LiveFeed.close` ends every stream with ``event: closing`` before uvicorn stops
(uvicorn waits for open responses to finish: see :mod:`kernal.web.server`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse

from kernal.hub.server import Hub
from kernal.runtime import cancel_and_wait

log = logging.getLogger("kernal.web")

TICK_SECONDS = 1.0
KEEPALIVE_SECONDS = 15.0
MAX_STREAMS = 64
MAX_STREAMS_PER_CLIENT = 8
MAX_STREAM_SECONDS = 600.0
RETRY_MS = 3000
CLOSE_WAIT_SECONDS = 2.0

# What an event stream response carries besides its body: no proxy may buffer or cache it.
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def sse(event: str, data: Any) -> bytes:
    """One server-sent event; ``data`` as compact JSON on one line (JSON has no raw newline)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class LiveFeed:
    """The latest status frame of ``hub``, refreshed every ``tick`` real seconds while someone
    listens. Call :meth:`stream` for one client's body, :meth:`close` when the app stops."""

    def __init__(
        self,
        hub: Hub,
        *,
        tick: float = TICK_SECONDS,
        keepalive: float = KEEPALIVE_SECONDS,
        max_streams: int = MAX_STREAMS,
        max_per_client: int = MAX_STREAMS_PER_CLIENT,
        max_age: float = MAX_STREAM_SECONDS,
    ) -> None:
        self._hub = hub
        self.tick = tick
        self.keepalive = keepalive
        self.max_streams = max_streams
        self.max_per_client = max_per_client
        self.max_age = max_age
        self._frame: bytes | None = None
        self._figures: dict[str, Any] | None = None
        self._version = 0
        self._changed = asyncio.Event()  # replaced on every change: waiters hold the old one
        self._closing = asyncio.Event()
        self._clients: Counter[str] = Counter()
        self._ticker: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def streams(self) -> int:
        """Streams open now."""
        return sum(self._clients.values())

    def refusal(self, client: str) -> str | None:
        """Why a new stream for ``client`` would be refused, or ``None`` if it may open."""
        if self._closing.is_set():
            return "the hub is stopping; reload the page once it is back"
        if self.streams >= self.max_streams:
            return (
                f"{self.max_streams} live streams are open, the most this hub serves; "
                "the page polls /status instead"
            )
        if self._clients[client] >= self.max_per_client:
            return (
                f"{self.max_per_client} live streams are open from {client}, the most per "
                "client; close a dashboard tab (this one polls /status instead)"
            )
        return None

    def run_info(self) -> dict[str, Any]:
        """What the page needs to tell this run from earlier ones and to find gaps."""
        hub = self._hub
        return {
            "started_at": hub.started_at,
            "server_time": time.time(),
            # Stats snapshots are taken every stats_interval scenario seconds: real ones here.
            "stats_interval": hub.clock.real(hub.settings.stats_interval),
        }

    async def _read(self) -> None:
        status = await self._hub.status()
        figures = status.model_dump()
        uptime = figures.pop("uptime")
        if figures != self._figures:
            self._figures = figures
            self._frame = sse("status", {**figures, "uptime": uptime, "server_time": time.time()})
            self._version += 1
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    async def _run_ticker(self) -> None:
        while not self._closing.is_set():
            try:
                await self._read()
            except Exception:  # a store hiccup must not end every page's stream
                log.exception("Live feed could not read the hub's status")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.tick)

    def _join(self, client: str) -> None:
        self._clients[client] += 1
        self._idle.clear()
        if self._ticker is None or self._ticker.done():
            self._frame = self._figures = None  # the first reader gets fresh figures
            self._ticker = asyncio.create_task(self._run_ticker())

    def _leave(self, client: str) -> None:
        self._clients[client] -= 1
        if self._clients[client] <= 0:
            del self._clients[client]
        if not self._clients:
            self._idle.set()
            if self._ticker is not None:
                self._ticker.cancel()  # nobody listens: stop reading the hub
                self._ticker = None

    async def stream(self, client: str) -> AsyncIterator[bytes]:
        """The body of one client's stream (see the module docstring)."""
        self._join(client)
        try:
            if self.streams > self.max_streams or self._clients[client] > self.max_per_client:
                # Two requests raced past refusal(): the later one ends at once.
                yield sse("closing", {"reason": "too many live streams"})
                return
            yield f"retry: {RETRY_MS}\n\n".encode()
            yield sse("run", self.run_info())
            if self._frame is None:
                await self._read()  # the first frame at once, not a tick later
            deadline = time.monotonic() + self.max_age
            sent = -1
            while not self._closing.is_set():
                if self._version != sent and self._frame is not None:
                    sent = self._version
                    yield self._frame
                left = deadline - time.monotonic()
                if left <= 0:
                    yield sse("closing", {"reason": "stream age limit; reconnect"})
                    return
                changed = asyncio.ensure_future(self._changed.wait())
                closing = asyncio.ensure_future(self._closing.wait())
                try:
                    done, _ = await asyncio.wait(
                        [changed, closing],
                        timeout=min(self.keepalive, left),
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    changed.cancel()
                    closing.cancel()
                if not done:
                    yield b": keepalive\n\n"
            yield sse("closing", {"reason": "the hub is stopping"})
        finally:
            self._leave(client)

    async def close(self) -> None:
        """End every stream (each sends ``event: closing``) and stop reading the hub; waits up to
        :data:`CLOSE_WAIT_SECONDS` for the streams to finish. Idempotent."""
        self._closing.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), CLOSE_WAIT_SECONDS)
        await cancel_and_wait(self._ticker)
        self._ticker = None


def live_router(hub: Hub, feed: LiveFeed) -> APIRouter:
    """``GET /api/events`` over ``feed``."""
    router = APIRouter()

    @router.get(
        "/api/events",
        tags=["status"],
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "The event stream."},
            503: {"description": "Too many streams open (in all or from this client)."},
        },
    )
    async def events(request: Request) -> StreamingResponse:
        """Headline figures as server-sent events: ``run`` once, then ``status`` whenever the
        figures change (read every second), ``closing`` last. See :mod:`kernal.web.live`."""
        client = request.client.host if request.client else "unknown"
        reason = feed.refusal(client)
        if reason is not None:
            raise HTTPException(503, reason, headers={"Retry-After": "30"})
        return StreamingResponse(
            feed.stream(client), media_type="text/event-stream", headers=STREAM_HEADERS
        )

    return router


def install_live(app: FastAPI, hub: Hub) -> LiveFeed:
    """Add ``GET /api/events`` to ``app`` and register the feed's :meth:`~LiveFeed.close` in
    ``app.state.before_stop``, which :class:`kernal.web.server.WebServer` runs on stop."""
    feed = LiveFeed(hub)
    app.state.live_feed = feed
    hooks = getattr(app.state, "before_stop", None)
    if hooks is None:
        hooks = app.state.before_stop = []
    hooks.append(feed.close)
    app.include_router(live_router(hub, feed))
    return feed
