"""The simulated engine: the prototype's behaviour, deterministic by seed.

It produces plausible pattern and component records without learning anything, and looks at
nothing others share (so its trainer does not follow their shares: a thousand of them stay
cheap). It exists for protocol tests, demos and stress tests; real learning lives in other
engines.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kernal.engines.base import Artifact, CollaborationTask, Engine


class SimulatedEngine(Engine):
    name = "simulated"

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
