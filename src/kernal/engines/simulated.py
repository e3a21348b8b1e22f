"""The simulated engine: the prototype's behaviour, deterministic by seed.

It produces plausible pattern and component records without learning anything. It exists for
protocol tests and demos; real learning lives in other engines.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kernal.engines.base import Artifact, CollaborationTask, Engine


class SimulatedEngine(Engine):
    name = "simulated"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.patterns_seen = 0
        self.components_seen = 0

    async def train(self) -> dict[str, Any]:
        await asyncio.sleep(0)  # a real engine trains here; the simulation only yields
        rng = self.context.rng
        return {"epochs": 3, "loss": round(rng.uniform(0.05, 0.3), 4)}

    def make_pattern(self, index: int) -> Artifact:
        rng = self.context.rng
        return Artifact(
            {
                "kind": "kernel_pattern",
                "specialization": self.context.specialization,
                "round": index,
                "features": [round(rng.gauss(0, 1), 4) for _ in range(8)],
                "confidence": round(rng.uniform(0.6, 0.99), 3),
            }
        )

    def make_component(self, index: int) -> Artifact:
        rng = self.context.rng
        spec = self.context.specialization
        return Artifact(
            {
                "kind": "os_component",
                "name": f"{spec}_module_{index}",
                "interfaces": [f"{spec}.init", f"{spec}.handle"],
                "language": "c",
                "lines_of_code": rng.randint(50, 400),
            },
            quality_score=round(rng.uniform(0.6, 0.95), 3),
        )

    def build_for_collaboration(self, task: CollaborationTask) -> Artifact:
        rng = self.context.rng
        return Artifact(
            {
                "kind": "collaborative_feature",
                "authors": sorted([self.context.ai_id, task.partner]),
                "combines": [self.context.specialization, task.partner_specialization],
                "seeking": task.request.seeking_expertise,
            },
            quality_score=round(rng.uniform(0.7, 0.99), 3),
        )

    def observe_pattern(self, sender: str, pattern_id: str, data: dict[str, Any]) -> None:
        self.patterns_seen += 1

    def observe_component(
        self, sender: str, component_id: str, data: dict[str, Any], quality: float | None
    ) -> None:
        self.components_seen += 1

    def summary(self) -> dict[str, Any]:
        return {"patterns_seen": self.patterns_seen, "components_seen": self.components_seen}
