"""The hub's periodic duties: collaboration progress flushed to the store and a snapshot of the
headline figures for the history charts, every ``interval`` scenario seconds; with a
``retention`` policy, old snapshots thinned about once a minute of scenario time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from kernal.hub.collaborations import CollaborationBook
from kernal.hub.status import HubStatus
from kernal.runtime import cancel_and_wait
from kernal.storage import StatsRetention, Store
from kernal.timing import Clock

log = logging.getLogger("kernal.hub")

THIN_EVERY = 60.0  # scenario seconds between two thinnings of the stats history


@dataclass(kw_only=True)
class StatsRecorder:
    """Runs the periodic duties from :meth:`start` to :meth:`stop`."""

    status: Callable[[], Awaitable[HubStatus]]
    store: Store
    book: CollaborationBook
    clock: Clock
    interval: float
    sweep: Callable[[], Awaitable[object]] | None = None  # run every interval too
    retention: StatsRetention | None = None  # None: every snapshot is kept
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def save_progress(self) -> None:
        """Write the collaboration progress reported since the last call (one write job)."""
        unsaved = self.book.take_progress()
        if not unsaved:
            return
        try:
            await self.store.set_collaborations_progress(unsaved)
        except Exception as exc:
            log.error("Could not store the progress of %d collaborations: %s", len(unsaved), exc)

    async def _run(self) -> None:
        ticks_per_thinning = max(1, round(THIN_EVERY / self.interval))
        tick = 0
        while True:
            await self.clock.sleep(self.interval)
            await self.save_progress()
            if self.sweep is not None:
                try:
                    await self.sweep()
                except Exception:
                    log.exception("Periodic sweep failed")
            try:
                snapshot = (await self.status()).snapshot(self.clock.now())
                if snapshot is not None:  # None: another replica keeps the cluster's history
                    await self.store.add_stats_snapshot(snapshot)
            except Exception:
                log.exception("Could not record a stats snapshot")
            if self.retention is not None and tick % ticks_per_thinning == 0:
                try:
                    deleted = await self.store.thin_stats(self.retention, self.clock.now())
                    if deleted:
                        log.debug("Stats retention deleted %d old snapshots", deleted)
                except Exception:
                    log.exception("Could not thin the stats history")
            tick += 1
