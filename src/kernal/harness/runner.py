"""Runs a scenario: its own hub (free ports, a temporary database unless told otherwise), its
trainers over real TCP, hub stats sampled every 30 scenario seconds, and a JSON report.

By default the hub runs in a process of its own and the trainers in worker processes, one per
core, dealt round-robin (``workers=0``: everything in this event loop). Every worker starts its
trainers' clocks at one instant the runner chooses once all of them are ready, so ``join_at``
and the end of the scenario mean the same for every trainer. Setting ``stop`` ends the run
early: the report then holds what happened so far, with ``"interrupted": true``.

The processes are spawned, so they import the caller's main module again: a script that calls
:func:`run_scenario` must do so under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kernal.config import HubSettings, TrainerSettings
from kernal.engines.learning import LearningEngine
from kernal.harness.charts import write_charts
from kernal.harness.crew import LocalFleet, Member
from kernal.harness.hubs import HarnessHub, HubProcess, LocalHub, new_tokens, register_tokens
from kernal.harness.lag import fell_behind
from kernal.harness.learning_report import centralized_accuracy, learning_section
from kernal.harness.processes import LogForwarder
from kernal.harness.report import sampled, summarize, trainer_entry
from kernal.harness.scenarios import Adversaries, Scenario, TrainerSpec
from kernal.harness.workers import WorkerPool, deal
from kernal.learning.models import DEFAULT_MODEL
from kernal.runtime import cancel_and_wait
from kernal.trainer import policy
from kernal.trainer.report import TrainerReport

log = logging.getLogger("kernal.harness")

START_MARGIN = 0.25  # real seconds between choosing the start instant and the start
PROGRESS_EVERY = 0.5  # real seconds between progress updates


@dataclass(frozen=True)
class RunOptions:
    """How the trainers of a run work: their engine and its options (as ``--option`` gives
    them), who attacks in a scenario that has poisoners, charts, the trust threshold."""

    engine: str = "learning"
    engine_options: Mapping[str, Any] = field(default_factory=dict)
    adversaries: Adversaries = field(default_factory=Adversaries)
    plot: Path | None = None
    trust_threshold: float = 0.5

    def options_for(
        self, spec: TrainerSpec, specs: list[TrainerSpec] | None = None
    ) -> dict[str, Any]:
        """The engine options of one trainer: the run's, plus its attack if it is a poisoner.
        With the learning engine and the run's ``specs``, also how many trainers there are
        (``peers``) and, for a sybil, who its colluders are."""
        options = dict(self.engine_options)
        if spec.behaviour != "honest":
            options["behaviour"] = spec.behaviour
        if self.engine == LearningEngine.name and specs is not None:
            options["peers"] = len(specs)
            if spec.behaviour == "sybil":
                sybils = [s.ai_id for s in specs if s.behaviour == "sybil"]
                options["colluders"] = ",".join(sybils)
        return options

    def warnings(self) -> list[str]:
        """What is wrong with these options that would not fail, but make a run meaningless."""
        trap = policy.threshold_trap(self.trust_threshold, TrainerSettings.initial_reputation)
        return [trap] if trap else []


class Watcher(Protocol):
    """Someone following a run as it goes (the command's progress bar)."""

    def begin(
        self, *, scenario: str, duration: float, speed: float, trainers: int, dashboard: str | None
    ) -> bool:
        """The clock starts: ``duration`` scenario seconds at ``speed``. True if it wants
        :meth:`advance` calls (they cost the hub a ``GET /status`` each)."""

    def advance(self, *, scenario_seconds: float, connected: int | None, failed: int) -> None:
        """Scenario time so far, trainers the hub has connected (None: unknown), failures."""

    def end(self) -> None:
        """The run is over (or interrupted)."""


class Fleet(Protocol):
    """The trainers of a run: in worker processes, or in this loop."""

    def __len__(self) -> int: ...

    async def start(self, address: tuple[str, int], stop: asyncio.Event) -> None: ...

    def begin(self, start_at: float) -> None: ...

    def failures(self) -> int: ...

    async def stop(self) -> list[TrainerReport]: ...

    def lag(self) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


async def run_scenario(
    scenario: Scenario,
    *,
    speed: float = 1.0,
    trainers: int | None = None,
    db: str | None = None,
    seed: int = 0,
    dashboard: bool = False,
    options: RunOptions | None = None,
    workers: int | None = None,
    watcher: Watcher | None = None,
    stop: asyncio.Event | None = None,
) -> dict[str, Any]:
    """Run ``scenario`` and return its report (see docs/harness.md for the shape). ``workers``:
    trainer processes (default one per core; 0 runs hub and trainers in this event loop).
    Raises :class:`~kernal.harness.hubs.HarnessError` if the hub does not start."""
    options = options or RunOptions()
    workers = default_workers() if workers is None else workers
    stop = stop or asyncio.Event()
    with tempfile.TemporaryDirectory(prefix="kernal-harness-") as tmp:
        db_target = db or str(Path(tmp) / "hub_data.db")
        specs = scenario.trainers(trainers, options.adversaries)
        tokens = new_tokens([spec.ai_id for spec in specs])
        members = [_member(spec, tokens, speed, seed, options, specs) for spec in specs]
        for warning in options.warnings():
            log.warning("Harness: %s", warning)
        async with contextlib.AsyncExitStack() as stack:
            logs = stack.enter_context(LogForwarder()) if workers else None
            fleet: Fleet = (
                LocalFleet(members) if logs is None else WorkerPool(deal(members, workers), logs)
            )
            hub: HarnessHub | None = None
            # The learning section's reference model, trained while the run starts up: neither
            # after the run nor during it, where it would take CPU time from the trainers.
            baseline = asyncio.create_task(_prepare_learning_section(options))

            async def shut_down() -> None:  # also after an error: trainers first, then the hub
                baseline.cancel()
                await asyncio.gather(baseline, return_exceptions=True)
                await fleet.close()
                if hub is not None:
                    await hub.stop()

            stack.push_async_callback(shut_down)
            if isinstance(fleet, WorkerPool):
                fleet.spawn()  # their interpreters start while the hub does
            # Tokens first, so the hub starts with them (and never in demo mode).
            await register_tokens(db_target, tokens)
            # The hub process always serves its dashboard: the runner reads GET /status.
            settings = HubSettings(
                port=0,
                dashboard_port=0 if dashboard or workers else None,
                db=db_target,
                speed=speed,
            )
            hub = (
                await LocalHub.start(settings)
                if logs is None
                else await HubProcess.start(settings, logs)
            )
            await fleet.start(hub.address, stop)
            await asyncio.wait([baseline])  # ready long since, as a rule
            return await _run(hub, fleet, scenario, specs, speed, options, watcher, stop)


def _member(
    spec: TrainerSpec,
    tokens: dict[str, str],
    speed: float,
    seed: int,
    options: RunOptions,
    specs: list[TrainerSpec],
) -> Member:
    settings = TrainerSettings(  # the hub's address is filled in once it listens
        ai_id=spec.ai_id,
        specialization=spec.specialization,
        token=tokens[spec.ai_id],
        speed=speed,
        seed=seed,
        trust_threshold=options.trust_threshold,
        engine=options.engine,
        engine_options=options.options_for(spec, specs),
    )
    return Member(settings, spec.join_at)


async def _run(
    hub: HarnessHub,
    fleet: Fleet,
    scenario: Scenario,
    specs: list[TrainerSpec],
    speed: float,
    options: RunOptions,
    watcher: Watcher | None,
    stop: asyncio.Event,
) -> dict[str, Any]:
    duration = scenario.duration(len(specs))
    start_time = time.time() + START_MARGIN
    fleet.begin(start_time)
    log.info(
        "Scenario %s: %d trainers for %g s at speed %g (%d worker processes)",
        scenario.key,
        len(specs),
        duration,
        speed,
        len(fleet),
    )

    def at(scenario_seconds: float) -> float:
        return start_time + scenario_seconds / speed

    progress = None
    if watcher is not None and watcher.begin(
        scenario=scenario.name,
        duration=duration,
        speed=speed,
        trainers=len(specs),
        dashboard=hub.dashboard_url,
    ):
        progress = asyncio.create_task(_follow(hub, fleet, watcher, start_time, speed, duration))
    hub_stats: dict[str, dict[str, Any]] = {}
    try:
        mark = scenario.sample_every
        interrupted = False
        while mark < duration and not interrupted:
            interrupted = await _sleep_until(at(mark), stop)
            if not interrupted:
                hub_stats[f"t_{mark:g}s"] = await _sample(hub)
            mark += scenario.sample_every
        interrupted = interrupted or await _sleep_until(at(duration), stop)
        if interrupted:
            log.warning("Interrupted: stopping the trainers and writing what there is")
        # At the end of the scenario, while the trainers are still connected.
        final = {**await _sample(hub), **await hub.collaboration_counts()}
        reports = {report.ai_id: report for report in await fleet.stop()}
    finally:
        await cancel_and_wait(progress)
        if watcher is not None:
            watcher.end()
    end_time = time.time()
    ordered = {spec.ai_id: reports[spec.ai_id] for spec in specs}
    lag = fleet.lag()
    warnings = options.warnings()
    if (behind := fell_behind(lag, speed)) is not None:
        log.warning("Harness: %s", behind)
        warnings.append(behind)
    report: dict[str, Any] = {
        "scenario": scenario.name,
        "scenario_key": scenario.key,
        "speed": speed,
        "scenario_duration": duration,
        "workers": len(fleet),
        "interrupted": interrupted,
        "warnings": warnings,
        "start_time": start_time,
        "trainers": {ai_id: trainer_entry(r) for ai_id, r in ordered.items()},
        "summary": summarize(list(ordered.values())),
        "loop_lag": lag,
        "hub_stats": hub_stats,
        "final_stats": final,
        "end_time": end_time,
        "duration": round(end_time - start_time, 3),
    }
    learning = learning_section(ordered, options.trust_threshold)
    if learning is not None:
        report["learning"] = learning
        if blind := learning["trigger_scan_blind"]:
            warnings.append(
                f"the trigger scan refuses nobody for {len(blind)} of"
                f" {len(learning['honest_trainers'])} honest trainers on this data (a stamp"
                " already sends most of their validation rows to one class): read"
                " mean_honest_backdoor_success beside mean_honest_backdoor_success_alone"
            )
        if options.plot is not None:
            charts = write_charts(
                ordered,
                started=start_time,
                speed=speed,
                threshold=options.trust_threshold,
                out=options.plot,
            )
            report["charts"] = [str(path) for path in charts]
    return report


async def _prepare_learning_section(options: RunOptions) -> None:
    if options.engine == LearningEngine.name:
        source = options.engine_options.get("data")
        kind = str(options.engine_options.get("model", DEFAULT_MODEL))
        with contextlib.suppress(Exception):  # learning_section() raises it again, in full
            await asyncio.to_thread(centralized_accuracy, source, model_kind=kind)


async def _sleep_until(wall_time: float, stop: asyncio.Event) -> bool:
    """Sleep until ``wall_time`` (Unix seconds); True if ``stop`` was set first. Anchored to
    the start, so sampling does not drift by the time each sample takes."""
    try:
        async with asyncio.timeout(max(0.0, wall_time - time.time())):
            await stop.wait()
        return True
    except TimeoutError:
        return stop.is_set()


async def _sample(hub: HarnessHub) -> dict[str, Any]:
    try:
        return sampled(await hub.status())
    except Exception as exc:  # an overloaded hub must not cost the whole report
        log.warning("Could not read the hub's status: %s", exc)
        return {"error": f"GET /status: {exc or type(exc).__name__}"}


async def _follow(
    hub: HarnessHub,
    fleet: Fleet,
    watcher: Watcher,
    start_time: float,
    speed: float,
    duration: float,
) -> None:
    while True:
        try:
            connected: int | None = (await hub.status()).connected_ais
        except Exception:
            connected = None
        elapsed = min(duration, max(0.0, (time.time() - start_time) * speed))
        watcher.advance(scenario_seconds=elapsed, connected=connected, failed=fleet.failures())
        await asyncio.sleep(PROGRESS_EVERY)
