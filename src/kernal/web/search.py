"""``GET /api/search``: the knowledge base searched by words (for people and agents; the MCP
tool ``search_knowledge`` is this route). Read-only, never cached."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Response

from kernal.storage import ItemKind

if TYPE_CHECKING:
    from kernal.hub.server import Hub

__all__ = ["MAX_RESULTS", "search_router"]

MAX_RESULTS = 100
MAX_QUERY = 512


def item_json(record: Any) -> dict[str, Any]:
    """A pattern or component as the API's item routes give it, with its ``kind``."""
    return {"kind": record.kind.value, **dataclasses.asdict(record)}


def search_router(hub: Hub) -> APIRouter:
    router = APIRouter(tags=["knowledge"])

    @router.get("/api/search")
    async def search(
        response: Response,
        q: Annotated[
            str,
            Query(
                max_length=MAX_QUERY,
                description="Words that must all appear in the id, contributor or data "
                "(ASCII letters in any case).",
            ),
        ],
        kind: Annotated[
            ItemKind | None, Query(description="Only this kind; both if omitted.")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_RESULTS)] = 20,
    ) -> dict[str, Any]:
        """Patterns and components shared with everyone that match every word of ``q``,
        newest first: ``{"query", "count", "items": [{"kind", ...item}]}``."""
        response.headers["Cache-Control"] = "no-store"
        words = q.split()
        found = []
        for one in [kind] if kind else list(ItemKind):
            found += await hub.store.search_items(one, words, limit)
        found.sort(key=lambda record: record.timestamp, reverse=True)
        items = [item_json(record) for record in found[:limit]]
        return {"query": q, "count": len(items), "items": items}

    return router
