"""Runs a scenario: its own hub (free ports, a temporary database unless told otherwise), its
trainers over real TCP, hub stats sampled every 30 scenario seconds, and a JSON report."""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kernal.config import HubSettings, TrainerSettings
from kernal.harness.charts import write_charts
from kernal.harness.learning_report import learning_section
from kernal.harness.scenarios import Adversaries, Scenario, TrainerSpec
from kernal.hub.auth import GENERATED_TOKEN_ITERATIONS, generate_token, hash_token
from kernal.hub.server import Hub
from kernal.hub.status import HubStatus
from kernal.serve import build_store, start_service
from kernal.storage import CollaborationStatus
from kernal.timing import Clock
from kernal.trainer.report import TrainerReport
from kernal.trainer.trainer import Trainer

log = logging.getLogger("kernal.harness")

# The original report's keys, in its order.
SAMPLED = ("shared_patterns", "shared_components", "connected_ais", "active_collaborations")
STOP_TIMEOUT = 30.0  # real seconds the trainers get to stop at the end of a scenario


@dataclass(frozen=True)
class RunOptions:
    """How the trainers of a run work: their engine and its options (as ``--option`` gives
    them), who attacks in a scenario that has poisoners, charts, the trust threshold."""

    engine: str = "learning"
    engine_options: Mapping[str, Any] = field(default_factory=dict)
    adversaries: Adversaries = field(default_factory=Adversaries)
    plot: Path | None = None
    trust_threshold: float = 0.5

    def options_for(self, spec: TrainerSpec) -> dict[str, Any]:
        """The engine options of one trainer: the run's, plus its attack if it is a poisoner."""
        options = dict(self.engine_options)
        if spec.behaviour != "honest":
            options["behaviour"] = spec.behaviour
        return options


async def run_scenario(
    scenario: Scenario,
    *,
    speed: float = 1.0,
    trainers: int | None = None,
    db: str | None = None,
    seed: int = 0,
    dashboard: bool = False,
    options: RunOptions | None = None,
) -> dict[str, Any]:
    """Run ``scenario`` and return its report (see docs/harness.md for the shape)."""
    options = options or RunOptions()
    with tempfile.TemporaryDirectory(prefix="kernal-harness-") as tmp:
        db_target = db or str(Path(tmp) / "hub_data.db")
        settings = HubSettings(
            port=0, dashboard_port=0 if dashboard else None, db=db_target, speed=speed
        )
        specs = scenario.trainers(trainers, options.adversaries)
        # Tokens first, so the hub starts with them (and never in demo mode).
        tokens = await _register(db_target, specs)
        service = await start_service(settings)
        try:
            return await _run(service.hub, scenario, specs, tokens, seed, options)
        finally:
            await service.stop()


async def _register(db: str, specs: list[TrainerSpec]) -> dict[str, str]:
    tokens = {spec.ai_id: generate_token() for spec in specs}
    hashes = [hash_token(token, iterations=GENERATED_TOKEN_ITERATIONS) for token in tokens.values()]
    now = Clock.now()
    store = build_store(db)
    await store.open()
    try:
        for ai_id, token_hash in zip(tokens, hashes, strict=True):
            await store.set_token_hash(ai_id, token_hash, now)
    finally:
        await store.close()
    return tokens


async def _run(
    hub: Hub,
    scenario: Scenario,
    specs: list[TrainerSpec],
    tokens: dict[str, str],
    seed: int,
    options: RunOptions,
) -> dict[str, Any]:
    clock = hub.clock
    count = len(specs)
    duration = scenario.duration(count)
    host, port = hub.address
    trainers = {
        spec.ai_id: Trainer(
            TrainerSettings(
                ai_id=spec.ai_id,
                specialization=spec.specialization,
                token=tokens[spec.ai_id],
                hub_host=host,
                hub_port=port,
                speed=clock.speed,
                seed=seed,
                trust_threshold=options.trust_threshold,
                engine=options.engine,
                engine_options=options.options_for(spec),
            )
        )
        for spec in specs
    }
    loop = asyncio.get_running_loop()
    start_time = time.time()
    started = loop.time()

    async def until(scenario_seconds: float) -> None:
        # Anchored to the start, so sampling does not drift by the time each sample takes.
        await asyncio.sleep(max(0.0, started + clock.real(scenario_seconds) - loop.time()))

    async def run_trainer(spec: TrainerSpec) -> TrainerReport:
        await until(spec.join_at)
        return await trainers[spec.ai_id].run()

    tasks = {spec.ai_id: asyncio.create_task(run_trainer(spec)) for spec in specs}
    log.info(
        "Scenario %s: %d trainers for %g s at speed %g", scenario.key, count, duration, clock.speed
    )
    hub_stats: dict[str, dict[str, int]] = {}
    try:
        mark = scenario.sample_every
        while mark < duration:
            await until(mark)
            hub_stats[f"t_{mark:g}s"] = _sampled(await hub.status())
            mark += scenario.sample_every
        await until(duration)
        final = await _final_stats(hub)
    finally:
        for trainer in trainers.values():
            trainer.stop()
        # Bounded, so one trainer that does not stop cannot hang the whole run.
        _, stuck = await asyncio.wait(tasks.values(), timeout=STOP_TIMEOUT)
        for task in stuck:
            task.cancel()
        results = await asyncio.gather(*tasks.values(), return_exceptions=True)
    end_time = time.time()
    reports: dict[str, TrainerReport] = {}
    for spec, result in zip(specs, results, strict=True):
        reports[spec.ai_id] = (
            TrainerReport.failed(spec.ai_id, spec.specialization, options.engine, repr(result))
            if isinstance(result, BaseException)
            else result
        )
    report_trainers = {ai_id: _trainer_entry(report) for ai_id, report in reports.items()}
    report: dict[str, Any] = {
        "scenario": scenario.name,
        "scenario_key": scenario.key,
        "speed": clock.speed,
        "scenario_duration": duration,
        "start_time": start_time,
        "trainers": report_trainers,
        "hub_stats": hub_stats,
        "final_stats": final,
        "end_time": end_time,
        "duration": round(end_time - start_time, 3),
    }
    learning = learning_section(reports, options.trust_threshold)
    if learning is not None:
        report["learning"] = learning
        if options.plot is not None:
            charts = write_charts(
                reports,
                started=start_time,
                speed=clock.speed,
                threshold=options.trust_threshold,
                out=options.plot,
            )
            report["charts"] = [str(path) for path in charts]
    return report


def _trainer_entry(report: TrainerReport) -> dict[str, Any]:
    """A trainer's entry in the harness report: its results, a few learning figures lifted to
    the top, and whether it succeeded."""
    results = report.results()
    for key in ("behaviour", "local_only_accuracy", "final_accuracy"):
        if key in report.engine_summary:
            results[key] = report.engine_summary[key]
    return {"results": results, "success": report.succeeded}


def _sampled(status: HubStatus) -> dict[str, int]:
    return {key: int(getattr(status, key)) for key in SAMPLED}


async def _final_stats(hub: Hub) -> dict[str, int]:
    final = _sampled(await hub.status())
    for status in (CollaborationStatus.COMPLETED, CollaborationStatus.FAILED):
        records = await hub.store.list_collaborations(status, limit=1_000_000)
        final[f"collaborations_{status.value}"] = len(records)
    return final
