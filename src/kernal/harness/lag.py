"""How late a process' event loop wakes up: the harness's measure of whether the machine kept
up with the speed it was asked for.

A scenario runs on the trainers' clocks (``--speed K`` makes a scenario second 1/K real
seconds), but a busy event loop wakes every sleeper late. When the lateness reaches a scenario
second, trainers lose scenario time they never get back (a stress test's trainers then end
with too little shared), and the report should say that the machine, not the hub or the
trainers, fell behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

TICK = 0.05  # real seconds between two wake-ups of the meter
MAX_SAMPLES = 100_000  # about 80 minutes of wake-ups; later ones are not kept
NOTICEABLE = 0.05  # real seconds: lateness below this is warned about at no speed
# Scenario seconds of lateness (worst 1% of wake-ups) that the warning starts at: half the
# reference trainer's 10 s between two shares. Measured, stress_test with 1,000 simulated
# trainers at --speed 5 on 2 cores: 0.65-1.23 s (3-6 scenario seconds) where every trainer
# succeeded, 1.1-4.7 s where many ran out of scenario time.
BEHIND = 5.0


@dataclass
class LagMeter:
    """Sleeps :data:`TICK` at a time in the running loop and records how late each wake-up
    came. :meth:`start` it in the loop to measure, :meth:`stop` it, then :meth:`figures`."""

    tick: float = TICK
    lateness: list[float] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._measure(), name="lag-meter")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _measure(self) -> None:
        while len(self.lateness) < MAX_SAMPLES:
            due = time.monotonic() + self.tick
            await asyncio.sleep(self.tick)
            self.lateness.append(max(0.0, time.monotonic() - due))

    def figures(self) -> dict[str, Any]:
        """``samples`` and the ``p50``, ``p99`` and ``max`` lateness, in real seconds."""
        return lag_figures(self.lateness)


def lag_figures(lateness: list[float]) -> dict[str, Any]:
    """:meth:`LagMeter.figures` of these wake-ups (all zero for none)."""
    ordered = sorted(lateness)

    def quantile(q: float) -> float:
        if not ordered:
            return 0.0
        return round(ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)], 4)

    return {
        "samples": len(ordered),
        "p50": quantile(0.5),
        "p99": quantile(0.99),
        "max": round(ordered[-1], 4) if ordered else 0.0,
    }


def fell_behind(per_process: list[dict[str, Any]], speed: float) -> str | None:
    """A warning when some trainer process' loop woke up :data:`BEHIND` scenario seconds late
    or more (and at least :data:`NOTICEABLE`) in its worst 1% of wake-ups (None: the machine
    kept up)."""
    if not per_process:
        return None
    worst = max(per_process, key=lambda figures: float(figures.get("p99", 0.0)))
    p99 = float(worst.get("p99", 0.0))
    if p99 * speed < BEHIND or p99 < NOTICEABLE:
        return None
    return (
        f"the trainers' processes fell behind the clock: their event loops woke up to "
        f"{p99:.2f} s late (worst 1%; at most {float(worst.get('max', 0.0)):.2f} s), "
        f"{p99 * speed:.0f} scenario seconds at --speed {speed:g}, so trainers lost scenario "
        "time and may not have finished; lower --speed, give the run more cores (--workers), "
        "or run on a quieter machine"
    )
