"""Row 4, harness scale: the largest ``kernal harness stress_test`` one machine runs with every
trainer succeeding, and its wall time.

Each step is the real command as a user types it (``.venv/bin/kernal harness stress_test
--engine simulated --trainers N --speed 5 --out FILE``), in its own process: the harness runs
its hub in one process and the trainers in one worker process per core, so nothing is pinned.
N steps up and stops at the first run where a trainer did not succeed (or that timed out). Then
the learning engine: ``--trainers 50 --speed 20``. A trainer succeeds when its report says
``"success": true``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perf import procs


@dataclass(frozen=True)
class ScaleOptions:
    steps: tuple[int, ...] = (50, 100, 200, 500, 1000)
    speed: float = 5.0
    learning_trainers: int = 50
    learning_speed: float = 20.0
    timeout: float = 240.0  # real seconds per harness run (stress_test is 120 s / speed)


async def harness_run(
    workdir: Path, trainers: int, speed: float, engine: str, timeout: float
) -> dict[str, Any]:
    """One ``kernal harness stress_test``; success counts, wall time, exit status."""
    out = workdir / f"stress-{engine}-{trainers}.json"
    argv = [str(procs.VENV_BIN / "kernal"), "harness", "stress_test", "--engine", engine]
    argv += ["--trainers", str(trainers), "--speed", f"{speed:g}", "--out", str(out)]
    result: dict[str, Any] = {"engine": engine, "trainers": trainers, "speed": speed}
    log = workdir / f"stress-{engine}-{trainers}.log"
    started = time.monotonic()
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=sink,
            start_new_session=True,  # so a timeout can stop the whole process group
            preexec_fn=_unpinned,
        )
        try:
            result["exit_status"] = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            result["exit_status"] = None
            result["note"] = f"timed out after {timeout:g} s"
    result["wall_s"] = round(time.monotonic() - started, 2)
    try:
        report = json.loads(out.read_text())
    except (OSError, ValueError):
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        result.setdefault("note", "no report: " + " | ".join(tail)[:300])
        result["succeeded"] = 0
        return result
    runs = report.get("trainers", {})
    result["succeeded"] = sum(1 for t in runs.values() if t.get("success"))
    result["reported"] = len(runs)
    failed = [name for name, t in runs.items() if not t.get("success")]
    lag = report.get("loop_lag") or []
    if lag:  # whether the machine kept up with --speed (kernal.harness.lag)
        result["loop_lag_p99"] = max(float(figures.get("p99", 0.0)) for figures in lag)
    if failed:
        reasons = {_reason(runs[name]) for name in failed}
        note = f"{len(failed)} failed: " + "; ".join(sorted(reasons))[:300]
        if "loop_lag_p99" in result:
            note += f"; trainer loops up to {result['loop_lag_p99']:.2f} s late (p99)"
        result.setdefault("note", note)
    return result


def _reason(trainer: dict[str, Any]) -> str:
    results = trainer.get("results") or {}
    if results.get("auth_error"):
        return f"auth: {results['auth_error']}"
    if not results.get("connected", True):
        return "never connected"
    errors = results.get("hub_errors") or []
    if errors:
        return f"hub error: {str(errors[0])[:80]}"
    shared = (results.get("patterns_shared"), results.get("components_shared"))
    return f"shared {shared[0]} patterns, {shared[1]} components"


def _unpinned() -> None:
    # Children inherit the bench's load-core pin: give the harness both cores back.
    os.sched_setaffinity(0, procs.usable_cores() | {procs.SERVER_CORE, procs.LOAD_CORE})


def succeeded(result: dict[str, Any]) -> bool:
    return result.get("exit_status") == 0 and result.get("succeeded") == result["trainers"]


async def run(workdir: Path, options: ScaleOptions, log: Any) -> dict[str, Any]:
    """The simulated steps (stopping at the first failure), then the learning run."""
    steps: list[dict[str, Any]] = []
    for n in options.steps:
        log(f"harness: stress_test simulated {n} trainers at speed {options.speed:g}")
        steps.append(await harness_run(workdir, n, options.speed, "simulated", options.timeout))
        log(f"harness: {n}: {steps[-1]['succeeded']}/{n} succeeded in {steps[-1]['wall_s']} s")
        if not succeeded(steps[-1]):
            break
    passed = [s for s in steps if succeeded(s)]
    log(f"harness: stress_test learning {options.learning_trainers} trainers")
    learning = await harness_run(
        workdir, options.learning_trainers, options.learning_speed, "learning", options.timeout
    )
    log(f"harness: learning: {learning['succeeded']}/{learning['trainers']} succeeded")
    return {
        "steps": steps,
        "largest_passing": passed[-1] if passed else None,
        "learning": learning,
    }
