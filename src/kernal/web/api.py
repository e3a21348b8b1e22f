"""The read-only JSON API behind the dashboard (token administration, the one part that
writes, is :mod:`kernal.web.admin`).

Every route reads either the hub's in-memory state (who is connected right now) or its store
(everything that was ever shared, collaborations, stats snapshots). Live figures must never be
cached, so every response here carries ``Cache-Control: no-store``.

Contracts:

* ``GET /status`` is :class:`~kernal.hub.status.HubStatus`: the integers ``connected_ais``,
  ``shared_patterns``, ``shared_components`` and ``active_collaborations`` (kept from the original
  prototype; scripts poll it), ``uptime`` and ``demo_tokens``.
* Lists of patterns, components and collaborations are newest first, one page at a time with
  a byte budget and filters (:mod:`kernal.web.listing`, :mod:`kernal.web.items`); stats
  history is oldest first (ready to plot). Every list also comes as CSV (``?format=csv``).
* An unknown id is a 404 ``{"error": "...", "detail": "..."}``; a bad query parameter is a 422
  with the same ``error`` summary (see :mod:`kernal.web.app`).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict

from kernal.hub.server import Hub
from kernal.hub.status import HubStatus
from kernal.protocol.messages import RequestTerms
from kernal.storage import (
    CollaborationQuery,
    CollaborationRecord,
    CollaborationStatus,
)
from kernal.web.items import item_routes
from kernal.web.listing import (
    Budget,
    Cursor,
    Format,
    Position,
    Search,
    Since,
    Until,
    build_page,
    decode_cursor,
    encode_cursor,
    respond,
)


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
    replica: str | None = None
    """The replica it is connected to, on a cluster (``--bus``); null on one hub."""


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


class Standing(BaseModel):
    """The hub's standing of an AI, as relayed with its requests: how its work was rated by
    established partners (docs/protocol.md, Standing)."""

    ai_id: str
    reputation: float
    """Weighted mean of its partners' opinions, pulled toward 0.5 by two virtual ratings."""
    partners: int
    """Distinct AIs it completed a collaboration with."""
    online: bool


class AiDetail(KnownAi):
    """One AI: its profile, whether it is connected, its standing."""

    reputation: float
    partners: int


MAX_ITEMS = 500
MAX_HISTORY = 10_000

Member = Annotated[
    str | None, Query(min_length=1, max_length=200, description="Requester or acceptor.")
]


def api_router(hub: Hub, budget: Budget | None = None) -> APIRouter:
    """Routes reading ``hub``; the hub must be started (its store open) before they are called.
    ``budget``: byte limits of list pages (:class:`~kernal.web.listing.Budget` defaults)."""
    budget = budget or Budget()
    router = APIRouter(dependencies=[Depends(_no_store)])
    store = hub.store

    @router.get("/status", tags=["status"])
    async def status() -> HubStatus:
        """Headline figures (compatible with the original prototype's ``/status``)."""
        return await hub.status()

    @router.get("/healthz", tags=["status"])
    async def healthz() -> Health:
        """Liveness: the web server answers inside the hub process (needs no token)."""
        return Health(ok=True)

    async def everyone() -> dict[str, KnownAi]:
        connected = {profile.ai_id: profile for profile in hub.peers.profiles()}
        known = {
            record.ai_id: KnownAi.model_validate(record).model_copy(
                update={"online": record.ai_id in connected}
            )
            for record in await store.list_ais()
        }
        # The hub marks a connection joined before its HELLO is stored; an AI caught in between
        # is still listed as known, so that ``known`` is always a superset of ``connected``.
        for profile in connected.values():
            if profile.ai_id not in known:
                known[profile.ai_id] = KnownAi(
                    ai_id=profile.ai_id,
                    specialization=profile.specialization,
                    capabilities=list(profile.capabilities),
                    first_seen=profile.connected_at,
                    last_seen=profile.connected_at,
                    online=True,
                )
        return known

    @router.get(
        "/api/ais",
        tags=["ais"],
        response_model=Ais,
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def ais(request: Request, format: Format = "json") -> Any:
        """Connected AIs, and every AI ever seen with an ``online`` flag. As CSV: the AIs
        ever seen (``known``), one row each."""
        connected = [
            ConnectedAi(
                ai_id=profile.ai_id,
                specialization=profile.specialization,
                capabilities=list(profile.capabilities),
                connected_at=profile.connected_at,
                replica=None if hub.cluster is None else hub.cluster.replica_of(profile.ai_id),
            )
            for profile in hub.peers.profiles()
        ]
        known = await everyone()
        everyone_sorted = [known[key] for key in sorted(known)]
        if format == "csv":
            return respond(request, [], everyone_sorted, None, format, KnownAi)
        return Ais(connected=connected, known=everyone_sorted)

    @router.get("/api/ais/{ai_id}", tags=["ais"])
    async def ai(ai_id: str) -> AiDetail:
        """One AI ever seen, with its standing. 404 if the hub never saw it."""
        found = (await everyone()).get(ai_id)
        if found is None:
            raise HTTPException(404, f"no AI {ai_id!r} was ever seen by this hub")
        return AiDetail(
            **found.model_dump(),
            reputation=hub.standings.of(ai_id),
            partners=hub.standings.partners(ai_id),
        )

    @router.get(
        "/api/reputation",
        tags=["ais"],
        response_model=list[Standing],
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def reputation(request: Request, format: Format = "json") -> Response:
        """The standing of every AI ever seen, best first (then by id)."""
        known = await everyone()
        standings = [
            Standing(
                ai_id=ai_id,
                reputation=hub.standings.of(ai_id),
                partners=hub.standings.partners(ai_id),
                online=record.online,
            )
            for ai_id, record in known.items()
        ]
        standings.sort(key=lambda standing: (-standing.reputation, standing.ai_id))
        parts = [standing.__pydantic_serializer__.to_json(standing) for standing in standings]
        return respond(request, parts, standings, None, format, Standing)

    item_routes(router, hub, budget)

    def live_progress(record: CollaborationRecord) -> Collaboration:
        item = Collaboration.model_validate(record)
        live = hub.collaborations.progress_of(record.collaboration_id)
        if live is not None and record.status is CollaborationStatus.ACTIVE:
            item = item.model_copy(update={"progress": live})
        return item

    @router.get(
        "/api/collaborations",
        tags=["collaborations"],
        response_model=list[Collaboration],
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def collaborations(
        request: Request,
        status: Annotated[
            CollaborationStatus | None, Query(description="Only this status; all if omitted.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_ITEMS)] = 100,
        cursor: Cursor = None,
        member: Member = None,
        since: Since = None,
        until: Until = None,
        q: Search = None,
        format: Format = "json",
    ) -> Response:
        """Collaborations newest first (by start), one page (see the patterns listing).
        Records come from the store; the progress of active ones from the hub, which writes it
        to the store only every stats tick."""
        query = CollaborationQuery(status=status, member=member, since=since, until=until, search=q)

        async def fetch(after: Position | None, count: int) -> list[CollaborationRecord]:
            chunk = dataclasses.replace(query, before=after)
            return await store.list_collaborations_page(chunk, count)

        page = await build_page(
            fetch,
            decode_cursor(cursor),
            limit,
            budget.page_bytes,
            live_progress,
            lambda record: (record.started_at, record.collaboration_id),
        )
        following = encode_cursor(page.following)
        return respond(request, page.parts, page.given, following, format, Collaboration)

    @router.get("/api/collaborations/{collaboration_id:path}", tags=["collaborations"])
    async def collaboration(collaboration_id: str) -> Collaboration:
        """One collaboration by id. 404 if unknown."""
        record = await store.get_collaboration(collaboration_id)
        if record is None:
            raise HTTPException(404, f"no collaboration {collaboration_id!r}")
        return live_progress(record)

    @router.get(
        "/api/stats/history",
        tags=["status"],
        response_model=list[StatsPoint],
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def stats_history(
        request: Request,
        since: Annotated[float, Query(ge=0, description="Unix seconds; 0 for all.")] = 0.0,
        limit: Annotated[int, Query(ge=1, le=MAX_HISTORY, description="Newest N kept.")] = 500,
        format: Format = "json",
    ) -> Response:
        """Periodic snapshots of the headline figures since ``since``, oldest first; when
        there are more than ``limit``, the newest ``limit`` of them (a few dozen bytes each:
        no byte budget needed)."""
        points = [StatsPoint.model_validate(s) for s in await store.stats_history(since, limit)]
        parts = [point.__pydantic_serializer__.to_json(point) for point in points]
        return respond(request, parts, points, None, format, StatsPoint)

    return router
