"""A crew: some of a scenario's trainers, run in one event loop from a common start instant
until told to stop. A worker process runs one crew; ``--workers 0`` runs the whole scenario as
one crew in the harness's own loop."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kernal.config import TrainerSettings
from kernal.engines.base import Engine, load_engine
from kernal.harness.lag import LagMeter
from kernal.trainer.report import TrainerReport
from kernal.trainer.trainer import Trainer

log = logging.getLogger("kernal.harness")

STOP_TIMEOUT = 30.0  # real seconds the trainers get to stop at the end of a scenario
CANCEL_TIMEOUT = 5.0  # real seconds a trainer that did not stop gets to end once cancelled


@dataclass(frozen=True)
class Member:
    """One trainer of a crew: its settings, and when it joins (scenario seconds)."""

    settings: TrainerSettings
    join_at: float = 0.0


Finished = Callable[[TrainerReport], None]


class Crew:
    """Builds its trainers at once, for the hub at ``address`` (so a worker is ready before
    the clock starts), runs each from ``start_at + join_at``, and stops them all on
    :meth:`stop`. A trainer that cannot be built, crashes or does not stop in time gets a
    report saying so; none is ever missing."""

    def __init__(self, members: list[Member], address: tuple[str, int]) -> None:
        host, port = address
        self._members = [
            Member(dataclasses.replace(m.settings, hub_host=host, hub_port=port), m.join_at)
            for m in members
        ]
        self._trainers: dict[str, Trainer] = {}
        self._unbuilt: dict[str, TrainerReport] = {}
        engines: dict[str, type[Engine]] = {}  # looked up once: entry points are slow to scan
        for member in self._members:
            settings = member.settings
            try:
                if settings.engine not in engines:
                    engines[settings.engine] = load_engine(settings.engine)
                engine = engines[settings.engine]
                self._trainers[settings.ai_id] = Trainer(settings, engine_class=engine)
            except Exception as exc:
                log.exception("[%s] Could not build the trainer", settings.ai_id)
                self._unbuilt[settings.ai_id] = _failed(settings, f"could not start: {exc!r}")
        self._tasks: dict[str, asyncio.Task[TrainerReport]] = {}
        self._started: set[str] = set()
        self._ended: dict[str, TrainerReport] = {}  # trainers whose run() has returned or raised
        self._on_finished: Finished | None = None
        self._stopping = False
        self.lag = LagMeter()  # how late this loop wakes up, from the start to the stop

    def __len__(self) -> int:
        return len(self._members)

    def start(self, start_at: float, on_finished: Finished | None = None) -> None:
        """Run every trainer from ``start_at`` (Unix seconds) plus its ``join_at``.
        ``on_finished`` hears of each trainer whose run ends before :meth:`stop` (they all
        failed: a trainer runs until it is stopped unless it is refused or crashes)."""
        self._on_finished = on_finished
        self.lag.start()
        for member in self._members:
            ai_id = member.settings.ai_id
            if ai_id in self._unbuilt:
                if on_finished is not None:
                    on_finished(self._unbuilt[ai_id])
                continue
            at = start_at + member.settings.clock.real(member.join_at)
            task = asyncio.create_task(self._run(ai_id, at), name=ai_id)
            task.add_done_callback(self._ended_run)
            self._tasks[ai_id] = task

    async def _run(self, ai_id: str, at: float) -> TrainerReport:
        await asyncio.sleep(max(0.0, at - time.time()))
        self._started.add(ai_id)
        return await self._trainers[ai_id].run()

    def _ended_run(self, task: asyncio.Task[TrainerReport]) -> None:
        if task.cancelled():
            return
        ai_id = task.get_name()
        exc = task.exception()
        if exc is None:
            self._ended[ai_id] = task.result()
        else:
            log.error("[%s] Trainer crashed: %r", ai_id, exc)
            self._ended[ai_id] = _failed(self._trainers[ai_id].settings, f"crashed: {exc!r}")
        if not self._stopping and self._on_finished is not None:
            self._on_finished(self._ended[ai_id])

    async def stop(self, timeout: float = STOP_TIMEOUT) -> list[TrainerReport]:
        """Stop every trainer (a bounded wait: one that does not stop is cancelled and reported
        as stuck) and return one report per member, in the members' order."""
        self._stopping = True
        await self.lag.stop()
        for trainer in self._trainers.values():
            trainer.stop()
        tasks = list(self._tasks.values())
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=timeout)
            for task in stuck:
                task.cancel()
            if stuck:  # bounded too: a task may ignore its cancellation
                await asyncio.wait(stuck, timeout=CANCEL_TIMEOUT)
        reports = []
        for member in self._members:
            ai_id = member.settings.ai_id
            if ai_id in self._unbuilt:
                reports.append(self._unbuilt[ai_id])
            elif ai_id in self._ended:
                reports.append(self._ended[ai_id])
            elif ai_id not in self._started:
                error = f"the run ended before it was due to join (at {member.join_at:g} s)"
                reports.append(dataclasses.replace(self._trainers[ai_id].report(), error=error))
            else:
                error = f"did not stop within {timeout:g} s of the end; cancelled"
                report = self._trainers[ai_id].report()
                reports.append(dataclasses.replace(report, succeeded=False, error=error))
        return reports


def _failed(settings: TrainerSettings, error: str) -> TrainerReport:
    return TrainerReport.failed(settings.ai_id, settings.specialization, settings.engine, error)


class LocalFleet:
    """The whole scenario as one crew in this event loop (``--workers 0``), with the same
    face as :class:`~kernal.harness.workers.WorkerPool`."""

    def __init__(self, members: list[Member]) -> None:
        self._members = members
        self._crew: Crew | None = None
        self._failed = 0
        self._stopped = False

    def __len__(self) -> int:
        return 0  # worker processes

    async def start(self, address: tuple[str, int], stop: asyncio.Event) -> None:
        self._crew = Crew(self._members, address)

    def begin(self, start_at: float) -> None:
        assert self._crew is not None, "start() first"
        self._crew.start(start_at, self._finished)

    def _finished(self, report: TrainerReport) -> None:
        self._failed += 1

    def failures(self) -> int:
        return self._failed

    def lag(self) -> list[dict[str, Any]]:
        """The crew's loop lateness (:mod:`kernal.harness.lag`), once stopped."""
        return [] if self._crew is None else [self._crew.lag.figures()]

    async def stop(self) -> list[TrainerReport]:
        assert self._crew is not None, "start() first"
        self._stopped = True
        return await self._crew.stop()

    async def close(self) -> None:
        if self._crew is not None and not self._stopped:  # the run failed half-way
            await self.stop()
