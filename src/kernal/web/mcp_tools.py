"""The MCP server's tools (official ``mcp`` SDK): the hub's knowledge base and live state for
LLM agents, with two write tools that act as an authenticated AI. Imported only when an MCP
transport starts (the SDK is a large import a hub without agents need not pay for).

Two transports, one set of tools (:func:`build_mcp_server`):

* Streamable HTTP at ``/mcp`` on the dashboard port (:func:`kernal.web.mcp.mount_mcp`, called by
  :func:`kernal.web.app.create_app`). Reads go through the app's own JSON API in-process, with
  the caller's ``Authorization`` header passed on, so ``/mcp`` reads exactly what ``/api``
  lets that caller read.
* stdio, ``kernal mcp --hub HOST:PORT`` (:mod:`kernal.cli.mcp`), for desktop clients: reads a
  hub's API over HTTP, writes over its TCP port.

Read tools: ``hub_status``, ``list_ais``, ``search_knowledge``, ``get_item``,
``list_collaborations``. Write tools: ``share_pattern``, ``request_collaboration``; each logs
in over TCP with the ``ai_id`` and ``token`` it is given (see :class:`~kernal.web.mcp_hub.
HubWriter`), so the hub applies its usual rules. A tool the hub refuses returns an error
result (``isError``) whose text says why. See ``docs/mcp.md``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from kernal import __version__
from kernal.protocol.messages import CollaborationRequest, PatternShare
from kernal.web.mcp_hub import HubApi, HubWriter, ToolRefused

__all__ = ["build_mcp_server", "caller_token"]

DEFAULT_SPECIALIZATION = "agent"

INSTRUCTIONS = """\
A kernal hub: AI trainers share learned patterns and components and collaborate on it.
Read tools show who is connected, the shared knowledge and collaborations. share_pattern and
request_collaboration act as one AI and need that AI's id and token (made on the hub with
`kernal token add AI_ID`); never log in as an AI that is connected right now (list_ais)."""

_READ = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
_WRITE = ToolAnnotations(readOnlyHint=False, destructiveHint=False, openWorldHint=False)

AiIdArg = Annotated[str, Field(description="The AI to act as, e.g. AI_Node_1.")]
TokenArg = Annotated[str, Field(description="That AI's token on the hub.")]
SpecializationArg = Annotated[
    str | None,
    Field(description="HELLO specialization for an AI the hub has not seen (default: agent)."),
]
Kind = Literal["pattern", "component"]


def build_mcp_server(
    api: HubApi,
    writer: HubWriter,
    *,
    read_token_of: Callable[[Context], str | None] | None = None,
) -> MCPServer:
    """The MCP server reading through ``api`` and writing through ``writer``.
    ``read_token_of(ctx)``: the read token of one call (the HTTP transport passes the caller's
    own); None uses ``api``'s default."""
    with _logging_left_alone():
        server = MCPServer(
            "kernal",
            title="kernal hub",
            description="Knowledge base and live state of a kernal hub of AI trainers.",
            instructions=INSTRUCTIONS,
            version=__version__,
        )

    def token(ctx: Context) -> str | None:
        return None if read_token_of is None else read_token_of(ctx)

    async def read(ctx: Context, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            return await api.get(path, params, token=token(ctx))
        except ToolRefused as exc:
            raise ToolError(str(exc)) from None

    @server.tool(annotations=_READ)
    async def hub_status(ctx: Context) -> dict[str, Any]:
        """Headline figures: connected AIs, shared patterns and components, active
        collaborations, uptime."""
        result: dict[str, Any] = await read(ctx, "/status")
        return result

    @server.tool(annotations=_READ)
    async def list_ais(
        ctx: Context,
        online_only: Annotated[bool, Field(description="Only AIs connected now.")] = False,
    ) -> dict[str, Any]:
        """AIs with their specialization and capabilities: ``connected`` now, and every AI
        ever ``known`` (each with an ``online`` flag)."""
        ais: dict[str, Any] = await read(ctx, "/api/ais")
        if online_only:
            ais["known"] = [ai for ai in ais.get("known", []) if ai.get("online")]
        return ais

    @server.tool(annotations=_READ)
    async def search_knowledge(
        ctx: Context,
        query: Annotated[
            str,
            Field(
                min_length=1,
                max_length=512,
                description="Words that must all appear in the id, contributor or data.",
            ),
        ],
        kind: Annotated[Kind | None, Field(description="pattern, component, or both.")] = None,
        limit: Annotated[int, Field(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        """Search the shared patterns and components, newest first (ASCII letters in any
        case): ``{"query", "count", "items": [{"kind", ...}]}``."""
        params: dict[str, Any] = {"q": query, "limit": limit}
        if kind:
            params["kind"] = kind
        found: dict[str, Any] = await read(ctx, "/api/search", params)
        return found

    @server.tool(annotations=_READ)
    async def get_item(
        ctx: Context,
        kind: Annotated[Kind, Field(description="pattern or component.")],
        item_id: Annotated[str, Field(description="The pattern_id or component_id.")],
    ) -> dict[str, Any]:
        """One pattern or component with its data, usage count (and quality score)."""
        try:
            found = await api.item(kind, item_id, token=token(ctx))
        except ToolRefused as exc:
            raise ToolError(str(exc)) from None
        if found is None:
            raise ToolError(f"no {kind} {item_id!r}: search_knowledge finds ids")
        result: dict[str, Any] = found
        return result

    @server.tool(annotations=_READ)
    async def list_collaborations(
        ctx: Context,
        status: Annotated[
            Literal["active", "completed", "failed"] | None,
            Field(description="Only this status; all if omitted."),
        ] = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """Collaborations newest first: members, status, progress, outcome, what was asked."""
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        found = await read(ctx, "/api/collaborations", params)
        return {"count": len(found), "collaborations": found}

    async def profile_for(
        ctx: Context, ai_id: str, specialization: str | None
    ) -> tuple[str, list[str]]:
        """The HELLO to log in with: the AI's known profile (so writing through MCP does not
        change it), refused while the AI is connected (a second login would replace its live
        session and cut off its trainer)."""
        ais = await read(ctx, "/api/ais")
        if any(ai.get("ai_id") == ai_id for ai in ais.get("connected", [])):
            raise ToolError(
                f"{ai_id} is connected to the hub right now; logging in as it would replace its "
                "live session. Act as another AI (add one with `kernal token add AGENT_ID`)"
            )
        for ai in ais.get("known", []):
            if ai.get("ai_id") == ai_id:
                return specialization or ai["specialization"], list(ai.get("capabilities", []))
        return specialization or DEFAULT_SPECIALIZATION, []

    async def send(ctx: Context, ai_id: str, token_: str, spec: str | None, msg: Any) -> Any:
        specialization, capabilities = await profile_for(ctx, ai_id, spec)
        try:
            return await writer.send_as(
                ai_id, token_, msg, specialization=specialization, capabilities=capabilities
            )
        except ToolRefused as exc:
            raise ToolError(str(exc)) from None

    @server.tool(annotations=_WRITE)
    async def share_pattern(
        ctx: Context,
        ai_id: AiIdArg,
        token: TokenArg,
        pattern_id: Annotated[str, Field(min_length=1, max_length=256)],
        pattern_data: Annotated[dict[str, Any], Field(description="The pattern, a JSON object.")],
        specialization: SpecializationArg = None,
    ) -> dict[str, Any]:
        """Share a pattern as ``ai_id``: stored (acknowledged after commit) and relayed to the
        other AIs. Re-sharing the same id is a harmless duplicate."""
        msg = _valid(lambda: PatternShare(pattern_id=pattern_id, pattern_data=pattern_data))
        ack = await send(ctx, ai_id, token, specialization, msg)
        return {"pattern_id": pattern_id, "contributor": ai_id, "duplicate": bool(ack.duplicate)}

    @server.tool(annotations=_WRITE)
    async def request_collaboration(
        ctx: Context,
        ai_id: AiIdArg,
        token: TokenArg,
        request_id: Annotated[str, Field(min_length=1, max_length=256)],
        seeking_expertise: Annotated[list[str], Field(description="Expertise wanted.")],
        expertise_offered: Annotated[list[str], Field(description="Expertise offered.")] = [],  # noqa: B006
        to: Annotated[str | None, Field(description="One AI to ask; everyone if omitted.")] = None,
        specialization: SpecializationArg = None,
    ) -> dict[str, Any]:
        """Ask peers (or one, ``to``) to collaborate, as ``ai_id``. The hub relays the
        request; an AI that accepts must find ``ai_id`` online, so this suits an AI id whose
        trainer will log in, or a peer that answers at once."""
        msg = _valid(
            lambda: CollaborationRequest(
                request_id=request_id,
                seeking_expertise=seeking_expertise,
                expertise_offered=expertise_offered,
                to=to,
            )
        )
        await send(ctx, ai_id, token, specialization, msg)
        return {"request_id": request_id, "requester": ai_id, "to": to, "acknowledged": True}

    return server


@contextlib.contextmanager
def _logging_left_alone() -> Iterator[None]:
    """The SDK's server calls ``logging.basicConfig`` when it is made, which would install its
    own handler on the root logger of a process that has none yet (a library user's): logging
    is the application's to configure (``kernal.logs``), so give basicConfig nothing to do."""
    root = logging.getLogger()
    placeholder = None if root.handlers else logging.NullHandler()
    if placeholder is not None:
        root.addHandler(placeholder)
    try:
        yield
    finally:
        if placeholder is not None:
            root.removeHandler(placeholder)


def _valid(build: Callable[[], Any]) -> Any:
    """The frame ``build`` makes, or a ToolError saying which field is wrong."""
    try:
        return build()
    except ValueError as exc:
        raise ToolError(f"invalid arguments: {exc}") from None


def caller_token(ctx: Context) -> str | None:
    headers = ctx.headers or {}
    value = headers.get("authorization", "")
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None
