"""Per-peer reputation from measured outcomes, by exponential moving average."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

MAX_HISTORY = 100_000  # updates kept for charts; a long-running trainer stops recording there


@dataclass
class ReputationBook:
    """``new = alpha * outcome + (1 - alpha) * old``; unknown peers start at ``initial``.

    Outcomes are in [0, 1]: 1 for a completed collaboration, 0 for a failed one or a partner lost
    mid-way. The book lives as long as the trainer, so a peer that reconnects under the same id
    keeps its history.
    """

    alpha: float = 0.3
    initial: float = 0.5
    scores: dict[str, float] = field(default_factory=dict)
    interactions: dict[str, int] = field(default_factory=dict)
    history: list[tuple[float, str, float]] = field(default_factory=list)  # (time, peer, score)
    seeded: dict[str, float] = field(default_factory=dict)  # starting values from the hub

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError(f"reputation alpha must be in (0, 1], got {self.alpha}")
        if not 0 <= self.initial <= 1:
            raise ValueError(f"initial reputation must be in [0, 1], got {self.initial}")

    def get(self, peer: str) -> float:
        return self.scores.get(peer, self.initial)

    def seed(self, peer: str, standing: float | None) -> None:
        """Start a peer we have not worked with from the hub's ``standing``, but never above
        ``initial``: a bad record follows an AI to every trainer it meets (no whitewashing by
        reconnecting), while a good one must still be earned here. No-op for a known peer."""
        if standing is not None and peer not in self.scores:
            self.scores[peer] = min(self.initial, max(0.0, min(1.0, standing)))
            self.seeded[peer] = self.scores[peer]

    def update(self, peer: str, outcome: float) -> float:
        outcome = min(1.0, max(0.0, outcome))
        score = self.alpha * outcome + (1 - self.alpha) * self.get(peer)
        self.scores[peer] = score
        self.interactions[peer] = self.interactions.get(peer, 0) + 1
        if len(self.history) < MAX_HISTORY:
            self.history.append((time.time(), peer, score))
        return score

    def snapshot(self) -> dict[str, float]:
        return {peer: round(score, 4) for peer, score in sorted(self.scores.items())}
