"""Runs an ASGI app with uvicorn inside the running event loop (the hub's: same process, same
state). Started by :mod:`kernal.serve`, never by the hub.

HTTP limits (:class:`WebLimits`), because the dashboard shares its loop with the hub:

* A request must arrive whole (line, headers, body) within ``request_timeout`` seconds of the
  connection opening or of the previous response; a client trickling bytes is closed then.
  uvicorn alone has no such timeout: its keep-alive timer stops at the first byte, and a new
  connection that sends nothing was never timed at all.
* Idle keep-alive connections close after ``keep_alive`` seconds.
* Past ``max_connections`` connections at once, requests get 503 (uvicorn's
  ``limit_concurrency``).
* The request line and headers may take ``max_header_bytes`` (h11's incomplete event size);
  more is a 400.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from kernal.config import HubSettings
from kernal.runtime import cancel_and_wait

log = logging.getLogger("kernal.web")


@dataclass(frozen=True)
class WebLimits:
    request_timeout: float = 10.0
    keep_alive: float = 5.0
    max_connections: int = 512
    max_header_bytes: int = 16 * 1024

    @classmethod
    def from_settings(cls, settings: HubSettings) -> WebLimits:
        return cls(
            request_timeout=settings.web_request_timeout,
            keep_alive=settings.web_keep_alive,
            max_connections=settings.web_max_connections,
            max_header_bytes=settings.web_max_header_bytes,
        )


def _timed_protocol(request_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a deadline for each request to arrive whole."""

    class TimedH11(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            if request_timeout > 0:
                self._deadline = self.loop.call_later(request_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            # Only while a request is still arriving; a slow *answer* is the app's business.
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not (
                self.transport.is_closing()
            ):
                log.info("HTTP client %s too slow to send its request; closing", self.client)
                self.transport.close()

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is h11.DONE:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return TimedH11


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the hub's command owns Ctrl+C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """A started uvicorn server. ``address`` is the bound (host, port)."""

    def __init__(
        self,
        server: uvicorn.Server,
        task: asyncio.Task[None],
        address: tuple[str, int],
        app: Any = None,
    ):
        self._server = server
        self._task = task
        self.address = address
        self._app = app

    @property
    def app(self) -> Any:
        """The ASGI app served."""
        return self._app

    async def stop(self) -> None:
        """Run the app's ``state.before_stop`` hooks (async callables, if it has any), then stop
        uvicorn. uvicorn waits for open responses to finish, so a long-lived one (the event
        stream of :mod:`kernal.web.live`) must end itself in such a hook."""
        for hook in list(getattr(getattr(self._app, "state", None), "before_stop", None) or []):
            try:
                await hook()
            except Exception:
                log.exception("A web shutdown hook failed")
        self._server.should_exit = True
        _, pending = await asyncio.wait([self._task], timeout=5)
        if pending:
            await cancel_and_wait(self._task)


async def start_web(
    app: Any,
    host: str,
    port: int,
    limits: WebLimits | None = None,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> WebServer:
    """Bind ``host:port`` (port 0 picks a free one) and serve ``app`` until
    :meth:`WebServer.stop`, within ``limits``, over https when given a certificate (PEM chain
    and key). Raises OSError if the address cannot be bound."""
    limits = limits or WebLimits()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    address = sock.getsockname()[:2]
    # lifespan on: the app's startup runs before ``started`` (the MCP session manager, see
    # kernal.web.mcp), its shutdown after the last connection closed.
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        ws="none",
        ssl_certfile=tls_cert,
        # uvicorn serves https only with both; a key kept in the certificate's file is found.
        ssl_keyfile=tls_key or tls_cert,
        http=_timed_protocol(limits.request_timeout),
        timeout_keep_alive=max(1, round(limits.keep_alive)),
        limit_concurrency=limits.max_connections or None,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        # No Server/Date headers to fingerprint; a proxy's X-Forwarded-* is not trusted.
        server_header=False,
        proxy_headers=False,
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                sock.close()
                task.result()  # raises the startup error
                raise OSError(f"dashboard failed to start on {host}:{port}")
            await asyncio.sleep(0.01)
    except asyncio.CancelledError:
        # Ctrl+C while the app starts (its lifespan): let uvicorn finish starting and shut
        # down in order, instead of leaving its lifespan task to die with a traceback.
        server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.shield(asyncio.wait_for(asyncio.shield(task), 5))
        raise
    return WebServer(server, task, (address[0], address[1]), app)
