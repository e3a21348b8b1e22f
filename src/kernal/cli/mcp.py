"""``kernal mcp``: the hub's MCP server over stdio, for desktop MCP clients (see docs/mcp.md).

It reads the hub's HTTP API (``--api``, by default the dashboard beside ``--hub``) and writes
through the hub's TCP port (``--hub``) as the AI whose id and token a write tool is given.
Standard output is the MCP channel: logs go to standard error only.
"""

from __future__ import annotations

from typing import Annotated

import typer

from kernal.cli.common import LogLevelOption, fail, run_until_interrupted
from kernal.config import DEFAULT_DASHBOARD_PORT, DEFAULT_HUB_PORT, parse_hub_address
from kernal.logs import setup_logging


def mcp(
    hub_address: Annotated[
        str, typer.Option("--hub", envvar="KERNAL_HUB", help="Hub TCP address HOST:PORT.")
    ] = f"127.0.0.1:{DEFAULT_HUB_PORT}",
    api: Annotated[
        str | None,
        typer.Option(
            "--api",
            envvar="KERNAL_API",
            help=f"Hub dashboard/API URL (default: http://HOST:{DEFAULT_DASHBOARD_PORT}).",
        ),
    ] = None,
    read_token: Annotated[
        str | None,
        typer.Option(
            "--read-token", envvar="KERNAL_READ_TOKEN", help="The hub's API read token, if set."
        ),
    ] = None,
    log_level: LogLevelOption = "WARNING",
) -> None:
    """Serve the hub to an MCP client over stdio: read tools (status, AIs, knowledge,
    collaborations) and write tools acting as an AI with its token."""
    setup_logging(level=log_level)  # stderr: stdout carries the protocol
    try:
        host, port = parse_hub_address(hub_address)
    except ValueError as exc:
        raise fail(f"--hub: {exc}") from None
    base_url = api or f"http://{_url_host(host)}:{DEFAULT_DASHBOARD_PORT}"
    if not base_url.startswith(("http://", "https://")):
        raise fail(f"--api {base_url!r}: expected a URL such as http://127.0.0.1:5001")
    run_until_interrupted(_serve(host, port, base_url.rstrip("/"), read_token))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def _serve(host: str, port: int, base_url: str, read_token: str | None) -> None:
    import httpx

    from kernal.web.mcp_hub import HubApi, HubWriter
    from kernal.web.mcp_tools import build_mcp_server

    api = HubApi(httpx.AsyncClient(base_url=base_url, timeout=15.0), read_token)
    try:
        await build_mcp_server(api, HubWriter(lambda: (host, port))).run_stdio_async()
    finally:
        await api.aclose()
