"""Fixtures shared by every test: real hubs on port 0 over a real database, and raw clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from kernal.config import HubSettings
from kernal.hub.server import Hub
from kernal.serve import Service, start_service
from tests.helpers import RawClient

HubFactory = Callable[..., Awaitable[Hub]]
ServiceFactory = Callable[..., Awaitable[Service]]


@pytest.fixture
async def make_service(tmp_path: Path) -> AsyncIterator[ServiceFactory]:
    """Start real hubs with their dashboards as the CLI does: ``await make_service(speed=100,
    dashboard_port=0)``; all are stopped at teardown."""
    services: list[Service] = []

    async def factory(**overrides: Any) -> Service:
        options: dict[str, Any] = {
            "port": 0,
            "dashboard_port": None,
            "db": str(tmp_path / "hub_data.db"),
            "speed": 50.0,
            "auth_timeout": 2.0,
        }
        options.update(overrides)
        service = await start_service(HubSettings(**options))
        services.append(service)
        return service

    yield factory
    for service in services:
        await service.stop()


@pytest.fixture
async def make_hub(make_service: ServiceFactory) -> HubFactory:
    """Start real hubs: ``await make_hub(speed=100, db=...)``; all are stopped at teardown."""

    async def factory(**overrides: Any) -> Hub:
        return (await make_service(**overrides)).hub

    return factory


@pytest.fixture
async def hub(make_hub: HubFactory) -> Hub:
    """A running hub on loopback with an empty token store (demo tokens active)."""
    return await make_hub()


@pytest.fixture
async def raw_client(hub: Hub) -> AsyncIterator[Callable[..., Awaitable[RawClient]]]:
    """``client = await raw_client()`` (or ``raw_client(other_hub)``), closed at teardown."""
    clients: list[RawClient] = []

    async def factory(target: Hub | None = None) -> RawClient:
        client = await RawClient.connect(target or hub)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()
