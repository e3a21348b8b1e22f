"""Per-peer reputation from measured outcomes: an exponential moving average, with a memory of
the worst ones (strikes)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from kernal.protocol.messages import AiInfo

MAX_HISTORY = 100_000  # updates kept for charts; a long-running trainer stops recording there
# A measured outcome below this is a strike: the partner's model cost our validation data more
# than 0.15 of the probability of the true label (outcome = 1 + dp / 0.2). Honest merges,
# measured in the simulator: none below 0.7 on digits at dirichlet:0.5; on waves 0.6% (the
# trigger scan refusing a model); at dirichlet:0.1, 3.5% (digits) and 11% (waves). Those are
# absolute outcomes: the gate now measures them beyond the receiver's typical cost
# (kernal.learning.merge.typical_change), or beyond one tau for a partner right on the rows
# its merge would move (COMPETENT_ALLOWANCE there), and an honest partner strikes far less.
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
    # The hub's latest credibility of peers it doubts below ``initial``: a cap on their trust.
    hub_low: dict[str, float] = field(default_factory=dict)
    hub_caps: list[tuple[float, str, float]] = field(default_factory=list)  # (time, peer, trust)

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
        score = self.scores.get(peer, self.initial)
        return min(score, self.hub_low[peer]) if peer in self.hub_low else score

    def struck(self, peer: str) -> bool:
        """Whether ``peer`` has a strike not yet lifted by clean interactions."""
        strikes = self.strikes.get(peer, 0)
        return strikes > 0 and self.clean_since_strike.get(peer, 0) < FORGIVE_AFTER * strikes

    def seed_all(self, ais: Iterable[AiInfo], own: str) -> None:
        """:meth:`seed` every AI of a ``STATE`` or ``AIS`` list but ``own``."""
        for ai in ais:
            if ai.ai_id != own:
                self.seed(ai.ai_id, ai.reputation, ai.credibility)

    def seed(self, peer: str, standing: float | None, credibility: float | None = None) -> None:
        """Take the hub's latest word on ``peer`` (from ``STATE``, ``AI_JOINED``, ``AIS`` or a
        relayed request). A peer we have not worked with starts from its ``standing``, but
        never above ``initial``: a bad record follows an AI to every trainer it meets (no
        whitewashing by reconnecting), while a good one must still be earned here.

        ``credibility`` (sent by the hub only when below 1): how far the peer's own verdicts on
        others agree with what their other raters measured (``kernal.hub.credibility``). While
        it is below ``initial`` it caps the peer's trust here too, however well it treated us:
        an AI caught contradicting everyone (a clique rating honest peers 0) is distrusted
        even where it never attacked. The standing alone does not cap a known peer: it also
        falls when a partner's data is merely unlike its raters' (non-IID), which our own
        measurements of the peer judge better. A credibility back at ``initial`` or above (or
        not sent) lifts the cap."""
        if standing is None and credibility is None:
            return
        before = self.get(peer)
        if credibility is not None and credibility < self.initial:
            self.hub_low[peer] = max(0.0, credibility)
        else:
            self.hub_low.pop(peer, None)
        if peer in self.scores:
            if self.get(peer) < before and len(self.hub_caps) < MAX_HISTORY:
                self.hub_caps.append((time.time(), peer, self.get(peer)))
        elif standing is not None:
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
        self.scores[peer] = min(average, self.strike_cap) if self.struck(peer) else average
        self.interactions[peer] = self.interactions.get(peer, 0) + 1
        score = self.get(peer)
        if len(self.history) < MAX_HISTORY:
            self.history.append((time.time(), peer, score))
        return score

    def snapshot(self) -> dict[str, float]:
        return {peer: round(self.get(peer), 4) for peer in sorted(self.scores)}
