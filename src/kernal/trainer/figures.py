"""The ``TRAINER_REPORT`` a trainer sends: its engine's figures and the trust it holds.

Pure: builds the frame from what the trainer keeps, bounded as the protocol requires (at most
:data:`~kernal.protocol.messages.MAX_TRUST_PEERS` peers; the ones it actually judged first).
"""

from __future__ import annotations

from kernal.engines.base import Figures
from kernal.protocol.messages import (
    FEATURE_TRAINER_REPORT,
    MAX_TRUST_PEERS,
    RejectedRequests,
    State,
    TrainerFigures,
)
from kernal.trainer.reputation import ReputationBook

__all__ = ["LOW_REPUTATION", "hub_takes_reports", "trainer_report"]

LOW_REPUTATION = "low reputation"


def hub_takes_reports(state: State | None) -> bool:
    """Whether the hub that sent ``state`` takes ``TRAINER_REPORT`` (an older hub would answer
    every one with ``unknown_type``)."""
    return state is not None and FEATURE_TRAINER_REPORT in state.features


def trainer_report(
    figures: Figures,
    book: ReputationBook,
    rejected_for_trust: dict[str, int],
    *,
    final: bool = False,
) -> TrainerFigures:
    """The frame for ``figures`` and the reputation ``book``: peers it interacted with or
    refused come first, then peers it only seeded from the hub, by id, cut at the bound."""
    judged = sorted(set(book.interactions) | set(rejected_for_trust))
    seeded_only = sorted(set(book.scores) - set(judged))
    peers = [*judged, *seeded_only]
    trust = {peer: round(min(1.0, max(0.0, book.get(peer))), 4) for peer in peers[:MAX_TRUST_PEERS]}
    refused = sorted(rejected_for_trust.items(), key=lambda item: (-item[1], item[0]))
    return TrainerFigures(
        accuracy=figures.accuracy,
        local_only_accuracy=figures.local_only_accuracy,
        centralized_baseline=figures.centralized_baseline,
        merges_kept=figures.merges_kept,
        merges_rejected=figures.merges_rejected,
        trust=trust,
        rejected={
            peer: RejectedRequests(count=count, reason=LOW_REPUTATION)
            for peer, count in refused[:MAX_TRUST_PEERS]
            if count > 0
        },
        final=final,
    )
