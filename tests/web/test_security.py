"""Who may talk to the web app: Host check, read token, admin token, refusing an open dashboard
beyond loopback, and uvicorn's limits on a live port (slow requests, header size)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from kernal.config import HubSettings
from kernal.hub.server import Hub, HubConfigError
from kernal.web.app import create_app
from kernal.web.security import ExposureError, Policy, check_exposure
from tests.conftest import ServiceFactory
from tests.helpers import RawClient

READ = "read-secret"
ADMIN = "admin-secret"


def client_of(hub: Hub, base_url: str = "http://localhost", **settings: Any) -> httpx.AsyncClient:
    """The app of ``hub`` in-process, as if its settings had ``settings`` too."""
    if settings:
        hub.settings = dataclasses.replace(hub.settings, **settings)
    transport = httpx.ASGITransport(app=create_app(hub))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


@pytest.fixture
async def guarded(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    """The app with a read and an admin token."""
    async with client_of(hub, read_token=READ, admin_token=ADMIN) as client:
        yield client


# ---------------------------------------------------------------------- Host


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:5001", "127.0.0.1:5001", "[::1]:5001", "192.0.2.7:5001", "LOCALHOST"],
)
async def test_loopback_names_and_ip_literals_are_served(hub: Hub, host: str) -> None:
    async with client_of(hub) as api:
        response = await api.get("/status", headers={"Host": host})
    assert response.status_code == 200, host


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:5001", "localhost.evil.example", ""]
)
async def test_other_host_names_are_refused(hub: Hub, host: str) -> None:
    # DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own name.
    async with client_of(hub) as api:
        for path in ("/status", "/api/patterns", "/", "/metrics"):
            response = await api.get(path, headers={"Host": host})
            assert response.status_code == 421, (host, path)
            assert "--allowed-host" in response.json()["error"]


async def test_allowed_hosts_and_wildcards(hub: Hub) -> None:
    async with client_of(hub, allowed_hosts=("hub.example.com", "*.lab.example")) as api:
        for host, status in [
            ("hub.example.com", 200),
            ("hub.example.com:443", 200),
            ("a.lab.example", 200),
            ("lab.example", 421),
            ("evil.example", 421),
        ]:
            assert (await api.get("/status", headers={"Host": host})).status_code == status, host


def test_bind_host_and_star_are_accepted() -> None:
    named = Policy.from_settings(HubSettings(dashboard_host="hub.internal"))
    assert named.host_allowed("hub.internal:5001") and not named.host_allowed("evil.example")
    anything = Policy.from_settings(HubSettings(allowed_hosts=("*",)))
    assert anything.host_allowed("evil.example")


# ---------------------------------------------------------------------- read token


async def test_read_token_is_required_when_set(guarded: httpx.AsyncClient) -> None:
    for path in ("/status", "/api/patterns", "/api/ais", "/", "/metrics", "/openapi.json"):
        response = await guarded.get(path)
        assert response.status_code == 401, path
        assert "read token" in response.json()["error"]
        assert response.headers["www-authenticate"].startswith("Bearer")
        wrong = await guarded.get(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401, path
        right = await guarded.get(path, headers={"Authorization": f"Bearer {READ}"})
        assert right.status_code == 200, path
    assert (await guarded.get("/healthz")).status_code == 200  # liveness needs no token


async def test_the_page_takes_the_token_once_and_keeps_it_in_a_cookie(
    guarded: httpx.AsyncClient,
) -> None:
    page = await guarded.get("/", params={"token": READ})
    assert page.status_code == 200
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # The page's own requests then carry the cookie (httpx keeps it, as a browser does).
    assert (await guarded.get("/api/patterns")).status_code == 200
    guarded.cookies.clear()
    assert (await guarded.get("/api/patterns")).status_code == 401


async def test_admin_token_also_reads(guarded: httpx.AsyncClient) -> None:
    response = await guarded.get("/status", headers={"Authorization": f"Bearer {ADMIN}"})
    assert response.status_code == 200


def test_dashboard_beyond_loopback_needs_a_read_token() -> None:
    public = HubSettings(dashboard_host="0.0.0.0")
    with pytest.raises(ExposureError, match="--read-token"):
        check_exposure(public)
    check_exposure(dataclasses.replace(public, read_token=READ))
    check_exposure(dataclasses.replace(public, public_dashboard=True))  # warned, allowed
    check_exposure(HubSettings())  # loopback
    check_exposure(HubSettings(host="0.0.0.0", dashboard_host="127.0.0.1"))
    check_exposure(HubSettings(host="0.0.0.0", dashboard_port=None))  # no dashboard


def test_tokens_must_fit_in_a_header() -> None:
    for bad in ("has space", "naïve", "tab\there"):
        with pytest.raises(ExposureError, match="printable ASCII"):
            check_exposure(HubSettings(read_token=bad))
        with pytest.raises(ExposureError, match="--admin-token"):
            check_exposure(HubSettings(admin_token=bad))
    check_exposure(HubSettings(read_token="Ab-_.~9", admin_token="x" * 64))


async def test_hub_refuses_to_serve_an_open_dashboard_beyond_loopback(
    make_service: ServiceFactory,
) -> None:
    # Trainers on loopback, the dashboard on every interface: refused before it binds.
    with pytest.raises(HubConfigError, match="read token"):
        await make_service(dashboard_host="0.0.0.0", dashboard_port=0)


async def test_read_token_on_a_live_dashboard(make_service: ServiceFactory) -> None:
    service = await make_service(dashboard_port=0, read_token=READ)
    assert service.dashboard_address is not None
    host, port = service.dashboard_address
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
        assert (await http.get("/status")).status_code == 401
        ok = await http.get("/status", headers={"Authorization": f"Bearer {READ}"})
        assert ok.status_code == 200 and "connected_ais" in ok.json()
        refused = await http.get(
            "/status", headers={"Authorization": f"Bearer {READ}", "Host": "evil.example"}
        )
        assert refused.status_code == 421


# ---------------------------------------------------------------------- admin token


async def test_writes_need_the_admin_token(guarded: httpx.AsyncClient) -> None:
    as_reader = {"Authorization": f"Bearer {READ}"}
    as_admin = {"Authorization": f"Bearer {ADMIN}"}
    assert (await guarded.post("/api/tokens/AI_New", headers=as_reader)).status_code == 401
    # The read token's cookie is no write credential either: a cross-site form sends cookies.
    guarded.cookies.set("kernal_token", ADMIN)
    assert (await guarded.post("/api/tokens/AI_New")).status_code == 401
    guarded.cookies.clear()
    # Reading who has a token is administration too.
    assert (await guarded.get("/api/tokens", headers=as_reader)).status_code == 401

    created = await guarded.post("/api/tokens/AI_New", headers=as_admin)
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    assert len(token) >= 32
    listed = (await guarded.get("/api/tokens", headers=as_admin)).json()
    assert [entry["ai_id"] for entry in listed] == ["AI_New"]
    revoked = await guarded.delete("/api/tokens/AI_New", headers=as_admin)
    assert revoked.json() == {"ai_id": "AI_New", "revoked": True}
    again = await guarded.delete("/api/tokens/AI_New", headers=as_admin)
    assert again.status_code == 404
    bad = await guarded.post("/api/tokens/not%20valid", headers=as_admin)
    assert bad.status_code == 422 and "invalid AI id" in bad.json()["error"]


async def test_a_token_made_over_http_logs_in(hub: Hub) -> None:
    async with client_of(hub, admin_token=ADMIN) as api:
        created = await api.post(
            "/api/tokens/AI_Http", headers={"Authorization": f"Bearer {ADMIN}"}
        )
    token = created.json()["token"]
    client = await RawClient.connect(hub)
    try:
        await client.send({"ai_id": "AI_Http", "token": token})
        assert (await client.recv())["type"] == "AUTH_OK"
    finally:
        await client.close()


async def test_without_an_admin_token_nothing_writes(hub: Hub) -> None:
    async with client_of(hub) as api:
        response = await api.post("/api/tokens/AI_New", headers={"Authorization": "Bearer x"})
        assert response.status_code == 403
        assert "--admin-token" in response.json()["error"]
        assert (await api.get("/api/tokens")).status_code == 403
    assert await hub.store.count_tokens() == 0


# ---------------------------------------------------------------------- uvicorn limits, live


async def open_raw(make_hub_service: ServiceFactory, **settings: Any) -> tuple[str, int]:
    service = await make_hub_service(dashboard_port=0, **settings)
    assert service.dashboard_address is not None
    return service.dashboard_address


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes (within 5 s, or the test fails)."""
    return await asyncio.wait_for(reader.read(), 5.0)


async def test_a_request_trickling_in_is_closed(make_service: ServiceFactory) -> None:
    host, port = await open_raw(make_service, web_request_timeout=0.3)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(b"GET /status HTTP/1.1\r\nHost: localhost\r\n")  # never ends its headers
        await writer.drain()
        for _ in range(3):  # a byte now and then must not keep it open
            await asyncio.sleep(0.1)
            writer.write(b"X")
            await writer.drain()
        assert await closed_by_server(reader) == b""
    finally:
        writer.close()


async def test_a_silent_connection_is_closed(make_service: ServiceFactory) -> None:
    host, port = await open_raw(make_service, web_request_timeout=0.3)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        assert await closed_by_server(reader) == b""
    finally:
        writer.close()


async def test_a_complete_request_is_answered_and_kept_alive(make_service: ServiceFactory) -> None:
    host, port = await open_raw(make_service, web_request_timeout=0.3)
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
        for _ in range(2):  # the same connection, two requests
            assert (await http.get("/healthz")).status_code == 200


async def test_oversized_headers_are_refused(make_service: ServiceFactory) -> None:
    host, port = await open_raw(make_service, web_max_header_bytes=4096)
    reader, writer = await asyncio.open_connection(host, port)
    try:
        # Headers still unfinished past the limit (h11 holds at most that much of a request
        # head it has not seen the end of).
        writer.write(b"GET /status HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * 8192)
        await writer.drain()
        answer = await closed_by_server(reader)
        assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    finally:
        writer.close()


async def test_past_max_connections_requests_get_503(make_service: ServiceFactory) -> None:
    host, port = await open_raw(make_service, web_max_connections=2)
    idle = [await asyncio.open_connection(host, port) for _ in range(2)]
    try:
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
            # Until the server has seen both idle connections (same loop: a turn or two).
            for _ in range(100):
                status = (await http.get("/healthz")).status_code
                if status == 503:
                    break
                await asyncio.sleep(0.01)
            assert status == 503
    finally:
        for _, writer in idle:
            writer.close()
