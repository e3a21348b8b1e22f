"""What a trainer's run produced, as one typed record that crosses process boundaries.

``results()`` is the JSON object a person reads (``kernal trainer`` prints it, the harness
report holds one per trainer); ``trust`` keeps the detail the harness needs to judge whom the
trainer came to trust, and when. ``to_json``/``from_json`` carry the whole report from a worker
process to the harness.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrustRecord:
    """The trainer's reputation book at the end of its run."""

    threshold: float
    initial: float
    scores: dict[str, float] = field(default_factory=dict)
    interactions: dict[str, int] = field(default_factory=dict)
    seeded: dict[str, float] = field(default_factory=dict)  # starting values from the hub
    history: list[tuple[float, str, float]] = field(default_factory=list)  # (time, peer, score)
    rejected_for_trust: dict[str, int] = field(default_factory=dict)  # peer -> requests refused
    # (time, peer, trust) each time the hub's standing lowered a known peer's trust
    hub_caps: list[tuple[float, str, float]] = field(default_factory=list)

    def met(self, peer: str) -> bool:
        """Worked with ``peer``, or refused it for low reputation (judged it either way)."""
        return peer in self.interactions or peer in self.rejected_for_trust

    def interactions_to_distrust(self, peer: str) -> int | None:
        """How many interactions with ``peer`` it took for it to fall below the threshold (0:
        it started below, seeded from the hub's record); None if it never did."""
        if self.seeded.get(peer, self.initial) < self.threshold:
            return 0
        # Interactions in time order; a cap from the hub's standing between two of them counts
        # at the number of interactions made so far.
        events = sorted(
            [(at, 0, score) for at, who, score in self.history if who == peer]
            + [(at, 1, score) for at, who, score in self.hub_caps if who == peer]
        )
        n = 0
        for _, kind, score in events:
            n += kind == 0
            if score < self.threshold:
                return n
        return None


@dataclass(frozen=True)
class TrainerReport:
    ai_id: str
    specialization: str
    engine: str
    connected: bool
    reconnects: int
    auth_error: str | None
    training: dict[str, Any]
    patterns_shared: int
    components_shared: int
    collaboration_requests_sent: int
    collaboration_requests_received: int
    requests_accepted: int
    requests_rejected: int
    rejections_received: int
    collaborations_completed: int
    collaborations_failed: int
    active_collaborations: int
    hub_errors: list[str]
    engine_summary: dict[str, Any]
    succeeded: bool
    """Connected and shared everything it planned to."""
    trust: TrustRecord
    error: str | None = None
    """Why the trainer did not succeed (never connected and why, refused, shared too little, a
    crash, a worker that died); None when it succeeded."""

    def results(self) -> dict[str, Any]:
        """The trainer's figures as people read them (the prototype's keys first)."""
        return {
            "specialization": self.specialization,
            "engine": self.engine,
            "connected": self.connected,
            "reconnects": self.reconnects,
            "auth_error": self.auth_error,
            "training": self.training,
            "patterns_shared": self.patterns_shared,
            "components_shared": self.components_shared,
            "collaboration_requests_sent": self.collaboration_requests_sent,
            "collaboration_requests_received": self.collaboration_requests_received,
            "requests_accepted": self.requests_accepted,
            "requests_rejected": self.requests_rejected,
            "rejections_received": self.rejections_received,
            "rejected_for_low_reputation": dict(sorted(self.trust.rejected_for_trust.items())),
            "collaborations_completed": self.collaborations_completed,
            "collaborations_failed": self.collaborations_failed,
            "active_collaborations": self.active_collaborations,
            "reputation": {peer: round(s, 4) for peer, s in sorted(self.trust.scores.items())},
            "hub_errors": self.hub_errors[-20:],
            "engine_summary": self.engine_summary,
            **({"error": self.error} if self.error is not None else {}),
        }

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainerReport:
        trust = dict(data["trust"])
        trust["history"] = [tuple(entry) for entry in trust.get("history", [])]
        trust["hub_caps"] = [tuple(entry) for entry in trust.get("hub_caps", [])]
        return cls(**{**data, "trust": TrustRecord(**trust)})

    @classmethod
    def failed(cls, ai_id: str, specialization: str, engine: str, error: str) -> TrainerReport:
        """The report of a trainer that never ran (or died): every count zero, ``error`` set."""
        return cls(
            ai_id=ai_id,
            specialization=specialization,
            engine=engine,
            connected=False,
            reconnects=0,
            auth_error=None,
            training={},
            patterns_shared=0,
            components_shared=0,
            collaboration_requests_sent=0,
            collaboration_requests_received=0,
            requests_accepted=0,
            requests_rejected=0,
            rejections_received=0,
            collaborations_completed=0,
            collaborations_failed=0,
            active_collaborations=0,
            hub_errors=[],
            engine_summary={},
            succeeded=False,
            trust=TrustRecord(threshold=0.0, initial=0.0),
            error=error,
        )
