"""``GET /api/search`` against a real hub: what trainers shared over TCP, found by words."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from kernal.hub.server import Hub
from kernal.web.app import create_app
from tests.helpers import login


@pytest.fixture
async def api(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


async def test_search_finds_both_kinds_newest_first(api: httpx.AsyncClient, hub: Hub) -> None:
    client = await login(hub, "AI_Node_1")
    try:
        for frame in (
            {"type": "PATTERN_SHARE", "pattern_id": "tcp-1", "pattern_data": {"t": "Window"}},
            {
                "type": "OS_COMPONENT_SHARE",
                "component_id": "c-1",
                "component_data": {"t": "window"},
            },
            {"type": "PATTERN_SHARE", "pattern_id": "gpu-1", "pattern_data": {"t": "shader"}},
        ):
            await client.send({"msg_id": "m", **frame})
            await client.recv_type("ACK")
    finally:
        await client.close()
    response = await api.get("/api/search", params={"q": "window"})
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    assert [(i["kind"], i.get("pattern_id") or i.get("component_id")) for i in body["items"]] == [
        ("component", "c-1"),
        ("pattern", "tcp-1"),
    ]
    assert body["items"][1] == {
        "kind": "pattern",
        "pattern_id": "tcp-1",
        "pattern_data": {"t": "Window"},
        "contributor": "AI_Node_1",
        "timestamp": body["items"][1]["timestamp"],
        "usage_count": 0,
    }
    only = (await api.get("/api/search", params={"q": "window", "kind": "pattern"})).json()
    assert only["count"] == 1
    limited = (await api.get("/api/search", params={"q": "AI_Node_1", "limit": 2})).json()
    assert limited["count"] == 2


async def test_search_refuses_bad_input(api: httpx.AsyncClient) -> None:
    missing = await api.get("/api/search")
    assert missing.status_code == 422 and "query.q" in missing.json()["error"]
    bad_kind = await api.get("/api/search", params={"q": "x", "kind": "opinion"})
    assert bad_kind.status_code == 422
