"""The HTTP API and the dashboard page, against a real hub with real clients over TCP and a real
SQLite store. Most tests call the ASGI app in-process; one goes through the hub's real port."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from kernal.hub.server import Hub
from kernal.storage import StatsSnapshot
from kernal.web.app import create_app
from tests.conftest import HubFactory, ServiceFactory
from tests.helpers import RawClient, login

STATIC = Path(__file__).resolve().parents[2] / "src" / "kernal" / "web" / "static"
FIGURES = ("connected_ais", "shared_patterns", "shared_components", "active_collaborations")
LABELS = ("Connected AIs", "Shared Patterns", "Shared Components", "Active Collaborations")

Login = Callable[..., Awaitable[RawClient]]


@pytest.fixture
async def api(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    """The app of ``hub``, called in-process (no port)."""
    transport = httpx.ASGITransport(app=create_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        yield client


@pytest.fixture
async def connect(hub: Hub) -> AsyncIterator[Login]:
    """``await connect("AI_Node_1", "networking")``: a logged-in client, closed at teardown."""
    clients: list[RawClient] = []

    async def factory(ai_id: str, specialization: str = "networking") -> RawClient:
        client = await login(hub, ai_id, specialization)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll ``check`` until it is true; for effects the hub applies after a socket closes."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def figures(api: httpx.AsyncClient) -> tuple[int, ...]:
    response = await api.get("/status")
    assert response.status_code == 200
    body = response.json()
    assert all(type(body[key]) is int for key in FIGURES), body
    return tuple(body[key] for key in FIGURES)


async def share_pattern(client: RawClient, pattern_id: str, data: dict[str, Any]) -> None:
    await client.send({"type": "PATTERN_SHARE", "pattern_id": pattern_id, "pattern_data": data})
    assert (await client.recv_type("ACK"))["id"] == pattern_id


async def share_component(
    client: RawClient, component_id: str, data: dict[str, Any], quality: float | None = None
) -> None:
    await client.send(
        {
            "type": "OS_COMPONENT_SHARE",
            "component_id": component_id,
            "component_data": data,
            "quality_score": quality,
        }
    )
    assert (await client.recv_type("ACK"))["id"] == component_id


async def collaborate(requester: RawClient, acceptor: RawClient, request_id: str) -> str:
    """Open a collaboration between the two (AI ids from their logins); returns its id."""
    await requester.send(
        {
            "type": "COLLABORATION_REQUEST",
            "request_id": request_id,
            "expertise_offered": ["routing"],
            "seeking_expertise": ["rendering"],
        }
    )
    await requester.recv_type("ACK")
    request = await acceptor.recv_type("COLLABORATION_REQUEST")
    while request["request_id"] != request_id:  # an earlier request broadcast to everyone
        request = await acceptor.recv_type("COLLABORATION_REQUEST")
    await acceptor.send(
        {"type": "COLLABORATION_ACCEPT", "request_id": request_id, "to": request["from"]}
    )
    ack = await acceptor.recv_type("ACK")
    collaboration_id: str = ack["collaboration_id"]
    return collaboration_id


# ---------------------------------------------------------------------- /status, /healthz


async def test_status_figures_follow_the_hub(api: httpx.AsyncClient, connect: Login) -> None:
    response = await api.get("/status")
    body = response.json()
    assert response.headers["cache-control"] == "no-store"
    assert isinstance(body["uptime"], float) and body["uptime"] >= 0
    assert body["demo_tokens"] is True
    assert await figures(api) == (0, 0, 0, 0)

    one = await connect("AI_Node_1")
    two = await connect("AI_Node_2", "graphics")
    assert await figures(api) == (2, 0, 0, 0)
    await share_pattern(one, "p1", {"w": [1]})
    await share_component(two, "c1", {"code": "x"}, 0.8)
    assert await figures(api) == (2, 1, 1, 0)

    collaboration_id = await collaborate(one, two, "r1")
    assert await figures(api) == (2, 1, 1, 1)
    await one.send(
        {"type": "COLLABORATION_COMPLETE", "collaboration_id": collaboration_id, "result": {}}
    )
    await one.recv_type("ACK")
    assert await figures(api) == (2, 1, 1, 0)

    await two.close()
    await eventually(lambda: _figures_are(api, (1, 1, 1, 0)))


async def _figures_are(api: httpx.AsyncClient, expected: tuple[int, ...]) -> bool:
    return await figures(api) == expected


async def test_healthz(api: httpx.AsyncClient) -> None:
    response = await api.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"ok": True})


# ---------------------------------------------------------------------- /api/ais


async def test_ais_lists_connected_and_every_ai_seen(
    api: httpx.AsyncClient, connect: Login
) -> None:
    assert (await api.get("/api/ais")).json() == {"connected": [], "known": []}
    await connect("AI_Node_2", "graphics")
    leaving = await connect("AI_Node_1")
    body = (await api.get("/api/ais")).json()
    assert [ai["ai_id"] for ai in body["connected"]] == ["AI_Node_1", "AI_Node_2"]

    await leaving.close()
    await eventually(lambda: _connected_count(api, 1))
    body = (await api.get("/api/ais")).json()
    [online] = body["connected"]
    assert set(online) == {"ai_id", "specialization", "capabilities", "connected_at", "replica"}
    assert online["replica"] is None  # a cluster's replica names it; one hub has none
    assert (online["ai_id"], online["specialization"], online["capabilities"]) == (
        "AI_Node_2",
        "graphics",
        ["x"],
    )
    assert online["connected_at"] > 1_700_000_000
    known = body["known"]
    assert [(ai["ai_id"], ai["online"]) for ai in known] == [
        ("AI_Node_1", False),
        ("AI_Node_2", True),
    ]
    for ai in known:
        assert set(ai) == {
            "ai_id",
            "specialization",
            "capabilities",
            "first_seen",
            "last_seen",
            "online",
        }
        assert 1_700_000_000 < ai["first_seen"] <= ai["last_seen"]


async def _connected_count(api: httpx.AsyncClient, count: int) -> bool:
    return len((await api.get("/api/ais")).json()["connected"]) == count


# ---------------------------------------------------------------------- patterns, components


async def test_patterns_newest_first_with_data(api: httpx.AsyncClient, connect: Login) -> None:
    one = await connect("AI_Node_1")
    for n in range(1, 4):
        await share_pattern(one, f"p{n}", {"n": n, "note": "héllo"})
    body = (await api.get("/api/patterns")).json()
    assert [p["pattern_id"] for p in body] == ["p3", "p2", "p1"]
    assert body[0]["pattern_data"] == {"n": 3, "note": "héllo"}
    assert (body[0]["contributor"], body[0]["usage_count"]) == ("AI_Node_1", 0)
    assert body[0]["timestamp"] >= body[1]["timestamp"] >= body[2]["timestamp"]
    limited = (await api.get("/api/patterns", params={"limit": 2})).json()
    assert [p["pattern_id"] for p in limited] == ["p3", "p2"]

    one_pattern = await api.get("/api/patterns/p2")
    assert one_pattern.status_code == 200
    assert one_pattern.json() == body[1]


async def test_item_ids_with_any_characters_round_trip(
    api: httpx.AsyncClient, connect: Login
) -> None:
    one = await connect("AI_Node_1")
    odd = "a/b c?d#e%f <g>"
    await share_pattern(one, odd, {})
    await share_component(one, odd, {})
    for kind in ("patterns", "components"):
        response = await api.get(f"/api/{kind}/{quote(odd, safe='')}")
        assert response.status_code == 200, response.text
        assert response.json()[f"{kind[:-1]}_id"] == odd


async def test_components_newest_first_with_quality(api: httpx.AsyncClient, connect: Login) -> None:
    one = await connect("AI_Node_1")
    await share_component(one, "c1", {"code": "a"}, 0.25)
    await share_component(one, "c2", {"code": "b"})
    body = (await api.get("/api/components", params={"limit": 500})).json()
    assert [(c["component_id"], c["quality_score"]) for c in body] == [("c2", None), ("c1", 0.25)]
    assert body[1]["component_data"] == {"code": "a"}
    assert set(body[0]) == {
        "component_id",
        "contributor",
        "timestamp",
        "quality_score",
        "usage_count",
        "component_data",
        # Since listings have a byte budget: how big the data is, whether it was left out, and
        # where the item is whole.
        "data_size",
        "data_omitted",
        "url",
    }
    assert (await api.get("/api/components/c1")).json() == body[1]


@pytest.mark.parametrize("kind", ["patterns", "components"])
async def test_unknown_item_is_a_json_404(api: httpx.AsyncClient, kind: str) -> None:
    response = await api.get(f"/api/{kind}/nope")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert "nope" in response.json()["error"]


# ---------------------------------------------------------------------- collaborations


async def test_collaborations_by_status_newest_first(
    api: httpx.AsyncClient, connect: Login
) -> None:
    one = await connect("AI_Node_1")
    two = await connect("AI_Node_2", "graphics")
    done = await collaborate(one, two, "r1")
    await two.send(
        {"type": "COLLABORATION_COMPLETE", "collaboration_id": done, "result": {"ok": 1}}
    )
    await two.recv_type("ACK")
    running = await collaborate(two, one, "r2")
    await one.send({"type": "COLLABORATION_PROGRESS", "collaboration_id": running, "progress": 40})
    await one.recv_type("ACK")

    everything = (await api.get("/api/collaborations")).json()
    assert [c["collaboration_id"] for c in everything] == [running, done]
    active = (await api.get("/api/collaborations", params={"status": "active"})).json()
    [record] = active
    assert record["collaboration_id"] == running
    assert (record["requester"], record["acceptor"]) == ("AI_Node_2", "AI_Node_1")
    assert record["members"] == ["AI_Node_2", "AI_Node_1"]
    assert (record["status"], record["progress"], record["ended_at"]) == ("active", 40.0, None)
    assert record["request"]["seeking_expertise"] == ["rendering"]
    [completed] = (await api.get("/api/collaborations", params={"status": "completed"})).json()
    assert (completed["collaboration_id"], completed["outcome"]) == (done, {"ok": 1})
    assert completed["ended_at"] >= completed["started_at"]
    assert (await api.get("/api/collaborations", params={"status": "failed"})).json() == []
    limited = (await api.get("/api/collaborations", params={"limit": 1})).json()
    assert [c["collaboration_id"] for c in limited] == [running]


# ---------------------------------------------------------------------- stats history


async def test_stats_history_oldest_first_since_and_limit(make_hub: HubFactory) -> None:
    # speed 1, one snapshot an hour: the hub's own loop stays out of the way of exact checks.
    hub = await make_hub(speed=1.0, stats_interval=3600.0)
    for n, timestamp in enumerate((1000.0, 2000.0, 3000.0)):
        await hub.store.add_stats_snapshot(StatsSnapshot(timestamp, n, 10 * n, n, 0))
    transport = httpx.ASGITransport(app=create_app(hub))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as api:
        body = (await api.get("/api/stats/history")).json()
        assert [point["timestamp"] for point in body] == [1000.0, 2000.0, 3000.0]
        assert body[1] == {
            "timestamp": 2000.0,
            "connected_ais": 1,
            "shared_patterns": 10,
            "shared_components": 1,
            "active_collaborations": 0,
        }
        since = (await api.get("/api/stats/history", params={"since": 2000})).json()
        assert [point["timestamp"] for point in since] == [2000.0, 3000.0]
        newest = (await api.get("/api/stats/history", params={"limit": 2})).json()
        assert [point["timestamp"] for point in newest] == [2000.0, 3000.0]


async def test_hub_records_snapshots_of_its_figures(api: httpx.AsyncClient, connect: Login) -> None:
    await connect("AI_Node_1")  # the test hub runs 50x: a snapshot every 0.1 s
    await eventually(lambda: _latest_snapshot_shows_connected(api, 1))


async def _latest_snapshot_shows_connected(api: httpx.AsyncClient, count: int) -> bool:
    history = (await api.get("/api/stats/history", params={"since": time.time() - 60})).json()
    return bool(history) and history[-1]["connected_ais"] == count


# ---------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/patterns?limit=0", "limit"),
        ("/api/patterns?limit=501", "limit"),
        ("/api/components?limit=ten", "limit"),
        ("/api/collaborations?status=paused", "status"),
        ("/api/collaborations?limit=-1", "limit"),
        ("/api/stats/history?since=-5", "since"),
        ("/api/stats/history?limit=0", "limit"),
    ],
)
async def test_bad_query_parameters_are_422_with_a_message(
    api: httpx.AsyncClient, path: str, name: str
) -> None:
    response = await api.get(path)
    assert response.status_code == 422
    body = response.json()
    assert body["error"].startswith(f"query.{name}: "), body
    assert body["detail"][0]["loc"] == ["query", name]


async def test_unknown_route_is_a_json_404(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/nothing")
    assert response.status_code == 404
    assert response.json()["error"] == "Not Found"


# ---------------------------------------------------------------------- page and assets


async def test_dashboard_page_is_self_contained(api: httpx.AsyncClient) -> None:
    response = await api.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    html = response.text
    for label in LABELS:
        assert label in html
    for figure in FIGURES:
        assert f'id="{figure}"' in html
    sources = re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=\"([^\"]*)\"", html)
    assert "/static/dashboard.js" in sources and "/static/dashboard.css" in sources
    assert not [s for s in sources if re.match(r"(https?:)?//", s)], sources
    assert "http://" not in html and "https://" not in html


async def test_static_assets_are_served_from_the_package(api: httpx.AsyncClient) -> None:
    for name, media_type in [("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")]:
        response = await api.get(f"/static/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media_type)
        assert response.text == (STATIC / name).read_text(encoding="utf-8")
    css = (await api.get("/static/dashboard.css")).text
    assert "@import" not in css and "url(http" not in css
    assert (await api.get("/static/missing.js")).status_code == 404


def test_script_never_parses_client_text_as_markup() -> None:
    scripts = sorted(STATIC.glob("*.js"))  # dashboard.js and the modules it imports
    assert STATIC / "dashboard.js" in scripts
    urls = []
    for path in scripts:
        script = path.read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in script, (path.name, sink)
        urls += re.findall(r"https?://[^\"'\s]+", script)
    # The only absolute URL is the SVG namespace, which is an identifier, not a request.
    assert urls == ["http://www.w3.org/2000/svg"]


# ---------------------------------------------------------------------- real port


async def test_status_over_the_hubs_real_dashboard_port(make_service: ServiceFactory) -> None:
    service = await make_service(dashboard_port=0)
    hub = service.hub
    assert service.dashboard_address is not None
    host, port = service.dashboard_address
    assert port != 0
    client = await login(hub, "AI_Node_3", "storage")
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
            response = await http.get("/status")
            assert response.status_code == 200
            body = response.json()
            assert {key: body[key] for key in FIGURES} == {
                "connected_ais": 1,
                "shared_patterns": 0,
                "shared_components": 0,
                "active_collaborations": 0,
            }
            page = await http.get("/")
            assert page.status_code == 200 and "Connected AIs" in page.text
    finally:
        await client.close()
