"""``GET /api/ratings/{kind}/{id}`` against a real hub: FEEDBACK sent over TCP, read back as
who rated an item, one current vote per rater."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from kernal.hub.server import Hub
from kernal.web.app import create_app
from tests.helpers import RawClient, login


@pytest.fixture
async def api(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


async def ok(client: RawClient, frame: dict[str, Any]) -> None:
    await client.send({"msg_id": "m", **frame})
    while (reply := await client.recv())["type"] not in ("ACK", "ERROR"):
        pass  # relays of the others' shares
    assert reply["type"] == "ACK", reply


async def test_ratings_list_each_raters_current_vote(api: httpx.AsyncClient, hub: Hub) -> None:
    alice = await login(hub, "AI_Node_1")
    bob = await login(hub, "AI_Node_2")
    carol = await login(hub, "AI_Node_3")
    try:
        await ok(alice, {"type": "PATTERN_SHARE", "pattern_id": "p/1", "pattern_data": {"w": 1}})
        await ok(
            alice,
            {
                "type": "OS_COMPONENT_SHARE",
                "component_id": "private",
                "component_data": {"w": 2},
                "to": "AI_Node_2",
            },
        )
        feedback = {"type": "FEEDBACK", "kind": "pattern", "id": "p/1"}
        await ok(bob, {**feedback, "score": 0.25})
        await ok(carol, {**feedback, "usefulness": 0.9})
        await ok(bob, {**feedback, "score": 0.75})  # replaces bob's first vote
        await ok(carol, feedback)  # a use that rates nothing keeps carol's vote
        await ok(bob, {"type": "FEEDBACK", "kind": "component", "id": "private", "score": 1.0})
    finally:
        for client in (alice, bob, carol):
            await client.close()

    response = await api.get("/api/ratings/pattern/p%2F1")
    assert response.status_code == 200, response.text
    got = response.json()
    assert [(r["rater"], r["score"], r["usefulness"]) for r in got] == [
        ("AI_Node_3", None, 0.9),  # its latest FEEDBACK (a use) came last
        ("AI_Node_2", 0.75, None),
    ]
    assert got[0]["timestamp"] >= got[1]["timestamp"]
    assert len((await api.get("/api/ratings/pattern/p%2F1", params={"limit": 1})).json()) == 1

    csv = await api.get("/api/ratings/pattern/p%2F1", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0] == "rater,score,usefulness,timestamp"
    assert len(csv.text.splitlines()) == 3

    # A component shared with one AI is nobody else's business, like its own URL.
    assert (await api.get("/api/components/private")).status_code == 404
    assert (await api.get("/api/ratings/component/private")).status_code == 404
    assert (await api.get("/api/ratings/pattern/unknown")).status_code == 404
    assert (await api.get("/api/ratings/model/p%2F1")).status_code == 422
    assert (await api.get("/api/ratings/pattern/p%2F1", params={"limit": 0})).status_code == 422
