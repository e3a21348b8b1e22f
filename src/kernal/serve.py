"""The composition root: builds the store, the hub and the web app from settings, and starts and
stops them together. The CLI, the harness and the tests all start hubs through here, so a hub's
store is always the one its settings name.

    async with serving(HubSettings(port=0)) as service:
        host, port = service.hub.address
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from kernal import runtime
from kernal.config import HubSettings
from kernal.hub.auth import is_loopback
from kernal.hub.server import Hub
from kernal.storage import Store
from kernal.storage.sql import SqlStore
from kernal.web.app import create_app
from kernal.web.security import check_exposure
from kernal.web.server import WebLimits, WebServer, start_web

log = logging.getLogger("kernal")


def build_store(db: str) -> Store:
    """The (unopened) store for a SQLite path or a database URL: the one place a store is made."""
    return SqlStore(db)


def build_hub(settings: HubSettings) -> Hub:
    """A hub on the store its settings name (not started)."""
    return Hub(settings, build_store(settings.db))


@dataclass
class Service:
    """A started hub and, if its settings ask for one, its dashboard."""

    hub: Hub
    web: WebServer | None = None

    @property
    def dashboard_address(self) -> tuple[str, int] | None:
        return None if self.web is None else self.web.address

    async def stop(self) -> None:
        """The dashboard first (no page sees a half-stopped hub), then the hub."""
        if self.web is not None:
            await self.web.stop()
            self.web = None
        await self.hub.stop()


async def start_service(settings: HubSettings, hub: Hub | None = None) -> Service:
    """Start ``hub`` (by default one built from ``settings``) and its dashboard. Raises
    :class:`~kernal.hub.server.HubConfigError` or OSError (a port in use), having stopped
    whatever it started. A dashboard that would be open beyond loopback is refused
    (:func:`~kernal.web.security.check_exposure`), after the hub's own checks."""
    hub = hub or build_hub(settings)
    await hub.start()
    service = Service(hub)
    if settings.dashboard_port is not None:
        try:
            check_exposure(settings)
            service.web = await start_web(
                create_app(hub),
                settings.web_host,
                settings.dashboard_port,
                WebLimits.from_settings(settings),
                tls_cert=settings.tls_cert,
                tls_key=settings.tls_key,
            )
        except BaseException:
            await hub.stop()
            raise
        scheme = "https" if settings.tls else "http"
        log.info("Dashboard on %s://%s:%d/", scheme, *service.web.address)
        if not settings.tls and not is_loopback(settings.web_host):
            log.warning(
                "Dashboard on %s without TLS: what it shows crosses the network in plain "
                "text. Give the hub --tls-cert and --tls-key to serve it over https",
                settings.web_host,
            )
    return service


@contextlib.asynccontextmanager
async def serving(settings: HubSettings) -> AsyncIterator[Service]:
    """``start_service`` for the duration of a ``with`` block."""
    service = await start_service(settings)
    try:
        yield service
    finally:
        await service.stop()


Companion = Callable[[Hub], Coroutine[Any, Any, Any]]


async def run(settings: HubSettings, companions: list[Companion] | None = None) -> None:
    """Serve until cancelled, with ``companions`` (coroutines given the started hub, such as
    demo trainers) running beside it and cancelled with it."""
    async with serving(settings) as service:
        with runtime.long_lived():  # what starting made lives as long as the process
            tasks = [asyncio.create_task(companion(service.hub)) for companion in companions or []]
            try:
                await service.hub.serve_forever()
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
