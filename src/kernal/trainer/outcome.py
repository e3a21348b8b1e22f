"""What a trainer's run comes to: its counters, whether it succeeded, why not, and its report.

Pure: :func:`outcome_report` builds the :class:`~kernal.trainer.report.TrainerReport` from what
the trainer keeps (its counters, its reputation book, what its connection saw), so the words of
a failure are the same for every trainer that failed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kernal.trainer.report import TrainerReport, TrustRecord
from kernal.trainer.reputation import ReputationBook

__all__ = ["Connection", "Plan", "TrainerStats", "failure_reason", "outcome_report", "succeeded"]


@dataclass
class TrainerStats:
    patterns_shared: int = 0
    components_shared: int = 0
    requests_sent: int = 0
    requests_received: int = 0
    requests_accepted: int = 0
    requests_rejected: int = 0
    rejections_received: int = 0
    collaborations_completed: int = 0
    collaborations_failed: int = 0
    hub_errors: list[str] = field(default_factory=list)
    assessments: list[float] = field(default_factory=list)
    rejected_for_trust: dict[str, int] = field(default_factory=dict)  # peer -> requests refused


@dataclass(frozen=True)
class Plan:
    """What the trainer set out to share."""

    patterns: int
    components: int


@dataclass(frozen=True)
class Connection:
    """What the trainer's connection to the hub came to."""

    connections: int  # successful logins, reconnects included
    auth_error: str | None  # the hub refused the token
    last_error: str | None  # the last connection error, if any


def succeeded(stats: TrainerStats, plan: Plan, link: Connection) -> bool:
    """Connected and shared everything it planned to."""
    return (
        link.auth_error is None
        and link.connections > 0
        and stats.patterns_shared >= plan.patterns
        and stats.components_shared >= plan.components
    )


def failure_reason(stats: TrainerStats, plan: Plan, link: Connection) -> str | None:
    """Why the trainer has not succeeded, in words that are the same for every trainer that
    failed the same way (so a report can count them); None if it has succeeded."""
    if succeeded(stats, plan, link):
        return None
    if link.auth_error is not None:
        return link.last_error or link.auth_error
    if link.connections == 0:
        return f"never connected: {link.last_error or 'no connection attempt finished'}"
    reason = (
        f"shared {stats.patterns_shared} of {plan.patterns} patterns and "
        f"{stats.components_shared} of {plan.components} components before "
        "the scenario ended"
    )
    if link.last_error is not None:  # it lost the hub on the way
        reason += f"; last connection error: {link.last_error}"
    return reason


def outcome_report(
    *,
    ai_id: str,
    specialization: str,
    engine: str,
    engine_summary: dict[str, Any],
    training: dict[str, Any],
    active_collaborations: int,
    stats: TrainerStats,
    plan: Plan,
    link: Connection,
    book: ReputationBook,
    threshold: float,
) -> TrainerReport:
    """The trainer's report from its counters, its plan, its connection and its book."""
    s = stats
    return TrainerReport(
        ai_id=ai_id,
        specialization=specialization,
        engine=engine,
        connected=link.connections > 0,
        reconnects=max(0, link.connections - 1),
        auth_error=link.auth_error,
        training=training,
        patterns_shared=s.patterns_shared,
        components_shared=s.components_shared,
        collaboration_requests_sent=s.requests_sent,
        collaboration_requests_received=s.requests_received,
        requests_accepted=s.requests_accepted,
        requests_rejected=s.requests_rejected,
        rejections_received=s.rejections_received,
        collaborations_completed=s.collaborations_completed,
        collaborations_failed=s.collaborations_failed,
        active_collaborations=active_collaborations,
        hub_errors=list(s.hub_errors),
        engine_summary=engine_summary,
        succeeded=succeeded(stats, plan, link),
        error=failure_reason(stats, plan, link),
        trust=TrustRecord(
            threshold=threshold,
            initial=book.initial,
            scores={peer: book.get(peer) for peer in book.scores},
            interactions=dict(book.interactions),
            seeded=dict(book.seeded),
            history=list(book.history),
            hub_caps=list(book.hub_caps),
            rejected_for_trust=dict(s.rejected_for_trust),
        ),
    )
