"""Runs the web app with uvicorn inside the hub's event loop (same process, same state)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn

from kernal.web.app import create_app

if TYPE_CHECKING:
    from kernal.hub.server import Hub

log = logging.getLogger("kernal.web")


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handling: the hub's command owns Ctrl+C."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """A started uvicorn server. ``address`` is the bound (host, port)."""

    def __init__(self, server: uvicorn.Server, task: asyncio.Task[None], address: tuple[str, int]):
        self._server = server
        self._task = task
        self.address = address

    async def stop(self) -> None:
        self._server.should_exit = True
        _, pending = await asyncio.wait([self._task], timeout=5)
        if pending:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def start_web(hub: Hub) -> WebServer:
    """Bind the dashboard port (0 picks a free one) and serve until :meth:`WebServer.stop`."""
    host = hub.settings.web_host
    port = hub.settings.dashboard_port or 0
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
    config = uvicorn.Config(
        create_app(hub), log_config=None, access_log=False, lifespan="off", ws="none"
    )
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            sock.close()
            task.result()  # raises the startup error
            raise OSError(f"dashboard failed to start on {host}:{port}")
        await asyncio.sleep(0.01)
    return WebServer(server, task, (address[0], address[1]))
