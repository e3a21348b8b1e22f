"""``GET /api/events`` (server-sent events) through a real uvicorn on a real port: streaming
needs a real server (httpx's ASGITransport reads a whole body before it returns)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from kernal.hub.server import Hub
from kernal.web.app import create_app
from kernal.web.live import LiveFeed
from kernal.web.server import WebServer, start_web
from tests.helpers import RawClient, login
from tests.web.test_api import share_pattern

Event = tuple[str, Any]
DOCS = (Path(__file__).resolve().parents[2] / "docs" / "dashboard.md").read_text("utf-8")


@pytest.fixture
async def web(hub: Hub) -> AsyncIterator[WebServer]:
    server = await start_web(create_app(hub), "127.0.0.1", 0)
    yield server
    await server.stop()


def feed_of(server: WebServer) -> LiveFeed:
    feed = server.app.state.live_feed
    assert isinstance(feed, LiveFeed)
    return feed


class Stream:
    """One open event stream, read event by event (comments are returned as ``(":", text)``)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self) -> Event:
        event, data = "message", []
        async for line in self._lines:
            if line == "":
                if data:
                    return event, json.loads("\n".join(data))
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "":
                return ":", value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
            elif field == "retry":
                return "retry", int(value)
        raise EOFError("the stream ended")

    async def next_of(self, kind: str) -> Any:
        while True:
            event, data = await self.next()
            if event == kind:
                return data


@pytest.fixture
async def http(web: WebServer) -> AsyncIterator[httpx.AsyncClient]:
    host, port = web.address
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as client:
        yield client


async def test_stream_pushes_figures_as_they_change(
    hub: Hub, web: WebServer, http: httpx.AsyncClient
) -> None:
    feed_of(web).tick = 0.05  # the hub's status is read this often (1 s by default)
    clients: list[RawClient] = []
    try:
        async with http.stream("GET", "/api/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-store"
            stream = Stream(response)
            assert await stream.next() == ("retry", 3000)
            event, run = await stream.next()
            assert event == "run" and run["started_at"] == hub.started_at
            assert run["stats_interval"] == hub.clock.real(hub.settings.stats_interval)
            first = await stream.next_of("status")
            assert (first["connected_ais"], first["shared_patterns"]) == (0, 0)
            assert first["demo_tokens"] is True and first["server_time"] >= hub.started_at

            clients.append(await login(hub, "AI_Node_1"))
            assert (await stream.next_of("status"))["connected_ais"] == 1
            await share_pattern(clients[0], "p1", {"w": 1})
            status = await stream.next_of("status")
            while status["shared_patterns"] == 0:  # the login's frame may come on its own
                status = await stream.next_of("status")
            assert (status["connected_ais"], status["shared_patterns"]) == (1, 1)
            assert feed_of(web).streams == 1
    finally:
        for client in clients:
            await client.close()


async def test_streams_are_bounded_per_client(web: WebServer, http: httpx.AsyncClient) -> None:
    feed = feed_of(web)
    feed.max_per_client = 2
    async with http.stream("GET", "/api/events") as one, http.stream("GET", "/api/events") as two:
        # Both readers stay referenced: a collected Stream closes its response's line iterator,
        # which closes the connection, and the hub would then count one stream only.
        streams = [Stream(one), Stream(two)]
        for stream in streams:
            assert (await stream.next_of("status"))["connected_ais"] == 0
        refused = await http.get("/api/events")
        assert refused.status_code == 503
        assert "2 live streams are open from 127.0.0.1" in refused.json()["error"]
        assert refused.headers["retry-after"] == "30"
        assert feed.streams == 2
    feed.max_per_client = 8
    feed.max_streams = 0
    refused = await http.get("/api/events")
    assert refused.status_code == 503 and "polls /status" in refused.json()["error"]


async def test_stream_ends_at_its_age_limit(web: WebServer, http: httpx.AsyncClient) -> None:
    feed_of(web).max_age = 0.0
    async with http.stream("GET", "/api/events") as response:
        stream = Stream(response)
        assert (await stream.next_of("closing"))["reason"] == "stream age limit; reconnect"
        with pytest.raises(EOFError):
            await stream.next()


async def test_keepalive_when_nothing_changes(web: WebServer, http: httpx.AsyncClient) -> None:
    feed_of(web).keepalive = 0.05
    async with http.stream("GET", "/api/events") as response:
        stream = Stream(response)
        await stream.next_of("status")
        assert await stream.next() == (":", "keepalive")


async def test_stopping_the_web_server_ends_open_streams(hub: Hub) -> None:
    server = await start_web(create_app(hub), "127.0.0.1", 0)
    host, port = server.address
    stopped = False
    try:
        http = httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10)
        async with http, http.stream("GET", "/api/events") as response:
            stream = Stream(response)
            await stream.next_of("status")
            await server.stop()
            stopped = True
            # Without the shutdown hook, uvicorn would wait for this response, and stop()
            # would cancel it after its timeout: no closing event would arrive.
            assert (await stream.next_of("closing"))["reason"] == "the hub is stopping"
            with pytest.raises(EOFError):
                await stream.next()
        assert feed_of(server).streams == 0
    finally:
        if not stopped:
            await server.stop()


async def test_docs_show_the_frames_the_stream_sends(
    web: WebServer, http: httpx.AsyncClient
) -> None:
    example = DOCS.split("```text\n", 1)[1].split("```", 1)[0]
    documented = {
        line.removeprefix("event: "): json.loads(data.removeprefix("data: "))
        for line, data in zip(example.splitlines(), example.splitlines()[1:], strict=False)
        if line.startswith("event: ")
    }
    assert list(documented) == ["run", "status", "closing"]
    async with http.stream("GET", "/api/events") as response:
        stream = Stream(response)
        assert await stream.next() == ("retry", 3000)
        assert set(await stream.next_of("run")) == set(documented["run"])
        assert set(await stream.next_of("status")) == set(documented["status"])
    feed_of(web).max_age = 0.0
    async with http.stream("GET", "/api/events") as response:
        assert set(await Stream(response).next_of("closing")) == set(documented["closing"])
