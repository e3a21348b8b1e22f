"""Per-peer reputation from measured outcomes: an exponential moving average, with a memory of
the worst ones (strikes)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

MAX_HISTORY = 100_000  # updates kept for charts; a long-running trainer stops recording there
# A measured outcome below this is a strike: the partner's model cost our validation data more
# than 0.15 of the probability of the true label (outcome = 1 + dp / 0.2). Honest merges,
# measured in the simulator: none below 0.7 on digits at dirichlet:0.5; on waves 0.6% (the
# trigger scan refusing a model); at dirichlet:0.1, 3.5% (digits) and 11% (waves).
STRIKE_OUTCOME = 0.25
# Clean measured interactions (outcome >= CLEAN_OUTCOME) that lift one strike, per strike.
FORGIVE_AFTER = 10
CLEAN_OUTCOME = 0.5


@dataclass
class ReputationBook:
    """``new = alpha * outcome + (1 - alpha) * old``; unknown peers start at ``initial``.

    Outcomes are in [0, 1]: 1 for a completed collaboration, 0 for a failed one or a partner lost
    mid-way. The book lives as long as the trainer, so a peer that reconnects under the same id
    keeps its history.

    **Strikes.** The average forgets: a peer trusted at 0.9 that poisons us once drops to 0.63,
    still above a 0.5 threshold, and one honest interaction repairs a drop below it, so a
    colluder taking turns stays trusted. A *measured* outcome (``update(..., measured=True)``:
    what the gate found of the partner's model, not a collaboration merely failing) below
    :data:`STRIKE_OUTCOME` is therefore a strike, and while a peer has one its reputation is at
    most ``initial * (1 - alpha)`` (what a stranger's first failure gives: 0.35 by default),
    whatever the average says. ``FORGIVE_AFTER`` (10) clean measured interactions per strike
    since the last one lift the cap; the average kept meanwhile is then the reputation again.
    """

    alpha: float = 0.3
    initial: float = 0.5
    scores: dict[str, float] = field(default_factory=dict)  # the reputation, cap included
    interactions: dict[str, int] = field(default_factory=dict)
    history: list[tuple[float, str, float]] = field(default_factory=list)  # (time, peer, score)
    seeded: dict[str, float] = field(default_factory=dict)  # starting values from the hub
    strikes: dict[str, int] = field(default_factory=dict)
    clean_since_strike: dict[str, int] = field(default_factory=dict)
    average: dict[str, float] = field(default_factory=dict)  # the EMA alone, without the cap

    def __post_init__(self) -> None:
        if not 0 < self.alpha <= 1:
            raise ValueError(f"reputation alpha must be in (0, 1], got {self.alpha}")
        if not 0 <= self.initial <= 1:
            raise ValueError(f"initial reputation must be in [0, 1], got {self.initial}")

    @property
    def strike_cap(self) -> float:
        """The most a peer with a standing strike is trusted."""
        return self.initial * (1 - self.alpha)

    def get(self, peer: str) -> float:
        return self.scores.get(peer, self.initial)

    def struck(self, peer: str) -> bool:
        """Whether ``peer`` has a strike not yet lifted by clean interactions."""
        strikes = self.strikes.get(peer, 0)
        return strikes > 0 and self.clean_since_strike.get(peer, 0) < FORGIVE_AFTER * strikes

    def seed(self, peer: str, standing: float | None) -> None:
        """Start a peer we have not worked with from the hub's ``standing``, but never above
        ``initial``: a bad record follows an AI to every trainer it meets (no whitewashing by
        reconnecting), while a good one must still be earned here. No-op for a known peer."""
        if standing is not None and peer not in self.scores:
            self.scores[peer] = min(self.initial, max(0.0, min(1.0, standing)))
            self.average[peer] = self.seeded[peer] = self.scores[peer]

    def update(self, peer: str, outcome: float, *, measured: bool = False) -> float:
        """Fold ``outcome`` in and return the new reputation. ``measured``: the outcome is the
        gate's measurement of the peer's model (it can strike, see the class docstring)."""
        outcome = min(1.0, max(0.0, outcome))
        average = self.alpha * outcome + (1 - self.alpha) * self.average.get(peer, self.get(peer))
        self.average[peer] = average
        if measured and outcome < STRIKE_OUTCOME:
            self.strikes[peer] = self.strikes.get(peer, 0) + 1
            self.clean_since_strike[peer] = 0
        elif measured and outcome >= CLEAN_OUTCOME and peer in self.strikes:
            self.clean_since_strike[peer] = self.clean_since_strike.get(peer, 0) + 1
        score = min(average, self.strike_cap) if self.struck(peer) else average
        self.scores[peer] = score
        self.interactions[peer] = self.interactions.get(peer, 0) + 1
        if len(self.history) < MAX_HISTORY:
            self.history.append((time.time(), peer, score))
        return score

    def snapshot(self) -> dict[str, float]:
        return {peer: round(score, 4) for peer, score in sorted(self.scores.items())}
