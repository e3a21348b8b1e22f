"""Schemathesis against the live API: for every operation in ``/openapi.json``, generated
requests (valid and invalid) never get a 5xx, and the 2xx answers match the schema.

The hub runs on its own event loop in a thread here: schemathesis calls the API with a blocking
HTTP client, which would stall a hub on the test's own loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.specs.openapi.checks import response_schema_conformance

from kernal.config import HubSettings
from kernal.serve import start_service

ADMIN = "admin-secret"


@pytest.fixture
def live_url(tmp_path: Path) -> Iterator[str]:
    """A real hub with its dashboard (and an admin token) in a thread; its base URL."""
    ready = threading.Event()
    address: list[tuple[str, int]] = []
    stop: list[asyncio.Event] = []
    loop_of: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        # One launched trainer at most: POST /api/trainers answers its 201 once (its schema is
        # checked), then 429, instead of starting a learning trainer for every generated body.
        settings = HubSettings(
            port=0,
            dashboard_port=0,
            db=str(tmp_path / "h.db"),
            admin_token=ADMIN,
            max_launched_trainers=1,
        )
        service = await start_service(settings)
        try:
            assert service.dashboard_address is not None
            address.append(service.dashboard_address)
            stop.append(asyncio.Event())
            loop_of.append(asyncio.get_running_loop())
            ready.set()
            await stop[0].wait()
        finally:
            await service.stop()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    assert ready.wait(30), "the hub did not start"
    host, port = address[0]
    try:
        yield f"http://{host}:{port}"
    finally:
        loop_of[0].call_soon_threadsafe(stop[0].set)
        thread.join(30)


def test_no_operation_fails_on_generated_requests(live_url: str) -> None:
    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 10
    strategy = st.one_of([operation.as_strategy() for operation in operations])

    @given(case=strategy)
    @settings(
        max_examples=100,
        deadline=None,
        database=None,
        derandomize=True,  # the same requests every run: a failure can be replayed
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=live_url, headers={"Authorization": f"Bearer {ADMIN}"})
        assert response.status_code < 500, (case.method, case.formatted_path, response.text)
        if 200 <= response.status_code < 300:
            case.validate_response(response, checks=[response_schema_conformance])

    check()
