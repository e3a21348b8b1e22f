"""``GET /api/ratings/{kind}/{item_id}``: who rated one pattern or component, and how.

Each rater's current vote (one per rater per item: a later FEEDBACK replaced its earlier one),
newest first; uses that rated nothing are not listed (they count in ``usage_count`` only).
A component shared with one AI only is private to its two parties, so its ratings are a 404
like an unknown id's, as its own URL is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel

from kernal.storage import ItemKind, ItemQuery
from kernal.web.listing import Format, respond

if TYPE_CHECKING:
    from kernal.hub.server import Hub

__all__ = ["MAX_RATINGS", "Rating", "ratings_router"]

MAX_RATINGS = 1000


class Rating(BaseModel):
    rater: str
    score: float | None
    """The quality the rater gave (0 to 1), if it gave one."""
    usefulness: float | None
    """The measured outcome of using the item (0 to 1), if the rater reported one."""
    timestamp: float
    """When the rater last sent FEEDBACK on the item (Unix seconds; a use that rates nothing
    keeps the vote but moves this)."""


def ratings_router(hub: Hub) -> APIRouter:
    router = APIRouter(tags=["knowledge"])

    @router.get(
        "/api/ratings/{kind}/{item_id:path}",
        response_model=list[Rating],
        responses={200: {"content": {"text/csv": {}}}, 404: {"description": "Unknown item"}},
    )
    async def ratings(
        request: Request,
        kind: ItemKind,
        item_id: str,
        limit: Annotated[int, Query(ge=1, le=MAX_RATINGS)] = 100,
        format: Format = "json",
    ) -> Response:
        """Who rated the item (``kind`` pattern or component; the id URL-encoded) and how:
        each rater's current vote, newest first. 404 if the item is unknown or private."""
        # Visibility as for the item's own URL (a listing of one, without its data).
        visible = await hub.store.list_items(kind, ItemQuery(item_id=item_id), 1, max_data=0)
        if not visible:
            raise HTTPException(404, f"no {kind} {item_id!r}")
        votes = await hub.store.item_votes(kind, item_id, limit)
        given = [
            Rating(
                rater=vote.rater,
                score=vote.vote.score,
                usefulness=vote.vote.usefulness,
                timestamp=vote.timestamp,
            )
            for vote in votes
        ]
        parts = [rating.__pydantic_serializer__.to_json(rating) for rating in given]
        return respond(request, parts, given, None, format, Rating)

    return router
