"""``GET /api/patterns``, ``GET /api/components`` (pages, see :mod:`kernal.web.listing`) and
one item by id.

A listing never returns an item's data past :attr:`Budget.list_data_bytes` bytes of JSON:
such an item is listed with ``data`` null, ``data_omitted`` true, its ``data_size`` and the
``url`` that gives it whole. A component shared with one AI only (``to``) is private to its
sender and recipient: it is in no listing, and its URL is a 404 like an unknown id's.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from kernal.hub.limits import Pace
from kernal.hub.server import Hub
from kernal.storage import ComponentRecord, ItemEntry, ItemKind, ItemQuery
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

MAX_ITEMS = 500
WHOLE = 2**62  # max_data that reads any item's data


class Pattern(BaseModel):
    pattern_id: str
    contributor: str
    timestamp: float
    usage_count: int
    pattern_data: dict[str, Any] | None
    """Null in a listing when longer than the hub lists (``data_omitted``): see ``url``."""
    data_size: int
    """Bytes of ``pattern_data`` as JSON text (UTF-8), as stored."""
    data_omitted: bool = False
    url: str
    """This pattern alone, with its data."""


class Component(BaseModel):
    component_id: str
    contributor: str
    timestamp: float
    quality_score: float | None
    usage_count: int
    component_data: dict[str, Any] | None
    """Null in a listing when longer than the hub lists (``data_omitted``): see ``url``."""
    data_size: int
    """Bytes of ``component_data`` as JSON text (UTF-8), as stored."""
    data_omitted: bool = False
    url: str
    """This component alone, with its data."""


ItemLimit = Annotated[
    int, Query(ge=1, le=MAX_ITEMS, description=f"Entries at most (1 to {MAX_ITEMS}).")
]
Contributor = Annotated[
    str | None, Query(min_length=1, max_length=200, description="Only this contributor's.")
]


def _url(kind: ItemKind, item_id: str) -> str:
    return f"/api/{kind}s/{quote(item_id, safe='')}"


def item_model(entry: ItemEntry) -> Pattern | Component:
    """The API view of a listed (or, with ``data_included``, a whole) item."""
    record = entry.record
    common: dict[str, Any] = {
        "contributor": record.contributor,
        "timestamp": record.timestamp,
        "usage_count": record.usage_count,
        "data_size": entry.data_size,
        "data_omitted": not entry.data_included,
        "url": _url(record.kind, record.item_id),
    }
    shown = entry.data_included
    if isinstance(record, ComponentRecord):
        return Component(
            component_id=record.component_id,
            quality_score=record.quality_score,
            component_data=record.component_data if shown else None,
            **common,
        )
    return Pattern(
        pattern_id=record.pattern_id, pattern_data=record.pattern_data if shown else None, **common
    )


def item_routes(router: APIRouter, hub: Hub, budget: Budget) -> None:
    """The listing and single-item routes of both kinds, on ``router``; their listings share
    one :attr:`Budget.entries_per_second` per client address."""
    pace = Pace(budget.entries_per_second, budget.entry_burst)
    for kind, model, noun in (
        (ItemKind.PATTERN, Pattern, "patterns"),
        (ItemKind.COMPONENT, Component, "OS components"),
    ):
        _kind_routes(router, hub, budget, pace, kind, model, noun)


def _kind_routes(
    router: APIRouter,
    hub: Hub,
    budget: Budget,
    pace: Pace,
    kind: ItemKind,
    model: type[BaseModel],
    noun: str,
) -> None:
    store = hub.store

    async def listing(
        request: Request,
        limit: ItemLimit = 50,
        cursor: Cursor = None,
        contributor: Contributor = None,
        since: Since = None,
        until: Until = None,
        q: Search = None,
        format: Format = "json",
    ) -> Response:
        query = ItemQuery(contributor=contributor, since=since, until=until, search=q)
        # Waiting, not refusing: the client that asks too much gets its pages later.
        wait, _ = pace.take(request.client.host if request.client else "-", limit)
        if wait > 0:
            await asyncio.sleep(wait)

        async def fetch(after: Position | None, count: int) -> list[ItemEntry]:
            chunk = dataclasses.replace(query, before=after)
            return await store.list_items(kind, chunk, count, max_data=budget.list_data_bytes)

        page = await build_page(
            fetch,
            decode_cursor(cursor),
            limit,
            budget.page_bytes,
            item_model,
            lambda entry: (entry.record.timestamp, entry.record.item_id),
        )
        following = encode_cursor(page.following)
        return respond(request, page.parts, page.given, following, format, model)

    async def one(item_id: str) -> Any:
        # A listing of one: components private to a sender and recipient are left out of
        # listings, so such an id is as unknown here as one never used.
        found = await store.list_items(kind, ItemQuery(item_id=item_id), 1, max_data=WHOLE)
        if not found:
            raise HTTPException(404, f"no {kind} {item_id!r}")
        return item_model(found[0])

    listing.__doc__ = (
        f"Shared {noun}, newest first, one page: filters combine (all must hold). Data longer "
        f"than {budget.list_data_bytes} bytes of JSON is left out (see ``url``); a page "
        f"stops before {budget.page_bytes} bytes of entries, and its ``Link rel=next`` header "
        f"gives the next one. One client address may ask for {budget.entries_per_second:g} "
        "entries a second (a page counts its ``limit``); past that its pages come later."
    )
    one.__doc__ = (
        f"One {kind} by id (URL-encoded; ids may contain ``/``), data whole. 404 if unknown."
    )
    path = f"/api/{kind}s"
    router.add_api_route(
        path,
        listing,
        methods=["GET"],
        tags=["knowledge"],
        response_model=list[model],  # type: ignore[valid-type]  # chosen at run time
        name=f"{kind}s",
        responses={200: {"content": {"text/csv": {}}}},
    )
    router.add_api_route(
        path + "/{item_id:path}",
        one,
        methods=["GET"],
        tags=["knowledge"],
        response_model=model,
        name=str(kind),
    )
