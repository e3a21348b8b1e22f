"""The MCP server, driven by the official ``mcp`` client over both transports against live hubs:
streamable HTTP at ``/mcp`` on a real dashboard, and stdio through a ``kernal mcp`` subprocess.
Writes go through the hub's TCP path and land in its database."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.types import CallToolResult, TextContent
from typer.testing import CliRunner

from kernal.cli import app
from kernal.hub.auth import DEMO_TOKENS
from kernal.serve import Service
from kernal.web.app import create_app
from tests.conftest import ServiceFactory
from tests.helpers import login

READ_TOOLS = {"hub_status", "list_ais", "search_knowledge", "get_item", "list_collaborations"}
WRITE_TOOLS = {"share_pattern", "request_collaboration"}


def text_of(result: CallToolResult) -> str:
    return "".join(part.text for part in result.content if isinstance(part, TextContent))


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


@pytest.fixture
async def service(make_service: ServiceFactory) -> Service:
    return await make_service(dashboard_port=0)


def mcp_url(service: Service) -> str:
    assert service.dashboard_address is not None
    host, port = service.dashboard_address
    return f"http://{host}:{port}/mcp"


def stdio_params(service: Service) -> StdioServerParameters:
    """``kernal mcp`` against ``service``, as a desktop client would start it."""
    assert service.dashboard_address is not None
    host, port = service.hub.address
    web_host, web_port = service.dashboard_address
    return StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "kernal",
            "mcp",
            "--hub",
            f"{host}:{port}",
            "--api",
            f"http://{web_host}:{web_port}",
        ],
    )


@contextlib.asynccontextmanager
async def connect(transport: str, service: Service) -> AsyncIterator[Client]:
    """An MCP client session over ``transport``. Opened inside the test, not in a fixture:
    anyio's cancel scopes must be left in the task that entered them."""
    target = mcp_url(service) if transport == "http" else stdio_params(service)
    async with Client(target) as client:
        yield client


transports = pytest.mark.parametrize("transport", ["http", "stdio"])


@transports
async def test_lists_its_tools(transport: str, service: Service) -> None:
    async with connect(transport, service) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == READ_TOOLS | WRITE_TOOLS
        for name in READ_TOOLS:
            assert tools[name].annotations is not None and tools[name].annotations.read_only_hint
        assert {"ai_id", "token"} <= set(tools["share_pattern"].input_schema["required"])


@transports
async def test_share_search_and_read_back(transport: str, service: Service) -> None:
    async with connect(transport, service) as client:
        shared = structured(
            await client.call_tool(
                "share_pattern",
                {
                    "ai_id": "AI_Node_1",
                    "token": DEMO_TOKENS["AI_Node_1"],
                    "pattern_id": "mcp-tcp-window",
                    "pattern_data": {"topic": "TCP window scaling", "gain": 0.12},
                },
            )
        )
        assert shared == {
            "pattern_id": "mcp-tcp-window",
            "contributor": "AI_Node_1",
            "duplicate": False,
        }
        # In the hub's database, contributed by the AI that authenticated.
        record = await service.hub.store.get_pattern("mcp-tcp-window")
        assert record is not None and record.contributor == "AI_Node_1"
        assert record.pattern_data == {"topic": "TCP window scaling", "gain": 0.12}

        found = structured(await client.call_tool("search_knowledge", {"query": "window SCALING"}))
        assert [item["pattern_id"] for item in found["items"]] == ["mcp-tcp-window"]
        assert found["items"][0]["kind"] == "pattern"
        nothing = structured(await client.call_tool("search_knowledge", {"query": "window audio"}))
        assert nothing["count"] == 0

        item = structured(
            await client.call_tool("get_item", {"kind": "pattern", "item_id": "mcp-tcp-window"})
        )
        assert item["contributor"] == "AI_Node_1" and item["usage_count"] == 0
        missing = await client.call_tool("get_item", {"kind": "component", "item_id": "nope"})
        assert missing.is_error and "no component 'nope'" in text_of(missing)

        status = structured(await client.call_tool("hub_status", {}))
        assert status["shared_patterns"] == 1
        ais = structured(await client.call_tool("list_ais", {}))
        assert [ai["ai_id"] for ai in ais["known"]] == ["AI_Node_1"]
        assert ais["connected"] == []  # the write's connection is gone


@transports
async def test_refused_without_the_right_token(transport: str, service: Service) -> None:
    async with connect(transport, service) as client:
        wrong = await client.call_tool(
            "share_pattern",
            {"ai_id": "AI_Node_1", "token": "guess", "pattern_id": "p", "pattern_data": {}},
        )
        assert wrong.is_error
        assert "refused the login of AI_Node_1" in text_of(wrong)
        without = await client.call_tool(
            "share_pattern", {"ai_id": "AI_Node_1", "pattern_id": "p", "pattern_data": {}}
        )
        assert without.is_error and "token" in text_of(without)
        assert await service.hub.store.get_pattern("p") is None


async def test_refuses_to_replace_a_connected_ai(service: Service) -> None:
    # One transport is enough: the tools are the same code on both (see the tests above).
    async with connect("http", service) as client:
        trainer = await login(service.hub, "AI_Node_2")
        try:
            result = await client.call_tool(
                "share_pattern",
                {"ai_id": "AI_Node_2", "token": "secret2", "pattern_id": "p", "pattern_data": {}},
            )
            assert result.is_error and "connected to the hub right now" in text_of(result)
            status = structured(await client.call_tool("hub_status", {}))
            assert status["connected_ais"] == 1  # the trainer is still on
        finally:
            await trainer.close()


async def test_collaboration_request_reaches_a_peer(service: Service) -> None:
    # One transport is enough: the tools are the same code on both (see the tests above).
    async with connect("http", service) as client:
        peer = await login(service.hub, "AI_Node_2", "security")
        try:
            result = structured(
                await client.call_tool(
                    "request_collaboration",
                    {
                        "ai_id": "AI_Node_3",
                        "token": DEMO_TOKENS["AI_Node_3"],
                        "request_id": "mcp-req-1",
                        "seeking_expertise": ["firewall"],
                        "to": "AI_Node_2",
                    },
                )
            )
            assert result["requester"] == "AI_Node_3" and result["acknowledged"]
            relayed = await peer.recv_type("COLLABORATION_REQUEST")
            assert relayed["from"] == "AI_Node_3" and relayed["seeking_expertise"] == ["firewall"]
            collaborations = structured(await client.call_tool("list_collaborations", {}))
            assert collaborations == {"count": 0, "collaborations": []}
        finally:
            await peer.close()


async def test_http_mcp_answers_plain_json_posts(service: Service) -> None:
    """``/mcp`` is stateless with JSON answers: any HTTP client can call a tool without a
    session or an event stream."""
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "hub_status", "arguments": {}},
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-06-18",
    }
    async with httpx.AsyncClient() as http:
        init = {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "test", "version": "0"},
            },
        }
        assert (await http.post(mcp_url(service), json=init, headers=headers)).status_code == 200
        response = await http.post(mcp_url(service), json=call, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    status = json.loads(body["result"]["content"][0]["text"])
    assert status["connected_ais"] == 0 and "uptime" in status


async def test_http_mcp_headers_and_dns_rebinding(service: Service) -> None:
    """Answers are never cached; on a loopback dashboard a foreign Host is refused (the SDK's
    DNS-rebinding protection), so a web page elsewhere cannot drive the tools."""
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx.AsyncClient() as http:
        ok = await http.post(mcp_url(service), json=ping, headers=headers)
        assert ok.status_code == 200
        assert ok.headers["cache-control"] == "no-store"
        assert ok.headers["x-content-type-options"] == "nosniff"
        foreign = await http.post(
            mcp_url(service), json=ping, headers={**headers, "Host": "evil.example"}
        )
        assert foreign.status_code == 421
        cross = await http.post(
            mcp_url(service), json=ping, headers={**headers, "Origin": "http://evil.example"}
        )
        assert cross.status_code == 403


async def test_stdio_says_when_the_api_is_unreachable(service: Service) -> None:
    params = stdio_params(service)
    params.args[-1] = "http://127.0.0.1:9"  # --api: nothing listens on the discard port
    async with Client(params) as client:
        result = await client.call_tool("hub_status", {})
    assert result.is_error
    assert "did not answer" in text_of(result) and "is the hub running" in text_of(result)


def test_docs_client_configs_parse_and_name_real_flags() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "mcp.md").read_text(encoding="utf-8")
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", docs, flags=re.DOTALL)]
    stdio, http = (block["mcpServers"] for block in blocks)
    args = stdio["kernal"]["args"]
    assert stdio["kernal"]["command"] == "kernal" and args[0] == "mcp"
    help_text = CliRunner().invoke(app, ["mcp", "--help"], env={"COLUMNS": "240"}).output
    for flag in [a for a in args if a.startswith("--")] + ["--read-token"]:
        assert flag in help_text
    assert set(stdio["kernal"]["env"]) == {"KERNAL_READ_TOKEN"} and "KERNAL_READ_TOKEN" in help_text
    assert http["kernal-http"]["url"].endswith("/mcp")


def test_making_the_server_leaves_logging_alone() -> None:
    """The SDK would ``basicConfig`` the root logger of a process that has not configured it;
    kernal leaves logging to the application."""
    from kernal.web.mcp_hub import HubApi, HubWriter
    from kernal.web.mcp_tools import build_mcp_server

    root = logging.getLogger()
    saved = root.handlers[:]
    for handler in saved:
        root.removeHandler(handler)
    try:
        build_mcp_server(HubApi(httpx.AsyncClient()), HubWriter(lambda: ("127.0.0.1", 1)))
        assert root.handlers == []
    finally:
        for handler in saved:
            root.addHandler(handler)


async def test_without_the_lifespan_mcp_says_it_is_not_running(service: Service) -> None:
    """An app called in-process without its lifespan (as most API tests do) answers 503 with
    the reason, not a crash."""
    transport = httpx.ASGITransport(app=create_app(service.hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        response = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
    assert response.status_code == 503
    assert "without its lifespan" in response.json()["error"]
    assert response.headers["cache-control"] == "no-store"


def test_importing_the_web_app_does_not_import_the_sdk() -> None:
    """The SDK is imported when an MCP transport starts, not by every hub process."""
    code = "import sys, kernal.serve; print('mcp' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
