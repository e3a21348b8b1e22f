"""Trainers in worker processes: each worker runs one :class:`~kernal.harness.crew.Crew` in its
own event loop, so trainers use every core and never starve each other or the hub.

Workers are started first, so their interpreters come up while the hub starts. The
conversation with a worker, over its pipe::

    parent -> ("hub", host, port)               where the trainers connect
    worker -> ("ready",)                        trainers built
    parent -> ("start", start_at)               a Unix time shared by every worker
    worker -> ("finished", ai_id, error)        a trainer whose run ended early (it failed)
    parent -> ("stop",)                         the scenario is over (or interrupted)
    worker -> ("reports", [TrainerReport.to_json(), ...], its loop's lateness figures)

A worker that dies, or does not answer in time, is killed and each of its trainers gets a
failed report saying so; a worker whose pipe closes (the parent is gone) stops its trainers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from kernal import runtime
from kernal.harness.crew import STOP_TIMEOUT, Crew, Member
from kernal.harness.processes import (
    Channel,
    ChannelClosed,
    Connection,
    LogForwarder,
    Process,
    reap,
    spawn,
)
from kernal.trainer.report import TrainerReport
from kernal.trainer.trainer import Trainer

log = logging.getLogger("kernal.harness")

READY_TIMEOUT = 120.0  # real seconds for a worker to start and build its trainers
REPORT_GRACE = 15.0  # real seconds beyond the trainers' own stop timeout to send the reports


@dataclass(frozen=True)
class WorkerJob:
    number: int  # 1-based, as logs and errors name it
    members: list[Member]


@dataclass
class _Worker:
    job: WorkerJob
    process: Process
    channel: Channel
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    reports: list[TrainerReport] | None = None
    lag: dict[str, Any] | None = None  # its loop's lateness (kernal.harness.lag), reported
    problem: str | None = None  # why its trainers have no reports of their own
    finished: int = 0  # trainers whose run ended early

    def give_up(self, problem: str) -> None:
        if not self.done.is_set():
            self.problem = problem
            self.done.set()
            self.ready.set()

    def describe_exit(self) -> str:
        return (
            f"worker {self.job.number} (pid {self.process.pid}) exited with code "
            f"{self.process.exitcode} before it reported"
        )


def deal(members: list[Member], workers: int) -> list[WorkerJob]:
    """Members dealt round-robin to at most ``workers`` jobs (none empty)."""
    count = max(1, min(workers, len(members)))
    return [WorkerJob(n + 1, members[n::count]) for n in range(count)]


class WorkerPool:
    """The worker processes of one run, seen from the parent."""

    def __init__(self, jobs: list[WorkerJob], logs: LogForwarder) -> None:
        self._jobs = jobs
        self._logs = logs
        self._workers: list[_Worker] = []
        self._listeners: list[asyncio.Task[None]] = []

    def __len__(self) -> int:
        return len(self._jobs)

    def spawn(self) -> None:
        """Start the worker processes (they import, then wait for :meth:`start`)."""
        for job in self._jobs:
            name = f"kernal-harness-worker-{job.number}"
            worker = _Worker(job, *spawn(worker_main, job, self._logs, name=name))
            self._workers.append(worker)
            self._listeners.append(asyncio.create_task(self._listen(worker)))

    async def start(
        self, address: tuple[str, int], stop: asyncio.Event, timeout: float = READY_TIMEOUT
    ) -> None:
        """Tell every worker where the hub is and wait until each has built its trainers (or
        died, or ran out of time: its trainers will be reported as failed), or until ``stop``
        is set."""
        if not self._workers:
            self.spawn()
        for worker in self._workers:
            worker.channel.send(("hub", *address))
        waiting = [asyncio.create_task(w.ready.wait()) for w in self._workers]
        everyone = asyncio.create_task(asyncio.wait(waiting))
        stopped = asyncio.create_task(stop.wait())
        first = asyncio.FIRST_COMPLETED
        await asyncio.wait([everyone, stopped], timeout=timeout, return_when=first)
        for task in [*waiting, everyone, stopped]:
            task.cancel()
        if stop.is_set():
            return  # those not ready yet hear "stop" as soon as they are
        for worker in self._workers:
            if not worker.ready.is_set():
                worker.give_up(
                    f"worker {worker.job.number} was not ready within {timeout:g} s; killed"
                )
                worker.process.kill()

    async def _listen(self, worker: _Worker) -> None:
        try:
            while True:
                message = await worker.channel.recv()
                match message[0]:
                    case "ready":
                        worker.ready.set()
                    case "finished":
                        worker.finished += 1
                        log.debug("[%s] Finished early: %s", message[1], message[2])
                    case "reports":
                        worker.reports = [TrainerReport.from_json(r) for r in message[1]]
                        worker.lag = message[2]
                        worker.done.set()
                        return
        except ChannelClosed:
            if not worker.done.is_set():
                await asyncio.to_thread(worker.process.join, 5)
                worker.give_up(worker.describe_exit())
                log.error("%s", worker.problem)

    def begin(self, start_at: float) -> None:
        """Every worker starts its trainers' clocks at ``start_at`` (Unix seconds)."""
        for worker in self._workers:
            worker.channel.send(("start", start_at))

    def failures(self) -> int:
        """Trainers known to have failed so far (their run ended early, or their worker died)."""
        return sum(
            len(w.job.members) if w.problem is not None else w.finished for w in self._workers
        )

    async def stop(self, timeout: float = STOP_TIMEOUT + REPORT_GRACE) -> list[TrainerReport]:
        """Stop every worker's trainers and collect one report per trainer, in job order."""
        for worker in self._workers:
            worker.channel.send(("stop",))
        pending = [asyncio.create_task(w.done.wait()) for w in self._workers]
        _, late = await asyncio.wait(pending, timeout=timeout) if pending else (set(), set())
        for task in late:
            task.cancel()
        for worker in self._workers:
            worker.give_up(
                f"worker {worker.job.number} did not report within {timeout:g} s of the stop;"
                " killed"
            )
        await self.close()
        reports = []
        for worker in self._workers:
            if worker.reports is not None:
                reports.extend(worker.reports)
                continue
            problem = worker.problem or worker.describe_exit()
            for member in worker.job.members:
                s = member.settings
                reports.append(TrainerReport.failed(s.ai_id, s.specialization, s.engine, problem))
        return reports

    def lag(self) -> list[dict[str, Any]]:
        """Each reporting worker's loop lateness (:mod:`kernal.harness.lag`), once stopped."""
        return [worker.lag for worker in self._workers if worker.lag is not None]

    async def close(self) -> None:
        """Kill what is still running and release the pipes (also after an error)."""
        for worker in self._workers:
            if worker.process.is_alive() and worker.reports is None:
                worker.process.kill()
        await asyncio.gather(*(reap(w.process, 5.0) for w in self._workers))
        for task in self._listeners:
            task.cancel()
        await asyncio.gather(*self._listeners, return_exceptions=True)
        for worker in self._workers:
            worker.channel.close()


# ---------------------------------------------------------------------- in a worker process


def worker_main(job: WorkerJob, conn: Connection) -> None:
    """A worker process: build the job's trainers, run them from the parent's start instant
    until it says stop (or goes away), send their reports. On uvloop if it is installed (a
    worker's many connections are its whole job)."""
    runtime.run(_work(job, conn))


async def _work(job: WorkerJob, conn: Connection) -> None:
    channel = Channel(conn)
    if job.members:
        # One trainer built and dropped while the hub starts: the engine's imports and data
        # caches warm up now rather than after the hub is ready (it does not connect).
        with contextlib.suppress(Exception):
            Trainer(job.members[0].settings)
    try:
        _, host, port = await channel.recv()  # ("hub", host, port)
    except ChannelClosed:  # the parent is gone before the run began
        return
    crew = Crew(job.members, (host, port))
    channel.send(("ready",))

    def finished(report: TrainerReport) -> None:
        channel.send(("finished", report.ai_id, report.error))

    try:
        # The trainers and their data are built: they live as long as the process, and the
        # collector's walks of them were most of a big run's pauses (runtime.long_lived).
        with runtime.long_lived():
            message = await channel.recv()
            if message[0] == "start":
                crew.start(message[1], finished)
                await channel.recv()  # ("stop",)
    except ChannelClosed:  # the parent is gone: nobody to report to, just stop
        with contextlib.suppress(Exception):
            await crew.stop()
        return
    reports = await crew.stop()
    channel.send(("reports", [report.to_json() for report in reports], crew.lag.figures()))
