"""Runs an ASGI app with uvicorn inside the running event loop (the hub's: same process, same
state). Started by :mod:`kernal.serve`, never by the hub."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

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


async def start_web(
    app: Any, host: str, port: int, *, tls_cert: str | None = None, tls_key: str | None = None
) -> WebServer:
    """Bind ``host:port`` (port 0 picks a free one) and serve ``app`` until
    :meth:`WebServer.stop`, over https when given a certificate (PEM chain and key). Raises
    OSError if the address cannot be bound."""
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
