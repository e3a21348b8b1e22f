"""``/mcp``: the hub's MCP server (:mod:`kernal.web.mcp_tools`) over streamable HTTP on the
dashboard port, for LLM agents; ``kernal mcp`` (:mod:`kernal.cli.mcp`) serves the same tools
over stdio. See ``docs/mcp.md``.

Reads go through the app's own JSON API in-process, with the caller's ``Authorization`` header
passed on, so ``/mcp`` reads exactly what ``/api`` lets that caller read; writes log in to the
hub's TCP port as the AI whose id and token the agent gives. The SDK is imported, and the
server built, when the app's lifespan starts: importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from fastapi import FastAPI

    from kernal.hub.server import Hub

__all__ = ["MCP_PATH", "mount_mcp"]

MCP_PATH = "/mcp"
MCP_HEADERS = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]


def _loopback_if_any(address: tuple[str, int]) -> tuple[str, int]:
    """A wildcard bind is reached on loopback from inside the process."""
    host, port = address
    return ("127.0.0.1" if host in ("", "0.0.0.0") else "::1" if host == "::" else host), port


MCP_HEADERS = [(b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff")]


class _Endpoint:
    """The SDK's endpoint once the lifespan has started it, its answers marked never to be
    cached (live data, and answers to one caller's token) and never sniffed. Before that (an
    app called without its lifespan) it answers 503 with the reason."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *MCP_HEADERS]}
            await send(message)

        if self.app is not None:
            await self.app(scope, receive, send_with_headers)
            return
        reason = "MCP is not running: the web app was started without its lifespan"
        body = json.dumps({"error": reason, "detail": reason}).encode()
        await send_with_headers(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})


def mount_mcp(app: FastAPI, hub: Hub) -> None:
    """Serve the MCP server at ``/mcp`` on ``app`` (streamable HTTP, stateless, JSON answers).
    The server is built and its session manager run in the app's lifespan (uvicorn must run
    the lifespan, as :func:`kernal.web.server.start_web` does)."""
    endpoint = _Endpoint()
    app.router.routes.append(Route(MCP_PATH, endpoint=endpoint, include_in_schema=False))
    outer = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        import httpx
        from mcp.server.streamable_http_manager import StreamableHTTPASGIApp

        from kernal.web.mcp_hub import HubApi, HubWriter
        from kernal.web.mcp_tools import build_mcp_server, caller_token

        api = HubApi(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://localhost"
            )  # in-process: a loopback Host
        )
        server = build_mcp_server(
            api, HubWriter(lambda: _loopback_if_any(hub.address)), read_token_of=caller_token
        )
        # Stateless with JSON answers: every POST stands alone, so no stream outlives a
        # request and stopping the dashboard never waits on an idle agent. DNS-rebinding
        # protection is on for a loopback dashboard (the SDK's default for these hosts). Only
        # the session manager is used; the SDK's own Starlette app is not mounted.
        server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            json_response=True,
            host=hub.settings.web_host,
        )
        async with outer(app_) as state, server.session_manager.run():
            endpoint.app = StreamableHTTPASGIApp(server.session_manager)
            try:
                yield state
            finally:
                endpoint.app = None
                await api.aclose()

    app.router.lifespan_context = lifespan
