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

from kernal.config import TrainerSettings
from kernal.engines.base import Engine, load_engine
from kernal.trainer.report import TrainerReport
from kernal.trainer.trainer import Trainer

log = logging.getLogger("kernal.harness")

STOP_TIMEOUT = 30.0  # real seconds the trainers get to stop at the end of a scenario


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
        self._stopping = False

    def __len__(self) -> int:
        return len(self._members)

    def start(self, start_at: float, on_finished: Finished | None = None) -> None:
        """Run every trainer from ``start_at`` (Unix seconds) plus its ``join_at``.
        ``on_finished`` hears of each trainer whose run ends before :meth:`stop` (they all
        failed: a trainer runs until it is stopped unless it is refused or crashes)."""
        for member in self._members:
            ai_id = member.settings.ai_id
            if ai_id in self._unbuilt:
                if on_finished is not None:
                    on_finished(self._unbuilt[ai_id])
                continue
            clock = member.settings.clock
            at = start_at + clock.real(member.join_at)
            task = asyncio.create_task(self._run(ai_id, at), name=ai_id)
            if on_finished is not None:
                task.add_done_callback(lambda done: self._early(done, on_finished))
            self._tasks[ai_id] = task

    async def _run(self, ai_id: str, at: float) -> TrainerReport:
        await asyncio.sleep(max(0.0, at - time.time()))
        self._started.add(ai_id)
        return await self._trainers[ai_id].run()

    def _early(self, task: asyncio.Task[TrainerReport], on_finished: Finished) -> None:
        if not self._stopping and not task.cancelled():
            on_finished(self._outcome(task))

    def connected(self) -> int:
        """Trainers connected to the hub right now."""
        return sum(t.client.connected.is_set() for t in self._trainers.values())

    async def stop(self, timeout: float = STOP_TIMEOUT) -> list[TrainerReport]:
        """Stop every trainer (a bounded wait: one that does not stop is cancelled and reported
        as stuck) and return one report per member, in the members' order."""
        self._stopping = True
        for trainer in self._trainers.values():
            trainer.stop()
        tasks = list(self._tasks.values())
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=timeout)
            for task in stuck:
                task.cancel()
            await asyncio.wait(tasks)
        reports = []
        for member in self._members:
            ai_id = member.settings.ai_id
            if ai_id in self._unbuilt:
                reports.append(self._unbuilt[ai_id])
            elif ai_id not in self._started:
                report = self._trainers[ai_id].report()
                joins = f"{member.join_at:g} s"
                error = f"the run ended before it was due to join (at {joins})"
                reports.append(dataclasses.replace(report, error=error))
            else:
                reports.append(self._outcome(self._tasks[ai_id], timeout))
        return reports

    def _outcome(self, task: asyncio.Task[TrainerReport], timeout: float = 0.0) -> TrainerReport:
        ai_id = task.get_name()
        trainer = self._trainers[ai_id]
        if task.cancelled():
            report = trainer.report()
            error = f"did not stop within {timeout:g} s of the end; cancelled"
            return dataclasses.replace(report, succeeded=False, error=error)
        exc = task.exception()
        if exc is not None:
            log.error("[%s] Trainer crashed: %r", ai_id, exc)
            return _failed(trainer.settings, f"crashed: {exc!r}")
        return task.result()


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

    async def stop(self) -> list[TrainerReport]:
        assert self._crew is not None, "start() first"
        self._stopped = True
        return await self._crew.stop()

    async def close(self) -> None:
        if self._crew is not None and not self._stopped:  # the run failed half-way
            await self.stop()
