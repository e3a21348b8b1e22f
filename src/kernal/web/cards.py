"""Agent cards in the A2A ``AgentCard`` format, so agent directories and A2A tooling can
discover the hub and the AIs on it (see ``docs/agent-cards.md`` for every field).

* ``GET /.well-known/agent-card.json``: the hub itself, its skills being the MCP tools at
  ``/mcp`` (:mod:`kernal.web.mcp`).
* ``GET /api/ais/{ai_id}/card``: one connected AI, built from its latest ``HELLO``: its
  specialization and one skill per capability. 404 for an AI that is not connected.

The hub does not speak A2A's JSON-RPC itself: a card's ``supportedInterfaces`` name what it
does speak (MCP over streamable HTTP, the kernal TCP protocol), so an A2A client reads the
card and knows where to go. Both A2A 1.0 (``supportedInterfaces``) and the older 0.3 fields
(``url``, ``preferredTransport``, ``protocolVersion``) are given, as published cards still
mix them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kernal import __version__
from kernal.protocol import PROTOCOL_VERSION

if TYPE_CHECKING:
    from kernal.hub.peers import Profile
    from kernal.hub.server import Hub

__all__ = ["AgentCard", "cards_router"]

A2A_PROTOCOL_VERSION = "1.0"
JSON = "application/json"
DOCS_URL = "https://github.com/kernal-project/kernal/blob/main/docs/agent-cards.md"


class _Camel(BaseModel):
    """A2A spells its fields in camelCase."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class AgentProvider(_Camel):
    organization: str
    url: str


class AgentCapabilities(_Camel):
    streaming: bool = False
    push_notifications: bool = False
    state_transition_history: bool = False


class AgentInterface(_Camel):
    url: str
    protocol_binding: str
    protocol_version: str


class AgentSkill(_Camel):
    id: str
    name: str
    description: str
    tags: list[str]
    examples: list[str] = []
    input_modes: list[str] = [JSON]
    output_modes: list[str] = [JSON]


class AgentCard(_Camel):
    """The A2A ``AgentCard`` fields this hub fills in (required ones have no default)."""

    name: str
    description: str
    version: str
    url: str
    protocol_version: str = A2A_PROTOCOL_VERSION
    preferred_transport: str
    supported_interfaces: list[AgentInterface] = Field(min_length=1)
    provider: AgentProvider
    documentation_url: str = DOCS_URL
    capabilities: AgentCapabilities = AgentCapabilities()
    default_input_modes: list[str] = [JSON]
    default_output_modes: list[str] = [JSON]
    skills: list[AgentSkill]


def _skill(
    skill_id: str, name: str, description: str, *tags: str, examples: tuple[str, ...] = ()
) -> AgentSkill:
    return AgentSkill(
        id=skill_id, name=name, description=description, tags=list(tags), examples=list(examples)
    )


HUB_SKILLS = [
    _skill(
        "hub_status",
        "Hub status",
        "Connected AIs, shared patterns and components, active collaborations.",
        "status",
    ),
    _skill(
        "list_ais",
        "List AIs",
        "Connected and known AIs with their specialization and capabilities.",
        "presence",
    ),
    _skill(
        "search_knowledge",
        "Search knowledge",
        "Search the patterns and components AIs have shared.",
        "knowledge",
        "search",
        examples=("TCP congestion window", "shader cache"),
    ),
    _skill(
        "get_item",
        "Get a pattern or component",
        "One shared item with its data, usage count and quality score.",
        "knowledge",
    ),
    _skill(
        "list_collaborations",
        "List collaborations",
        "Collaborations between AIs: members, status, progress and outcome.",
        "collaboration",
    ),
    _skill(
        "share_pattern",
        "Share a pattern",
        "Share a pattern as an AI, authenticated with that AI's token.",
        "knowledge",
        "write",
    ),
    _skill(
        "request_collaboration",
        "Request a collaboration",
        "Ask peers to collaborate, as an AI authenticated with its token.",
        "collaboration",
        "write",
    ),
]


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _card(
    name: str,
    description: str,
    interfaces: list[AgentInterface],
    base: str,
    skills: list[AgentSkill],
) -> AgentCard:
    """A card reached first through ``interfaces[0]`` (its ``url`` and preferred transport)."""
    return AgentCard(
        name=name,
        description=description,
        version=__version__,
        url=interfaces[0].url,
        preferred_transport=interfaces[0].protocol_binding,
        supported_interfaces=interfaces,
        provider=AgentProvider(organization="kernal hub", url=base + "/"),
        skills=skills,
    )


def _tcp_interface(hub: Hub) -> AgentInterface:
    host, port = hub.address
    return AgentInterface(
        url=f"tcp://{host}:{port}",
        protocol_binding="KERNAL-TCP",
        protocol_version=str(PROTOCOL_VERSION),
    )


def hub_card(hub: Hub, base: str) -> AgentCard:
    """The hub's own card; ``base`` is the dashboard's URL as the caller reached it."""
    mcp = AgentInterface(
        url=base + "/mcp", protocol_binding="MCP", protocol_version="streamable-http"
    )
    return _card(
        "kernal hub",
        "A hub where AI trainers share learned patterns and components and collaborate. "
        "Agents read its knowledge base and live state, and act as an AI, over MCP.",
        [mcp, _tcp_interface(hub)],
        base,
        HUB_SKILLS,
    )


def ai_card(hub: Hub, profile: Profile, base: str) -> AgentCard:
    """A connected AI's card, from its HELLO: the hub relays to it over the TCP protocol."""
    skills = [
        AgentSkill(
            id=capability,
            name=capability.replace("_", " "),
            description=f"{capability} ({profile.specialization}), as {profile.ai_id} said in "
            "its HELLO.",
            tags=[profile.specialization, capability],
        )
        for capability in profile.capabilities
    ]
    return _card(
        profile.ai_id,
        f"A kernal trainer specialised in {profile.specialization}, connected to the hub "
        f"since {profile.connected_at:.0f} (Unix seconds). Reach it through the hub: "
        "collaboration requests to it over the kernal TCP protocol.",
        [_tcp_interface(hub)],
        base,
        skills,
    )


def cards_router(hub: Hub) -> APIRouter:
    """The two card routes (see the module docstring)."""
    router = APIRouter(tags=["agent cards"])

    @router.get("/.well-known/agent-card.json", response_model_by_alias=True)
    async def hub_agent_card(request: Request, response: Response) -> AgentCard:
        """The hub's A2A agent card."""
        response.headers["Cache-Control"] = "no-cache"
        return hub_card(hub, _base(request))

    @router.get("/api/ais/{ai_id}/card", response_model_by_alias=True)
    async def ai_agent_card(ai_id: str, request: Request, response: Response) -> AgentCard:
        """The A2A agent card of a connected AI, from its HELLO. 404 if it is not connected."""
        response.headers["Cache-Control"] = "no-store"
        profile = next((p for p in hub.peers.profiles() if p.ai_id == ai_id), None)
        if profile is None:
            raise HTTPException(
                404, f"{ai_id!r} is not connected: cards describe connected AIs (see /api/ais)"
            )
        return ai_card(hub, profile, _base(request))

    return router
