"""``kernal harness SCENARIO``: a hub and a scenario's trainers, and a JSON report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kernal.cli.common import (
    EngineOption,
    LogJsonOption,
    LogLevelOption,
    SpeedOption,
    engine_options,
    fail,
    run_until_interrupted,
)
from kernal.cli.trainer import DataFlag, MergeFlag, SplitFlag
from kernal.logs import setup_logging


def harness(
    scenario: Annotated[str, typer.Argument(help="basic, multi_spec, stress_test or sequential.")],
    speed: SpeedOption = 1.0,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON report here.")] = None,
    trainers: Annotated[
        int | None, typer.Option(min=1, help="Number of trainers (stress_test, sequential).")
    ] = None,
    db: Annotated[
        str | None, typer.Option(help="Database to use (default: a temporary one).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for every trainer.")] = 0,
    dashboard: Annotated[
        bool, typer.Option(help="Serve the dashboard on a free port while it runs.")
    ] = False,
    engine: Annotated[str, typer.Option(help="Trainers' engine: learning or simulated.")] = (
        "learning"
    ),
    option: EngineOption = None,
    split: SplitFlag = None,
    merge: MergeFlag = None,
    data: DataFlag = None,
    attack: Annotated[
        str, typer.Option(help="adversarial: label_flip, sign_flip, noise, scale, ...")
    ] = "label_flip",
    malicious_fraction: Annotated[
        float, typer.Option(min=0, max=1, help="adversarial: share of poisoners.")
    ] = 0.3,
    plot: Annotated[Path | None, typer.Option(help="Write PNG charts into this folder.")] = None,
    log_level: LogLevelOption = "WARNING",
    log_json: LogJsonOption = False,
) -> None:
    """Run a scenario with its own hub and trainers and print a JSON report."""
    from kernal.engines.base import UnknownEngineError
    from kernal.harness.runner import RunOptions, run_scenario
    from kernal.harness.scenarios import SCENARIOS, Adversaries

    setup_logging(level=log_level, json_lines=log_json)
    if scenario not in SCENARIOS:
        raise fail(f"unknown scenario {scenario!r}; choose from {', '.join(SCENARIOS)}")
    chosen = SCENARIOS[scenario]
    try:
        options = RunOptions(
            engine=engine,
            engine_options=engine_options(
                engine, {"split": split, "merge": merge, "data": data}, option
            ),
            adversaries=Adversaries(attack, malicious_fraction),
            plot=plot,
        )
        if chosen.has_adversaries:  # every poisoner's options must pass the engine too
            engine_options(engine, {**options.engine_options, "behaviour": attack}, None)
    except (ValueError, UnknownEngineError) as exc:
        raise fail(str(exc)) from None
    report = run_until_interrupted(
        run_scenario(
            chosen,
            speed=speed,
            trainers=trainers,
            db=db,
            seed=seed,
            dashboard=dashboard,
            options=options,
        )
    )
    text = json.dumps(report, indent=2)
    typer.echo(text)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
    if not all(t["success"] for t in report["trainers"].values()):
        raise typer.Exit(1)
