"""Pages of the API's lists: the byte budget, cursors, filters, CSV, single items, private
components, reputation. The app runs in-process over a real hub and its real SQLite store; the
items are written through the store (what the API reads) or shared by real clients."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from kernal.hub.server import Hub
from kernal.storage import ComponentRecord, PatternRecord
from kernal.web.app import create_app
from kernal.web.listing import CHUNK, encode_cursor
from tests.conftest import HubFactory
from tests.helpers import login

T0 = 1_700_000_000.0


def client_of(hub: Hub) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(hub)), base_url="http://localhost"
    )


@pytest.fixture
async def api(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(hub) as client:
        yield client


async def add_patterns(hub: Hub, count: int, size: int = 10, contributor: str = "alice") -> None:
    """``p000``... shared one second apart; written together (one transaction)."""
    await asyncio.gather(
        *(
            hub.store.add_pattern(
                PatternRecord(f"p{n:03d}", {"blob": "x" * size, "n": n}, contributor, T0 + n)
            )
            for n in range(count)
        )
    )


async def every_page(api: httpx.AsyncClient, url: str) -> list[list[dict[str, Any]]]:
    """Follow Link rel=next from ``url`` to the end; the pages' bodies."""
    pages = []
    next_url: str | None = url
    while next_url is not None:
        response = await api.get(next_url)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        link = response.headers.get("link")
        next_url = None
        if link is not None:
            match = re.fullmatch(r'<([^>]+)>; rel="next"', link)
            assert match, link
            next_url = match.group(1)
            assert response.headers["x-next-cursor"] in next_url
        assert len(pages) < 100, "pages never end"
    return pages


async def test_a_page_stops_before_its_byte_budget(make_hub: HubFactory) -> None:
    # 40 patterns of 20 KB data each: 800 KB; a 100 KB page budget, items up to 64 KB listed.
    hub = await make_hub(web_page_bytes=100_000, web_list_data_bytes=64 * 1024)
    await add_patterns(hub, 40, size=20_000)
    async with client_of(hub) as api:
        first = await api.get("/api/patterns", params={"limit": 500})
        assert first.status_code == 200
        assert len(first.content) <= 100_000 + 2  # the brackets
        assert 1 < len(first.json()) < 40
        assert "link" in first.headers
        pages = await every_page(api, "/api/patterns?limit=500")
    ids = [item["pattern_id"] for page in pages for item in page]
    assert ids == [f"p{n:03d}" for n in reversed(range(40))]  # all, newest first, once each
    assert all(item["pattern_data"]["blob"] == "x" * 20_000 for page in pages for item in page)


async def test_large_data_is_left_out_of_lists_with_a_link_to_the_item(
    make_hub: HubFactory,
) -> None:
    hub = await make_hub(web_list_data_bytes=1000)
    await hub.store.add_pattern(PatternRecord("small", {"a": 1}, "alice", T0))
    await hub.store.add_pattern(PatternRecord("big/one", {"blob": "y" * 5000}, "alice", T0 + 1))
    async with client_of(hub) as api:
        big, small = (await api.get("/api/patterns")).json()
        assert (big["pattern_id"], big["pattern_data"], big["data_omitted"]) == (
            "big/one",
            None,
            True,
        )
        assert big["data_size"] > 5000
        assert big["url"] == "/api/patterns/big%2Fone"
        whole = (await api.get(big["url"])).json()
        assert whole["pattern_data"] == {"blob": "y" * 5000}
        assert (whole["data_omitted"], whole["data_size"]) == (False, big["data_size"])
        assert (small["pattern_data"], small["data_omitted"]) == ({"a": 1}, False)
        await hub.store.add_pattern(PatternRecord("accents", {"é": "ü" * 10}, "alice", T0 + 2))
        [accents] = (await api.get("/api/patterns", params={"q": "accents"})).json()
        assert accents["data_size"] == len('{"é":"üüüüüüüüüü"}'.encode())  # bytes, not characters


async def test_one_huge_item_still_pages_in_bounded_memory(make_hub: HubFactory) -> None:
    # The measured problem: a listing of big components returned hundreds of MB. Here 30
    # components of 200 KB: the whole listing is small, since their data is never read.
    hub = await make_hub(web_list_data_bytes=16 * 1024)
    for n in range(30):
        record = ComponentRecord(f"c{n}", {"weights": "w" * 200_000}, "alice", T0 + n)
        await hub.store.add_component(record)
    async with client_of(hub) as api:
        response = await api.get("/api/components", params={"limit": 500})
    assert len(response.json()) == 30
    assert len(response.content) < 30 * 1000
    assert all(item["data_omitted"] for item in response.json())


async def test_limit_pages_follow_on_without_gaps_or_repeats(
    hub: Hub, api: httpx.AsyncClient
) -> None:
    await add_patterns(hub, 7)
    # Two patterns at the same instant: the id breaks the tie, and the cursor keeps it.
    await hub.store.add_pattern(PatternRecord("tie-a", {}, "alice", T0 + 3))
    pages = await every_page(api, "/api/patterns?limit=3")
    ids = [item["pattern_id"] for page in pages for item in page]
    assert [len(page) for page in pages] == [3, 3, 2]
    assert ids == ["p006", "p005", "p004", "tie-a", "p003", "p002", "p001", "p000"]


async def test_a_page_longer_than_a_store_read_is_whole(hub: Hub, api: httpx.AsyncClient) -> None:
    # More entries than the store is asked for at a time (CHUNK): the page fills across reads.
    count = 2 * CHUNK + 20
    await add_patterns(hub, count)
    pages = await every_page(api, f"/api/patterns?limit={CHUNK + 5}")
    assert [len(page) for page in pages] == [CHUNK + 5, CHUNK + 5, count - 2 * (CHUNK + 5)]
    ids = [item["pattern_id"] for page in pages for item in page]
    assert ids == [f"p{n:03d}" for n in reversed(range(count))]


async def test_filters_combine(hub: Hub, api: httpx.AsyncClient) -> None:
    await add_patterns(hub, 6, contributor="alice")
    await hub.store.add_pattern(PatternRecord("bob-1", {"topic": "Routing tables"}, "bob", T0 + 2))

    async def ids(**params: Any) -> list[str]:
        response = await api.get("/api/patterns", params=params)
        assert response.status_code == 200, response.text
        return [item["pattern_id"] for item in response.json()]

    assert await ids(contributor="bob") == ["bob-1"]
    assert await ids(since=T0 + 4) == ["p005", "p004"]
    assert await ids(since=T0 + 1, until=T0 + 3) == ["p002", "bob-1", "p001"]
    assert await ids(q="routing") == ["bob-1"]  # in the data, case-insensitive
    assert await ids(q="p00", contributor="alice", until=T0 + 2) == ["p001", "p000"]
    assert await ids(q="100%_") == []  # LIKE wildcards are literal
    assert await ids(contributor="carol") == []


async def test_a_cursor_not_from_the_api_is_a_422(api: httpx.AsyncClient) -> None:
    for cursor in ("garbage", encode_cursor((1.0, "x"))[:-3] + "!!!", "W10"):
        response = await api.get("/api/patterns", params={"cursor": cursor})
        assert response.status_code == 422, (cursor, response.text)
        assert "cursor" in response.json()["error"]


async def test_csv_of_items_collaborations_history_and_reputation(
    hub: Hub, api: httpx.AsyncClient
) -> None:
    await hub.store.add_pattern(PatternRecord("=HYPERLINK(1)", {"a": [1, 2]}, "alice", T0))
    response = await api.get("/api/patterns", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    [row] = list(csv.DictReader(io.StringIO(response.text)))
    assert row["pattern_id"] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    assert row["pattern_data"] == '{"a":[1,2]}'
    assert (row["contributor"], float(row["timestamp"]), row["data_omitted"]) == (
        "alice",
        T0,
        "false",
    )
    for path in ("/api/collaborations", "/api/stats/history", "/api/reputation", "/api/ais"):
        response = await api.get(path, params={"format": "csv"})
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/csv"), path
    assert response.text.splitlines()[0] == (
        "ai_id,specialization,capabilities,first_seen,last_seen,online"
    )
    standings = await api.get("/api/reputation", params={"format": "csv"})
    assert standings.text.splitlines()[0] == "ai_id,reputation,partners,online"


async def test_csv_pages_like_json(hub: Hub, api: httpx.AsyncClient) -> None:
    await add_patterns(hub, 5)
    response = await api.get("/api/patterns", params={"format": "csv", "limit": 2})
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["pattern_id"] for row in rows] == ["p004", "p003"]
    assert "format=csv" in response.headers["link"]


async def test_private_components_are_404_and_in_no_list(hub: Hub, api: httpx.AsyncClient) -> None:
    one = await login(hub, "AI_Node_1")
    two = await login(hub, "AI_Node_2", "graphics")
    try:
        for component_id, to in (("secret/c", "AI_Node_2"), ("public-c", None)):
            share: dict[str, Any] = {
                "type": "OS_COMPONENT_SHARE",
                "component_id": component_id,
                "component_data": {"code": component_id},
            }
            if to is not None:
                share["to"] = to
            await one.send(share)
            assert (await one.recv_type("ACK"))["id"] == component_id
        listed = (await api.get("/api/components")).json()
        assert [c["component_id"] for c in listed] == ["public-c"]
        private = await api.get(f"/api/components/{quote('secret/c', safe='')}")
        unknown = await api.get("/api/components/never-shared")
        assert (private.status_code, unknown.status_code) == (404, 404)
        # Same answer as for an id never used: nothing says it exists.
        assert private.json()["error"].replace("secret/c", "X") == unknown.json()["error"].replace(
            "never-shared", "X"
        )
        assert (await api.get("/api/components/public-c")).status_code == 200
        search = (await api.get("/api/components", params={"q": "secret"})).json()
        assert search == []
    finally:
        await one.close()
        await two.close()


async def test_one_ai_and_reputation(hub: Hub, api: httpx.AsyncClient) -> None:
    one = await login(hub, "AI_Node_1")
    two = await login(hub, "AI_Node_2", "graphics")
    try:
        await one.send({"type": "PATTERN_SHARE", "pattern_id": "p1", "pattern_data": {"a": 1}})
        await one.recv_type("ACK")
        await two.send({"type": "FEEDBACK", "kind": "pattern", "id": "p1", "score": 1.0})
        await two.recv_type("ACK")
        ai = (await api.get("/api/ais/AI_Node_1")).json()
        assert (ai["ai_id"], ai["online"], ai["partners"]) == ("AI_Node_1", True, 0)
        # The hub's standing, as relayed: a stranger's vote does not count (docs/protocol.md).
        assert ai["reputation"] == hub.standings.of("AI_Node_1") == 0.5
        standings = (await api.get("/api/reputation")).json()
        assert [s["ai_id"] for s in standings] == ["AI_Node_1", "AI_Node_2"]
        assert standings[1] == {
            "ai_id": "AI_Node_2",
            "reputation": 0.5,
            "partners": 0,
            "online": True,
        }
        missing = await api.get("/api/ais/AI_Nobody")
        assert missing.status_code == 404 and "AI_Nobody" in missing.json()["error"]
    finally:
        await one.close()
        await two.close()


async def test_collaborations_page_filter_and_one_by_id(hub: Hub, api: httpx.AsyncClient) -> None:
    from kernal.protocol.messages import RequestTerms
    from kernal.storage import CollaborationRecord, CollaborationStatus

    for n, (requester, acceptor) in enumerate([("a", "b"), ("b", "c"), ("c", "a"), ("d", "e")]):
        await hub.store.create_collaboration(
            CollaborationRecord(
                collaboration_id=f"col-{n}",
                request_id=f"req-{n}",
                requester=requester,
                acceptor=acceptor,
                request=RequestTerms(request_id=f"req-{n}"),
                status=CollaborationStatus.ACTIVE,
                progress=0.0,
                started_at=T0 + n,
            )
        )
    pages = await every_page(api, "/api/collaborations?limit=3")
    assert [[c["collaboration_id"] for c in page] for page in pages] == [
        ["col-3", "col-2", "col-1"],
        ["col-0"],
    ]
    member = (await api.get("/api/collaborations", params={"member": "a"})).json()
    assert [c["collaboration_id"] for c in member] == ["col-2", "col-0"]
    found = (await api.get("/api/collaborations", params={"q": "req-1"})).json()
    assert [c["collaboration_id"] for c in found] == ["col-1"]
    one = await api.get("/api/collaborations/col-1")
    assert one.status_code == 200 and one.json()["requester"] == "b"
    assert (await api.get("/api/collaborations/nope")).status_code == 404
