"""The read-only JSON API behind the dashboard.

Every route reads either the hub's in-memory state (who is connected right now) or its store
(everything that was ever shared, collaborations, stats snapshots); none of them writes. Live
figures must never be cached, so every response here carries ``Cache-Control: no-store``.

Contracts:

* ``GET /status`` is :class:`~kernal.hub.status.HubStatus`: the integers ``connected_ais``,
  ``shared_patterns``, ``shared_components`` and ``active_collaborations`` (kept from the original
  prototype; scripts poll it), ``uptime`` and ``demo_tokens``.
* Lists of patterns, components and collaborations are newest first; stats history is oldest
  first (ready to plot).
* An unknown id is a 404 ``{"error": "...", "detail": "..."}``; a bad query parameter is a 422
  with the same ``error`` summary (see :mod:`kernal.web.app`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict

from kernal.hub.server import Hub
from kernal.hub.status import HubStatus
from kernal.protocol.messages import RequestTerms
from kernal.storage import CollaborationStatus, ItemKind


class _Record(BaseModel):
    """Built straight from the store's frozen dataclasses."""

    model_config = ConfigDict(from_attributes=True)


class Health(BaseModel):
    ok: bool


class ConnectedAi(BaseModel):
    """An AI that is authenticated and said HELLO on a live connection."""

    ai_id: str
    specialization: str
    capabilities: list[str]
    connected_at: float


class KnownAi(_Record):
    """An AI the store has seen at least once; ``online`` if it is connected right now."""

    ai_id: str
    specialization: str
    capabilities: list[str]
    first_seen: float
    last_seen: float
    online: bool = False


class Ais(BaseModel):
    connected: list[ConnectedAi]
    """Connected now, ordered by ai_id."""
    known: list[KnownAi]
    """Every AI ever seen (a superset of ``connected``), ordered by ai_id."""


class Pattern(_Record):
    pattern_id: str
    contributor: str
    timestamp: float
    usage_count: int
    pattern_data: dict[str, Any]


class Component(_Record):
    component_id: str
    contributor: str
    timestamp: float
    quality_score: float | None
    usage_count: int
    component_data: dict[str, Any]


class Collaboration(_Record):
    collaboration_id: str
    request_id: str
    requester: str
    acceptor: str
    members: list[str]
    status: CollaborationStatus
    progress: float
    """Percent, 0 to 100, as last reported by a member."""
    started_at: float
    ended_at: float | None
    outcome: Any
    reason: str | None
    request: RequestTerms
    """What the requester sent in its COLLABORATION_REQUEST (expertise offered and sought)."""


class StatsPoint(_Record):
    timestamp: float
    connected_ais: int
    shared_patterns: int
    shared_components: int
    active_collaborations: int


def _no_store(response: Response) -> None:
    # Live data: a cached /status would show a stale hub as healthy.
    response.headers["Cache-Control"] = "no-store"


MAX_ITEMS = 500
MAX_HISTORY = 10_000

ItemLimit = Annotated[
    int, Query(ge=1, le=MAX_ITEMS, description=f"How many, newest first (1 to {MAX_ITEMS}).")
]


def _item_routes(
    router: APIRouter, hub: Hub, kind: ItemKind, model: type[_Record], noun: str
) -> None:
    """``GET /api/{kind}s`` (newest first) and ``GET /api/{kind}s/{id}`` for one item kind."""
    store = hub.store

    async def recent(limit: ItemLimit = 50) -> list[Any]:
        return [model.model_validate(r) for r in await store.recent_items(kind, limit)]

    async def one(item_id: str) -> Any:
        record = await store.get_item(kind, item_id)
        if record is None:
            raise HTTPException(404, f"no {kind} {item_id!r}")
        return model.model_validate(record)

    recent.__doc__ = f"Recently shared {noun} with their data, newest first."
    one.__doc__ = f"One {kind} by id (URL-encoded; ids may contain ``/``). 404 if unknown."
    path = f"/api/{kind}s"
    router.add_api_route(
        path,
        recent,
        methods=["GET"],
        tags=["knowledge"],
        response_model=list[model],  # type: ignore[valid-type]  # chosen at run time
        name=f"{kind}s",
    )
    router.add_api_route(
        path + "/{item_id:path}",
        one,
        methods=["GET"],
        tags=["knowledge"],
        response_model=model,
        name=str(kind),
    )


def api_router(hub: Hub) -> APIRouter:
    """Routes reading ``hub``; the hub must be started (its store open) before they are called."""
    router = APIRouter(dependencies=[Depends(_no_store)])
    store = hub.store

    @router.get("/status", tags=["status"])
    async def status() -> HubStatus:
        """Headline figures (compatible with the original prototype's ``/status``)."""
        return await hub.status()

    @router.get("/healthz", tags=["status"])
    async def healthz() -> Health:
        """Liveness: the web server answers inside the hub process."""
        return Health(ok=True)

    @router.get("/api/ais", tags=["ais"])
    async def ais() -> Ais:
        """Connected AIs, and every AI ever seen with an ``online`` flag."""
        connected = [
            ConnectedAi(
                ai_id=profile.ai_id,
                specialization=profile.specialization,
                capabilities=list(profile.capabilities),
                connected_at=profile.connected_at,
            )
            for profile in hub.peers.profiles()
        ]
        joined = {ai.ai_id for ai in connected}
        known = {
            record.ai_id: KnownAi.model_validate(record).model_copy(
                update={"online": record.ai_id in joined}
            )
            for record in await store.list_ais()
        }
        # The hub marks a connection joined before its HELLO is stored; an AI caught in between
        # is still listed as known, so that ``known`` is always a superset of ``connected``.
        for ai in connected:
            if ai.ai_id not in known:
                known[ai.ai_id] = KnownAi(
                    ai_id=ai.ai_id,
                    specialization=ai.specialization,
                    capabilities=ai.capabilities,
                    first_seen=ai.connected_at,
                    last_seen=ai.connected_at,
                    online=True,
                )
        return Ais(connected=connected, known=[known[key] for key in sorted(known)])

    for kind, model, noun in (
        (ItemKind.PATTERN, Pattern, "patterns"),
        (ItemKind.COMPONENT, Component, "OS components"),
    ):
        _item_routes(router, hub, kind, model, noun)

    @router.get("/api/collaborations", tags=["collaborations"])
    async def collaborations(
        status: Annotated[
            CollaborationStatus | None, Query(description="Only this status; all if omitted.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_ITEMS)] = 100,
    ) -> list[Collaboration]:
        """Collaborations newest first (by start). Records come from the store; the progress
        of active ones from the hub, which writes it to the store only every stats tick."""
        result = []
        for record in await store.list_collaborations(status, limit):
            item = Collaboration.model_validate(record)
            live = hub.collaborations.progress_of(record.collaboration_id)
            if live is not None and record.status is CollaborationStatus.ACTIVE:
                item = item.model_copy(update={"progress": live})
            result.append(item)
        return result

    @router.get("/api/stats/history", tags=["status"])
    async def stats_history(
        since: Annotated[float, Query(ge=0, description="Unix seconds; 0 for all.")] = 0.0,
        limit: Annotated[int, Query(ge=1, le=MAX_HISTORY, description="Newest N kept.")] = 500,
    ) -> list[StatsPoint]:
        """Periodic snapshots of the headline figures since ``since``, oldest first; when
        there are more than ``limit``, the newest ``limit`` of them."""
        return [StatsPoint.model_validate(s) for s in await store.stats_history(since, limit)]

    return router
