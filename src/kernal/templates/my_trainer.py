#!/usr/bin/env python3
"""My kernal trainer: a personal copy to hack on. It joins any kernal hub like the reference one.

Run it with any Python where kernal is installed (``pip install /path/to/kernal`` or a wheel)::

    python3 my_trainer.py AI_Node_1 networking secret1 --hub 127.0.0.1:6000

The trainer around this engine does the networking, the timing and the collaboration
protocol: it connects and authenticates, shares 3 patterns and 2 components, asks
complementary peers to collaborate every 5 s, accepts by reputation, and reports progress. This
file decides *what* is shared and built. Everything marked ``TODO: customize`` is yours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
from typing import Any

from kernal import (
    Artifact,
    Assessment,
    CollaborationTask,
    Engine,
    EngineContext,
    Trainer,
    TrainerSettings,
)
from kernal.config import parse_hub_url


class MyEngine(Engine):
    """What this trainer learns, shares and builds."""

    name = "my_engine"

    def __init__(self, context: EngineContext) -> None:
        super().__init__(context)
        self.rng = random.Random(context.seed)
        self.seen: list[dict[str, Any]] = []  # what peers shared with us

    async def train(self) -> dict[str, Any]:
        # TODO: customize: load your data, train your model. Runs once, before sharing starts.
        await asyncio.sleep(0)
        return {"note": "replace MyEngine.train with your own training"}

    def make_pattern(self, index: int) -> Artifact:
        # TODO: customize: what you learned, as any JSON object (the hub stores and relays it).
        return Artifact({"kind": "my_pattern", "round": index, "value": self.rng.random()})

    def make_component(self, index: int) -> Artifact:
        # TODO: customize: something you built, with your own quality estimate (0..1).
        return Artifact({"kind": "my_component", "round": index}, quality_score=0.8)

    def build_for_collaboration(self, task: CollaborationTask) -> Artifact:
        feature = self._generate_feature_for_request(task)
        return Artifact(feature, quality_score=0.9)

    def _generate_feature_for_request(self, task: CollaborationTask) -> dict[str, Any]:
        """Replace this stub with your own code-generation or pattern-sharing logic.

        Called when a collaboration you work on reaches 100%; what it returns is sent to your
        partner (``task.partner``, a ``task.partner_specialization``) as the result. The
        partner's request says what it offered and sought (``task.request``).
        """
        # TODO: customize: call your model, generate code, combine what peers shared...
        return {
            "kind": "collaborative_feature",
            "authors": sorted([self.context.ai_id, task.partner]),
            "combines": [self.context.specialization, task.partner_specialization],
            "seeking": task.request.seeking_expertise,
            "built_from_patterns_seen": len(self.seen),
        }

    async def assess(self, task: CollaborationTask, data: dict[str, Any]) -> Assessment | None:
        # TODO: customize: measure what a partner sent you (the reference learning engine
        # merges the partner's model and scores it on private validation data). None: the
        # partner is judged only by whether the collaboration completes.
        return None

    def observe_pattern(self, sender: str, pattern_id: str, data: dict[str, Any]) -> None:
        # TODO: customize: learn from what others share.
        self.seen.append(data)

    def summary(self) -> dict[str, Any]:
        return {"patterns_seen": len(self.seen)}


def main() -> None:
    parser = argparse.ArgumentParser(description="My kernal trainer.")
    parser.add_argument("ai_id")
    parser.add_argument("specialization")
    parser.add_argument("token")
    parser.add_argument(
        "--hub", default="127.0.0.1:6000", help="hub address HOST:PORT, or tls://HOST:PORT"
    )
    parser.add_argument("--ca", default=None, help="PEM CA that signed the hub's certificate")
    parser.add_argument("--speed", type=float, default=1.0, help="run K times faster")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--duration", type=float, default=None, help="stop after N seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    hub = parse_hub_url(args.hub)
    settings = TrainerSettings(
        ai_id=args.ai_id,
        specialization=args.specialization,
        token=args.token,
        hub_host=hub.host,
        hub_port=hub.port,
        tls=hub.tls or args.ca is not None,
        tls_ca=args.ca,
        speed=args.speed,
        seed=args.seed,
    )
    trainer = Trainer(settings, engine_class=MyEngine)
    report = asyncio.run(trainer.run(args.duration))
    print(json.dumps(report.results(), indent=2))


if __name__ == "__main__":
    main()
