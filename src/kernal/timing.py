"""Scenario time. Every periodic behaviour (5 s ticks, 30 s stats, 3-minute scenarios) is written
in scenario seconds and runs through a :class:`Clock`, so tests and the harness can run it faster
than real time with a speed factor."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Clock:
    """Converts scenario seconds to real seconds: ``speed=10`` runs ten times faster."""

    speed: float = 1.0

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed must be positive, got {self.speed}")

    def real(self, scenario_seconds: float) -> float:
        return scenario_seconds / self.speed

    async def sleep(self, scenario_seconds: float) -> None:
        await asyncio.sleep(self.real(scenario_seconds))

    @staticmethod
    def now() -> float:
        """Wall-clock Unix seconds, as stored in the database (never scaled)."""
        return time.time()
