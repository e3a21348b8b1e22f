"""Pages of lists for the API: keyset cursors, a byte budget per page, CSV.

Every list route of the API (:mod:`kernal.web.api`, :mod:`kernal.web.items`) answers one page:

* The body is a JSON array (its shape did not change when pages came) or, with
  ``?format=csv``, CSV with a header row.
* A page holds at most ``limit`` entries and stops before its entries pass the byte budget
  (:attr:`Budget.page_bytes`; the first entry is always given, so a page is never empty while
  entries are left). Where it stopped, the response has ``Link: <...>; rel="next"`` (RFC 8288)
  and ``X-Next-Cursor``: the same URL with ``cursor=`` set gives the next page. No link: that
  was the last page.
* A cursor is the position of the last entry given (newest-first order), so entries shared
  meanwhile never shift a page: nothing is skipped or given twice.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from fastapi import HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

R = TypeVar("R")

DEFAULT_PAGE_BYTES = 1024 * 1024
DEFAULT_LIST_DATA_BYTES = 16 * 1024
DEFAULT_ENTRIES_PER_SECOND = 1000.0

Format = Annotated[
    Literal["json", "csv"],
    Query(description="``csv``: the same page as CSV with a header row (nested values as JSON)."),
]
Cursor = Annotated[
    str | None,
    Query(
        max_length=2048,
        description="Where the previous page stopped: the ``cursor`` of its ``Link rel=next``.",
    ),
]
Since = Annotated[float | None, Query(ge=0, description="Unix seconds: this time or later.")]
Until = Annotated[float | None, Query(ge=0, description="Unix seconds: strictly before this.")]
Search = Annotated[
    str | None,
    Query(min_length=1, max_length=200, description="Text in the id or the JSON data."),
]


@dataclass(frozen=True)
class Budget:
    """Limits of list responses. ``page_bytes``: JSON of the entries of one page (the first
    entry always goes, so the largest page is one entry past it at worst);
    ``list_data_bytes``: an item whose data's JSON is longer is listed without it;
    ``entries_per_second`` (with ``entry_burst``): the entries one client address may ask for
    in item listings (a page counts its ``limit``), past which its requests wait their turn,
    so that one client hammering the API cannot take the hub's time from its trainers (0:
    no limit)."""

    page_bytes: int = DEFAULT_PAGE_BYTES
    list_data_bytes: int = DEFAULT_LIST_DATA_BYTES
    entries_per_second: float = DEFAULT_ENTRIES_PER_SECOND
    entry_burst: float = DEFAULT_ENTRIES_PER_SECOND


def encode_cursor(position: tuple[float, str] | None) -> str | None:
    """The opaque text of a ``(time, id)`` position (None for None)."""
    if position is None:
        return None
    text = json.dumps([position[0], position[1]], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[float, str] | None:
    """The position in ``cursor``; HTTP 422 if it is not one this API made."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, key = json.loads(raw)
        if isinstance(at, bool) or not isinstance(at, int | float) or not isinstance(key, str):
            raise ValueError(cursor)
        if not math.isfinite(at):
            raise ValueError(cursor)
    except (ValueError, TypeError):
        raise HTTPException(
            422,
            "cursor: not a cursor this API gave; follow the Link rel=next of a page, "
            "or leave cursor out to start from the newest",
        ) from None
    return float(at), key


#: Records read from the store at a time while a page fills: memory stays near
#: ``CHUNK * list_data_bytes`` however large ``limit`` is.
CHUNK = 64

Position = tuple[float, str]


@dataclass(frozen=True)
class Page:
    """The entries of one page, each as the JSON it is sent as, and where the next starts."""

    parts: list[bytes]
    given: list[BaseModel]
    following: Position | None  # None: this was the last page


async def build_page(
    fetch: Callable[[Position | None, int], Awaitable[Sequence[R]]],
    start: Position | None,
    limit: int,
    budget: int,
    model_of: Callable[[R], BaseModel],
    position_of: Callable[[R], Position],
) -> Page:
    """Fill one page from ``fetch(after, n)`` (up to ``n`` records after position ``after``,
    newest first), :data:`CHUNK` records at a time, until ``limit`` entries, the byte
    ``budget`` (the first entry always goes), or the end. One record past the page is read to
    know whether another page follows."""
    parts: list[bytes] = []
    given: list[BaseModel] = []
    total = 0
    after = start
    last: R | None = None
    while True:
        want = min(CHUNK, limit + 1 - len(given))
        batch = await fetch(after, want)
        for record in batch:
            if len(given) >= limit:
                assert last is not None
                return Page(parts, given, position_of(last))
            model = model_of(record)
            encoded = model.__pydantic_serializer__.to_json(model)
            if given and total + len(encoded) + 1 > budget:
                assert last is not None
                return Page(parts, given, position_of(last))
            parts.append(encoded)
            given.append(model)
            total += len(encoded) + 1
            last = record
        if len(batch) < want:
            return Page(parts, given, None)
        after = position_of(batch[-1])


def next_link(request: Request, cursor: str) -> str:
    """``<url>; rel="next"`` for the page after ``cursor``, with the request's other
    parameters kept (a relative URL: right behind any proxy)."""
    url = request.url.include_query_params(cursor=cursor)
    path = url.path + ("?" + url.query if url.query else "")
    return f'<{path}>; rel="next"'


def respond(
    request: Request,
    parts: Sequence[bytes],
    given: Sequence[BaseModel],
    cursor: str | None,
    fmt: str,
    model: type[BaseModel],
) -> Response:
    """The page as JSON (the entries' bytes joined, encoded once) or CSV, with the Link and
    X-Next-Cursor headers when ``cursor`` says more follow. CSV columns: ``model``'s fields."""
    headers = {"Cache-Control": "no-store"}
    if cursor is not None:
        headers["Link"] = next_link(request, cursor)
        headers["X-Next-Cursor"] = cursor
    if fmt == "csv":
        rows = [model.model_dump(mode="json") for model in given]
        return Response(
            to_csv(rows, list(model.model_fields)),
            media_type="text/csv; charset=utf-8",
            headers=headers,
        )
    return Response(b"[" + b",".join(parts) + b"]", media_type="application/json", headers=headers)


# A cell a spreadsheet would run as a formula (client-chosen ids can be "=HYPERLINK(...)"):
# prefixed with ' as OWASP recommends, so opening an export never runs what a client sent.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return "'" + value if value.startswith(_FORMULA_START) else value
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as CSV (RFC 4180, CRLF) under a header of ``columns``; nested values as JSON."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return out.getvalue()
