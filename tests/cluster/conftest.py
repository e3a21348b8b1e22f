"""Fixtures of the cluster tests: replicas of one hub in this process, on loopback.

Every test gets its own PostgreSQL database (``kernal_rep_<random>`` on the server of
``$KERNAL_TEST_PG_URL``, dropped afterwards) and its own bus namespace on the real Redis at
``$KERNAL_TEST_REDIS_URL`` (default ``redis://127.0.0.1:6379``), so tests never hear each
other. Heartbeats are fast (0.2 s, TTL 1 s) so a dead replica is noticed within a second or two.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from kernal.config import HubSettings
from kernal.serve import Service, start_service
from kernal.storage.sql import database_url
from tests.helpers import RawClient

PG_URL = os.environ.get("KERNAL_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("KERNAL_TEST_REDIS_URL", "redis://127.0.0.1:6379")

ReplicaFactory = Callable[..., Awaitable[Service]]


@pytest.fixture
def pg_database() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database, dropped after the test."""
    name = f"kernal_rep_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(database_url(PG_URL), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL is required by the cluster tests ({PG_URL}): {exc}")
    yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


@pytest.fixture
async def make_replica(pg_database: str) -> AsyncIterator[ReplicaFactory]:
    """``await make_replica()`` starts one more replica of this test's cluster (same database,
    same bus namespace); all are stopped at teardown."""
    namespace = f"kt_{uuid.uuid4().hex[:12]}"
    services: list[Service] = []

    async def factory(**overrides: Any) -> Service:
        options: dict[str, Any] = {
            "port": 0,
            "dashboard_port": None,
            "db": pg_database,
            "speed": 50.0,
            "auth_timeout": 2.0,
            "bus": REDIS_URL,
            "bus_namespace": namespace,
            "replica_id": f"r{len(services) + 1}",
            "bus_heartbeat": 0.2,
            "bus_ttl": 1.0,
        }
        options.update(overrides)
        service = await start_service(HubSettings(**options))
        services.append(service)
        return service

    yield factory
    for service in services:
        try:
            async with asyncio.timeout(30):
                await service.stop()
        except TimeoutError:
            # Say where it hangs (every task's stack) rather than wait for the test timeout.
            for task in asyncio.all_tasks():
                task.print_stack(file=sys.stderr)
            raise


@pytest.fixture
async def clients() -> AsyncIterator[list[RawClient]]:
    """Raw clients to close at teardown (append them)."""
    opened: list[RawClient] = []
    yield opened
    for client in opened:
        await client.close()


async def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``check()`` holds (polling); fails the test after ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 (state of other tasks, no event to wait on)
            await asyncio.sleep(0.02)


async def eventually_async(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """:func:`eventually` for a check that awaits."""
    async with asyncio.timeout(timeout):
        while not await check():  # noqa: ASYNC110 (state of other tasks, no event to wait on)
            await asyncio.sleep(0.05)
