"""The ``TRAINER_REPORT`` a trainer sends: its engine's figures and the trust it holds.

:func:`trainer_report` is pure: it builds the frame from what the trainer keeps, bounded as the
protocol requires (at most :data:`~kernal.protocol.messages.MAX_TRUST_PEERS` peers; the ones it
actually judged first). :func:`send_report` sends it, when the hub takes it.
"""

from __future__ import annotations

import logging

from kernal.engines.base import Engine, Figures
from kernal.protocol.messages import (
    FEATURE_TRAINER_REPORT,
    MAX_TRUST_PEERS,
    RejectedRequests,
    State,
    TrainerFigures,
)
from kernal.trainer.client import ConnectionLost, HubClient, HubError
from kernal.trainer.reputation import ReputationBook

__all__ = ["LOW_REPUTATION", "hub_takes_reports", "send_report", "trainer_report"]

log = logging.getLogger("kernal.trainer")

LOW_REPUTATION = "low reputation"
MAX_LABEL = 128  # the protocol's Label


def _label(reason: str) -> str:
    """An engine's reason as the protocol's Label takes it: not empty, at most 128 chars."""
    text = " ".join(reason.split()) or "refused"
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"


FINAL_TIMEOUT = 5.0  # real seconds the final TRAINER_REPORT may wait for its ACK


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
    merges = sorted(figures.refused_merges.items(), key=lambda item: (-item[1][0], item[0]))
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
        refused_merges={
            peer: RejectedRequests(count=count, reason=_label(reason))
            for peer, (count, reason) in merges[:MAX_TRUST_PEERS]
            if count > 0
        },
        final=final,
    )


async def send_report(
    client: HubClient,
    engine: Engine,
    book: ReputationBook,
    rejected_for_trust: dict[str, int],
    hub_errors: list[str],
    *,
    final: bool = False,
) -> bool:
    """Send the engine's figures and the trust ``book`` to the hub, if connected, the hub takes
    ``TRAINER_REPORT`` and the engine measures anything. True once ACKed. A refusal is appended
    to ``hub_errors``, never raised; a lost connection or a timeout (the final report waits
    :data:`FINAL_TIMEOUT` at most) is dropped: the next report says the same, newer."""
    if not (client.connected.is_set() and client.supports(FEATURE_TRAINER_REPORT)):
        return False
    figures = engine.figures(final=final)
    if figures is None:
        return False
    message = trainer_report(figures, book, rejected_for_trust, final=final)
    try:
        await client.request(message, timeout=FINAL_TIMEOUT if final else None)
    except HubError as exc:
        hub_errors.append(f"{message.type}: {exc}")
        log.warning("[%s] Hub refused %s: %s", client.ai_id, message.type, exc)
        return False
    except (ConnectionLost, TimeoutError):
        return False
    return True
