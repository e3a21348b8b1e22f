"""Agent cards: the hub's ``/.well-known/agent-card.json`` and each connected AI's card validate
against the documented schema (docs/agent-card.schema.json, the table in docs/agent-cards.md)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from kernal import __version__
from kernal.hub.server import Hub
from kernal.web.app import create_app
from tests.conftest import HubFactory
from tests.helpers import login

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCHEMA = json.loads((DOCS / "agent-card.schema.json").read_text(encoding="utf-8"))


def validate(card: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(card)


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    """A hub whose dashboard answers to the name the cards are read by."""
    return await make_hub(allowed_hosts=("hub.example",))


@pytest.fixture
async def api(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.example:5001") as c:
        yield c


async def test_hub_card(api: httpx.AsyncClient, hub: Hub) -> None:
    response = await api.get("/.well-known/agent-card.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    card = response.json()
    validate(card)
    assert card["version"] == __version__
    assert card["url"] == "http://hub.example:5001/mcp" and card["preferredTransport"] == "MCP"
    host, port = hub.address
    assert card["supportedInterfaces"][1]["url"] == f"tcp://{host}:{port}"
    assert {skill["id"] for skill in card["skills"]} == {
        "hub_status",
        "list_ais",
        "search_knowledge",
        "get_item",
        "list_collaborations",
        "share_pattern",
        "request_collaboration",
    }


async def test_connected_ai_card_comes_from_its_hello(api: httpx.AsyncClient, hub: Hub) -> None:
    client = await login(hub, "AI_Node_4", "graphics")  # HELLO capabilities: ["x"]
    try:
        card = (await api.get("/api/ais/AI_Node_4/card")).json()
    finally:
        await client.close()
    validate(card)
    assert card["name"] == "AI_Node_4"
    assert "graphics" in card["description"]
    assert [(s["id"], s["tags"]) for s in card["skills"]] == [("x", ["graphics", "x"])]


async def test_unknown_or_offline_ai_has_no_card(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/ais/AI_Node_9/card")
    assert response.status_code == 404
    assert "not connected" in response.json()["error"]


def test_schema_invalid_card_is_refused() -> None:
    """The schema does check: a card without skills, or with an unknown field, fails."""
    with pytest.raises(jsonschema.ValidationError):
        validate({"name": "x"})


def test_docs_table_lists_every_schema_field() -> None:
    text = (DOCS / "agent-cards.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `([A-Za-z]+)` \|", text, flags=re.MULTILINE))
    assert documented == set(SCHEMA["properties"])
    required = set(re.findall(r"^\| `([A-Za-z]+)` \| yes \|", text, flags=re.MULTILINE))
    assert required == set(SCHEMA["required"])
