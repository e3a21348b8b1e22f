"""The scenarios the harness can run. Durations and delays are scenario seconds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from kernal.trainer.capabilities import SPECIALIZATIONS


@dataclass(frozen=True)
class TrainerSpec:
    ai_id: str
    specialization: str
    join_at: float = 0.0  # scenario seconds after the start
    behaviour: str = "honest"  # learning engine: an adversary's attack


@dataclass(frozen=True)
class Adversaries:
    """Who attacks in a scenario that has poisoners: this fraction of the trainers, with this
    attack (the last ones, so the first trainers are always honest)."""

    attack: str = "label_flip"
    fraction: float = 0.3


@dataclass(frozen=True)
class Scenario:
    key: str
    name: str
    default_trainers: int
    build: Callable[[int], list[TrainerSpec]]
    duration: Callable[[int], float]
    sample_every: float = 30.0
    has_adversaries: bool = False

    def trainers(
        self, count: int | None = None, adversaries: Adversaries | None = None
    ) -> list[TrainerSpec]:
        specs = self.build(count or self.default_trainers)
        if not self.has_adversaries:
            return specs
        adversaries = adversaries or Adversaries()
        bad = round(len(specs) * adversaries.fraction)
        return [
            replace(spec, behaviour=adversaries.attack) if n >= len(specs) - bad else spec
            for n, spec in enumerate(specs)
        ]


_SPECS = list(SPECIALIZATIONS)


def _basic(_: int) -> list[TrainerSpec]:
    return [TrainerSpec("AI_Node_1", "networking"), TrainerSpec("AI_Node_2", "graphics")]


def _multi_spec(_: int) -> list[TrainerSpec]:
    return [
        TrainerSpec("AI_Node_1", "networking"),
        TrainerSpec("AI_Node_2", "graphics"),
        TrainerSpec("AI_Node_3", "security"),
        TrainerSpec("AI_WindowManager", "window_manager"),
    ]


def _stress(count: int) -> list[TrainerSpec]:
    return [TrainerSpec(f"AI_Stress_{n:03d}", _SPECS[n % len(_SPECS)]) for n in range(count)]


SEQUENTIAL_GAP = 20.0


def _sequential(count: int) -> list[TrainerSpec]:
    return [
        TrainerSpec(f"AI_Node_{n + 1}", _SPECS[n % len(_SPECS)], join_at=n * SEQUENTIAL_GAP)
        for n in range(count)
    ]


def _learners(count: int) -> list[TrainerSpec]:
    return [TrainerSpec(f"AI_Node_{n + 1}", _SPECS[n % len(_SPECS)]) for n in range(count)]


SCENARIOS: dict[str, Scenario] = {
    "basic": Scenario("basic", "Basic Collaboration", 2, _basic, lambda _: 180.0),
    "multi_spec": Scenario("multi_spec", "Multi-Specialization", 4, _multi_spec, lambda _: 300.0),
    "stress_test": Scenario("stress_test", "Stress Test", 50, _stress, lambda _: 120.0),
    # Every trainer gets 90 s after the last one joins, enough to share all it planned.
    "sequential": Scenario(
        "sequential",
        "Sequential Joining",
        5,
        _sequential,
        lambda n: (n - 1) * SEQUENTIAL_GAP + 90.0,
    ),
    # Ten trainers on non-IID shards of the digits, learning together (learning engine). Ten
    # minutes: about 15 merges per trainer, where accuracy levels off (measured: 5 minutes
    # ended 1 point lower).
    "learning": Scenario("learning", "Collaborative Learning", 10, _learners, lambda _: 600.0),
    "adversarial": Scenario(
        "adversarial",
        "Adversarial Learning",
        10,
        _learners,
        lambda _: 600.0,
        has_adversaries=True,
    ),
}
