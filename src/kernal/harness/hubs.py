"""The hub of a harness run: in its own process (:class:`HubProcess`, the default) or in the
harness's own event loop (:class:`LocalHub`, ``--workers 0``). Either way the runner sees the
same few things: where trainers connect, the hub's figures, its collaboration counts, stop."""

from __future__ import annotations

import asyncio
import logging
import signal
import urllib.request
from typing import Protocol

from kernal import runtime
from kernal.config import HubSettings
from kernal.harness.processes import (
    Channel,
    ChannelClosed,
    Connection,
    LogForwarder,
    Process,
    reap,
    spawn,
)
from kernal.hub.auth import GENERATED_TOKEN_ITERATIONS, generate_token, hash_token
from kernal.hub.status import HubStatus
from kernal.serve import Service, build_store, start_service
from kernal.storage import CollaborationStatus, Store
from kernal.timing import Clock

log = logging.getLogger("kernal.harness")

START_TIMEOUT = 60.0  # real seconds for a hub process to start (imports, migrations, bind)
STOP_TIMEOUT = 15.0  # real seconds a hub process gets to stop after SIGTERM before it is killed
STATUS_TIMEOUT = 10.0  # real seconds for one GET /status


class HarnessError(Exception):
    """The run could not start (the hub would not start, no worker came up); says why."""


class HarnessHub(Protocol):
    address: tuple[str, int]
    dashboard_url: str | None

    async def status(self) -> HubStatus: ...

    async def collaboration_counts(self) -> dict[str, int]: ...

    async def stop(self) -> None: ...


def new_tokens(ai_ids: list[str]) -> dict[str, str]:
    """A fresh random token for each AI."""
    return {ai_id: generate_token() for ai_id in ai_ids}


async def register_tokens(db: str, tokens: dict[str, str]) -> None:
    """Store the tokens (hashed) in ``db``; done before the hub starts, so it starts with them
    and never in demo mode."""
    hashes = [hash_token(token, iterations=GENERATED_TOKEN_ITERATIONS) for token in tokens.values()]
    now = Clock.now()
    store = build_store(db)
    await store.open()
    try:
        for ai_id, token_hash in zip(tokens, hashes, strict=True):
            await store.set_token_hash(ai_id, token_hash, now)
    finally:
        await store.close()


async def _collaboration_counts(store: Store) -> dict[str, int]:
    counts = {}
    for status in (CollaborationStatus.COMPLETED, CollaborationStatus.FAILED):
        records = await store.list_collaborations(status, limit=1_000_000)
        counts[f"collaborations_{status.value}"] = len(records)
    return counts


def _url(address: tuple[str, int] | None) -> str | None:
    return None if address is None else f"http://{address[0]}:{address[1]}/"


class LocalHub:
    """The hub in this event loop, as the harness ran before it had workers."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self.address = service.hub.address
        self.dashboard_url = _url(service.dashboard_address)

    @classmethod
    async def start(cls, settings: HubSettings) -> LocalHub:
        return cls(await start_service(settings))

    async def status(self) -> HubStatus:
        return await self._service.hub.status()

    async def collaboration_counts(self) -> dict[str, int]:
        return await _collaboration_counts(self._service.hub.store)

    async def stop(self) -> None:
        await self._service.stop()


class HubProcess:
    """``kernal.serve`` in a child process, dashboard on: the harness reads the hub's figures
    over HTTP (``GET /status``) as anyone would, and its collaborations from the database."""

    def __init__(
        self,
        process: Process,
        channel: Channel,
        address: tuple[str, int],
        dashboard: tuple[str, int],
        store: Store,
    ) -> None:
        self._process = process
        self._channel = channel
        self._store = store
        self.address = address
        self.dashboard_url = _url(dashboard)
        self._status_url = f"{self.dashboard_url}status"

    @classmethod
    async def start(cls, settings: HubSettings, logs: LogForwarder) -> HubProcess:
        """Start the hub (``settings.dashboard_port`` must not be None) and wait until it
        listens; raises :class:`HarnessError` with the hub's own reason if it does not."""
        assert settings.dashboard_port is not None, "the harness reads the hub over HTTP"
        process, channel = spawn(hub_main, settings, logs, name="kernal-harness-hub")
        try:
            async with asyncio.timeout(START_TIMEOUT):
                message = await channel.recv()
        except (TimeoutError, ChannelClosed):
            channel.close()
            await reap(process, 0)
            raise HarnessError(
                f"the hub process did not start (exit code {process.exitcode})"
            ) from None
        if message[0] != "ready":
            channel.close()
            await reap(process, STOP_TIMEOUT)
            raise HarnessError(f"the hub did not start: {message[1]}")
        _, address, dashboard = message
        store = build_store(settings.db)
        await store.open()
        return cls(process, channel, tuple(address), tuple(dashboard), store)

    async def status(self) -> HubStatus:
        body = await asyncio.to_thread(_get, self._status_url, STATUS_TIMEOUT)
        return HubStatus.model_validate_json(body)

    async def collaboration_counts(self) -> dict[str, int]:
        return await _collaboration_counts(self._store)

    async def stop(self) -> None:
        """SIGTERM (the hub shuts down as ``kernal hub`` does on Ctrl+C), a bounded wait, then
        SIGKILL."""
        try:
            await self._store.close()
        finally:
            if self._process.is_alive():
                self._process.terminate()
            await reap(self._process, STOP_TIMEOUT)
            self._channel.close()
            if self._process.exitcode not in (0, None):
                log.warning("The hub process exited with code %s", self._process.exitcode)


def _get(url: str, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


# ---------------------------------------------------------------------- in the hub process


def hub_main(settings: HubSettings, conn: Connection) -> None:
    """The hub process: serve until SIGTERM or until the parent's pipe closes. On the event
    loop ``kernal hub`` picks (uvloop when installed), as the trainers' workers do."""
    runtime.run(_serve(settings, conn))


async def _serve(settings: HubSettings, conn: Connection) -> None:
    channel = Channel(conn)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        service = await start_service(settings)
    except Exception as exc:  # HubConfigError, OSError: the parent says it, not a traceback
        channel.send(("failed", str(exc) or type(exc).__name__))
        return
    try:
        channel.send(("ready", service.hub.address, service.dashboard_address))
        parent_gone = asyncio.create_task(_until_closed(channel))
        stopped = asyncio.create_task(stop.wait())
        with runtime.long_lived():  # as `kernal hub` serves
            await asyncio.wait({parent_gone, stopped}, return_when=asyncio.FIRST_COMPLETED)
        parent_gone.cancel()
        stopped.cancel()
    finally:
        await service.stop()


async def _until_closed(channel: Channel) -> None:
    try:
        while True:
            await channel.recv()
    except ChannelClosed:
        return
