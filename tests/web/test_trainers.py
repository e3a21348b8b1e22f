"""Trainers launched from the API: real child processes (``python -m kernal trainer``, the
simulated engine) against a real hub, their logs, stopping them, and the refusals."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from kernal.hub.server import Hub
from kernal.serve import Service, build_store
from kernal.web.app import create_app
from tests.conftest import ServiceFactory
from tests.helpers import RawClient, login
from tests.web.test_security import client_of

ADMIN = "admin-secret"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
WAIT = 60.0  # a guard against a hang, not a threshold: a child starts Python and imports kernal


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not await check():
        assert time.monotonic() < deadline, f"not seen in time: {what}"
        await asyncio.sleep(0.05)


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, reaped or not, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode().partition("=") for item in raw if item)
    return {key: value for key, _, value in pairs}


def cmdline_of(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_text()


@pytest.fixture
async def live(make_service: ServiceFactory) -> AsyncIterator[tuple[Service, httpx.AsyncClient]]:
    """A hub with its dashboard on a real port and an admin token; an HTTP client to it."""
    service = await make_service(dashboard_port=0, admin_token=ADMIN, speed=100.0)
    assert service.dashboard_address is not None
    host, port = service.dashboard_address
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=30) as api:
        yield service, api


async def connected(api: httpx.AsyncClient, ai_id: str) -> bool:
    response = await api.get("/api/ais")
    assert response.status_code == 200
    return any(ai["ai_id"] == ai_id for ai in response.json()["connected"])


async def test_launch_join_logs_stop_and_token_refused(
    live: tuple[Service, httpx.AsyncClient],
) -> None:
    service, api = live
    listing = (await api.get("/api/trainers")).json()
    assert listing["enabled"] is True and listing["trainers"] == []
    response = await api.post(
        "/api/trainers",
        headers=AUTH,
        json={
            "ai_id": "AI_Launched_1",
            "specialization": "networking",
            "engine": "simulated",
            "capabilities": ["routing", "dns"],
            "seed": 7,
        },
    )
    assert response.status_code == 201, response.text
    trainer = response.json()
    pid = trainer["pid"]
    assert trainer["state"] == "running" and running(pid)
    await eventually(lambda: connected(api, "AI_Launched_1"), "the launched AI connected")
    ais = (await api.get("/api/ais")).json()["connected"]
    mine = next(ai for ai in ais if ai["ai_id"] == "AI_Launched_1")
    assert "routing" in mine["capabilities"]

    # Its token is in its environment, never on its command line, and only its hash is stored.
    secret = environ_of(pid)["KERNAL_TOKEN"]
    assert secret not in cmdline_of(pid)
    assert all(secret not in part for part in trainer["command"])
    assert "KERNAL_ADMIN_TOKEN" not in environ_of(pid)
    stored = await service.hub.store.get_token("AI_Launched_1")
    assert stored is not None and secret not in stored.token_hash

    listed = (await api.get("/api/trainers")).json()["trainers"]
    assert [(t["ai_id"], t["state"], t["connected"]) for t in listed] == [
        ("AI_Launched_1", "running", True)
    ]

    async def has_logs() -> bool:
        body = (await api.get("/api/trainers/AI_Launched_1/logs")).json()
        return any("AI_Launched_1" in line for line in body["lines"])

    await eventually(has_logs, "the trainer's own log lines")

    stopped = await api.delete("/api/trainers/AI_Launched_1", headers=AUTH)
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["token_revoked"] is True
    assert not running(pid)

    async def left() -> bool:
        return not await connected(api, "AI_Launched_1")

    await eventually(left, "the stopped AI left")
    assert (await api.get("/api/trainers")).json()["trainers"] == []
    assert (await api.get("/api/trainers/AI_Launched_1/logs")).status_code == 404

    client = await RawClient.connect(service.hub)
    try:
        await client.send({"ai_id": "AI_Launched_1", "token": secret})
        reply = await client.recv()
        assert reply["type"] == "AUTH_FAILED", reply
    finally:
        await client.close()


async def test_every_child_is_gone_after_the_service_stops(
    make_service: ServiceFactory,
) -> None:
    service = await make_service(dashboard_port=0, admin_token=ADMIN, speed=100.0)
    assert service.dashboard_address is not None
    host, port = service.dashboard_address
    pids = []
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=30) as api:
        for n in (1, 2):
            response = await api.post(
                "/api/trainers",
                headers=AUTH,
                json={"ai_id": f"AI_Stop_{n}", "specialization": "graphics", "engine": "simulated"},
            )
            assert response.status_code == 201, response.text
            pids.append(response.json()["pid"])
        await eventually(lambda: connected(api, "AI_Stop_2"), "a launched AI connected")
    assert all(running(pid) for pid in pids)
    await service.stop()
    assert not any(running(pid) for pid in pids)
    # Their minted tokens went with them.
    store = build_store(service.hub.settings.db)
    await store.open()
    try:
        assert await store.list_tokens() == []
    finally:
        await store.close()


async def test_a_trainer_that_exits_is_reported_not_restarted(
    live: tuple[Service, httpx.AsyncClient],
) -> None:
    api = live[1]
    # An engine option that parses but the engine itself rejects at start would do too; a
    # learning dataset file that does not exist makes the child fail fast.
    response = await api.post(
        "/api/trainers",
        headers=AUTH,
        json={
            "ai_id": "AI_Doomed",
            "specialization": "networking",
            "engine": "learning",
            "options": {"data": "/nonexistent/data.csv"},
        },
    )
    assert response.status_code == 201, response.text

    async def exited() -> bool:
        listed = (await api.get("/api/trainers")).json()["trainers"]
        return listed[0]["state"] == "exited"

    await eventually(exited, "the failing trainer exited")
    listed = (await api.get("/api/trainers")).json()["trainers"]
    assert listed[0]["exit_code"] not in (None, 0)
    lines = (await api.get("/api/trainers/AI_Doomed/logs")).json()["lines"]
    assert "exited by itself" in lines[-1]
    assert any("nonexistent" in line for line in lines), lines
    again = await api.post(
        "/api/trainers",
        headers=AUTH,
        json={"ai_id": "AI_Doomed", "specialization": "networking", "engine": "simulated"},
    )
    assert again.status_code == 409 and "exited" in again.json()["error"]
    assert (await api.delete("/api/trainers/AI_Doomed", headers=AUTH)).status_code == 200


# ---------------------------------------------------------------------- refusals, in-process


@pytest.fixture
async def admin_api(hub: Hub) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process with an admin token and room for one launched trainer; whatever it
    launched is stopped at teardown (no web server runs its stop hooks here)."""
    hub.settings = dataclasses.replace(hub.settings, admin_token=ADMIN, max_launched_trainers=1)
    app = create_app(hub)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as api:
        try:
            yield api
        finally:
            for hook in app.state.before_stop:
                await hook()


async def test_writes_are_off_without_an_admin_token(hub: Hub) -> None:
    async with client_of(hub) as api:
        listing = (await api.get("/api/trainers")).json()
        assert listing["enabled"] is False and "--admin-token" in listing["how_to_enable"]
        response = await api.post(
            "/api/trainers", json={"ai_id": "AI_X", "specialization": "networking"}
        )
        assert response.status_code == 403
        assert "--admin-token" in response.json()["error"]
        assert (await api.delete("/api/trainers/AI_X")).status_code == 403


async def test_launching_is_off_with_a_limit_of_0(hub: Hub) -> None:
    async with client_of(hub, admin_token=ADMIN, max_launched_trainers=0) as api:
        listing = (await api.get("/api/trainers")).json()
        assert listing["enabled"] is False
        assert "--max-launched-trainers 0" in listing["how_to_enable"]
        response = await api.post(
            "/api/trainers",
            headers=AUTH,
            json={"ai_id": "AI_X", "specialization": "networking", "engine": "simulated"},
        )
        assert response.status_code == 403
        assert response.json()["error"] == listing["how_to_enable"]


async def test_wrong_admin_token_is_401(admin_api: httpx.AsyncClient) -> None:
    response = await admin_api.post(
        "/api/trainers",
        headers={"Authorization": "Bearer nope"},
        json={"ai_id": "AI_X", "specialization": "networking", "engine": "simulated"},
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"engine": "simulated", "options": {"bogus": 1}}, "bogus: unknown option"),
        ({"engine": "learning", "options": {"split": 5}}, "split"),
        ({"engine": "learning", "options": {"merge": "nonsense"}}, "merge"),
        ({"engine": "no_such_engine"}, "no engine named 'no_such_engine'"),
        ({"ai_id": "has space"}, "ai_id"),
        ({"ai_id": "x" * 129}, "ai_id"),
        ({"specialization": ""}, "specialization"),
    ],
)
async def test_bad_input_is_422_with_a_reason(
    hub: Hub, admin_api: httpx.AsyncClient, body: dict[str, object], needle: str
) -> None:
    request = {"ai_id": "AI_Bad", "specialization": "networking", **body}
    response = await admin_api.post("/api/trainers", headers=AUTH, json=request)
    assert response.status_code == 422, response.text
    assert needle in response.json()["error"]
    assert await hub.store.get_token("AI_Bad") is None  # nothing minted, nothing started
    assert (await admin_api.get("/api/trainers")).json()["trainers"] == []


async def test_duplicates_and_the_limit(hub: Hub, admin_api: httpx.AsyncClient) -> None:
    demo = await login(hub, "AI_Node_3")  # connected before any token exists (demo mode)
    try:
        taken = await admin_api.post(
            "/api/trainers",
            headers=AUTH,
            json={"ai_id": "AI_Node_3", "specialization": "networking", "engine": "simulated"},
        )
        assert taken.status_code == 409 and "connected" in taken.json()["error"]
    finally:
        await demo.close()
    first = await admin_api.post(
        "/api/trainers",
        headers=AUTH,
        json={"ai_id": "AI_One", "specialization": "networking", "engine": "simulated"},
    )
    assert first.status_code == 201, first.text
    again = await admin_api.post(
        "/api/trainers",
        headers=AUTH,
        json={"ai_id": "AI_One", "specialization": "networking", "engine": "simulated"},
    )
    assert again.status_code == 409 and "already launched" in again.json()["error"]
    full = await admin_api.post(
        "/api/trainers",
        headers=AUTH,
        json={"ai_id": "AI_Two", "specialization": "networking", "engine": "simulated"},
    )
    assert full.status_code == 429 and "--max-launched-trainers" in full.json()["error"]
    assert await hub.store.get_token("AI_Two") is None
    pid = first.json()["pid"]
    assert (await admin_api.delete("/api/trainers/AI_One", headers=AUTH)).status_code == 200
    assert not running(pid)
    assert (await admin_api.delete("/api/trainers/AI_One", headers=AUTH)).status_code == 404


async def test_an_id_with_its_own_token_is_not_taken_over(
    hub: Hub, admin_api: httpx.AsyncClient
) -> None:
    await hub.store.set_token_hash("AI_Owned", "pbkdf2_sha256$1$x$y", 1.0)
    response = await admin_api.post(
        "/api/trainers",
        headers=AUTH,
        json={"ai_id": "AI_Owned", "specialization": "networking", "engine": "simulated"},
    )
    assert response.status_code == 409 and "kernal token revoke" in response.json()["error"]
    stored = await hub.store.get_token("AI_Owned")
    assert stored is not None and stored.token_hash == "pbkdf2_sha256$1$x$y"


async def test_a_leftover_launcher_token_is_replaced(
    hub: Hub, admin_api: httpx.AsyncClient
) -> None:
    """A hub killed without stopping its trainers left a minted token behind: launching that
    id again replaces it instead of refusing."""
    await hub.store.set_token_hash("AI_Again", "pbkdf2_sha256$1$x$y", 1.0, source="launcher")
    response = await admin_api.post(
        "/api/trainers",
        headers=AUTH,
        json={"ai_id": "AI_Again", "specialization": "networking", "engine": "simulated"},
    )
    assert response.status_code == 201, response.text
    stored = await hub.store.get_token("AI_Again")
    assert stored is not None and stored.token_hash != "pbkdf2_sha256$1$x$y"
    assert stored.source == "launcher"


def test_the_hub_does_not_import_the_launcher() -> None:
    code = (
        "import sys, kernal.hub.server, kernal.hub.router; print('kernal.launcher' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.strip() == "False"
