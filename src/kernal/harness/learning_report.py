"""The learning part of a harness report: how well trainers learned, against what baselines,
and whom they came to trust."""

from __future__ import annotations

import statistics
from typing import Any

from kernal.engines.learning import LearningEngine, dataset_for
from kernal.learning.model import SoftmaxModel
from kernal.trainer.trainer import Trainer

CENTRALIZED_EPOCHS = 100


def centralized_accuracy(source: str | None, *, epochs: int = CENTRALIZED_EPOCHS) -> float:
    """Test accuracy of one model trained on the whole training pool: the upper reference."""
    pool, test = dataset_for(source)
    model = SoftmaxModel.zeros(pool.X.shape[1], pool.n_classes)
    model.fit(pool.X, pool.y, epochs, seed=0)
    return model.accuracy(test.X, test.y)


DETECTION_WINDOW = 5


def interactions_to_distrust(trainer: Trainer, peer: str, threshold: float) -> int | None:
    """How many of ``trainer``'s interactions with ``peer`` it took for the peer to fall below
    ``threshold`` (0: it started below, seeded from the hub's record); None if it never did."""
    book = trainer.reputation
    if book.seeded.get(peer, book.initial) < threshold:
        return 0
    updates = (score for _, who, score in book.history if who == peer)
    for n, score in enumerate(updates, start=1):
        if score < threshold:
            return n
    return None


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def learning_section(trainers: dict[str, Trainer], threshold: float) -> dict[str, Any] | None:
    """Overall figures, or None when no trainer ran the learning engine."""
    engines = {
        ai_id: t.engine for ai_id, t in trainers.items() if isinstance(t.engine, LearningEngine)
    }
    if not engines:
        return None
    honest = [ai for ai, e in engines.items() if not e.behaviour.malicious]
    poisoners = [ai for ai, e in engines.items() if e.behaviour.malicious]
    final = {ai: e.test_accuracy() for ai, e in engines.items()}
    local = {ai: e.local_only_accuracy for ai, e in engines.items()}
    sources = {e.source for e in engines.values()}
    section: dict[str, Any] = {
        "honest_trainers": honest,
        "poisoners": poisoners,
        "mean_honest_accuracy": _mean([final[ai] for ai in honest]),
        "mean_honest_local_only_accuracy": _mean(
            [acc for ai in honest if (acc := local[ai]) is not None]
        ),
        "centralized_baseline": round(centralized_accuracy(next(iter(sources))), 4)
        if len(sources) == 1
        else None,
        "honest_below_local_only": [
            ai for ai in honest if (base := local[ai]) is not None and final[ai] < base
        ],
    }

    # Reputation as honest trainers see their peers, only for peers they actually met.
    def views(targets: list[str]) -> dict[str, float | None]:
        return {
            target: _mean(
                [
                    trainers[viewer].reputation.scores[target]
                    for viewer in honest
                    if viewer != target and target in trainers[viewer].reputation.interactions
                ]
            )
            for target in targets
        }

    section["poisoner_reputation_seen_by_honest"] = views(poisoners)
    # A pair met if they worked together, or if the honest trainer refused the poisoner for
    # low reputation (a poisoner known only from STATE has not been judged by this trainer).
    met = [
        interactions_to_distrust(trainers[viewer], poisoner, threshold)
        for viewer in honest
        for poisoner in poisoners
        if poisoner in trainers[viewer].reputation.interactions
        or poisoner in trainers[viewer].stats.rejected_for_trust
    ]
    section["honest_poisoner_pairs_met"] = len(met)
    section["poisoners_distrusted_within_5"] = (
        round(sum(n is not None and n <= DETECTION_WINDOW for n in met) / len(met), 4)
        if met
        else None
    )
    pairs = [
        trainers[viewer].reputation.scores[peer]
        for viewer in honest
        for peer in honest
        if peer != viewer and peer in trainers[viewer].reputation.interactions
    ]
    section["honest_pairs_below_threshold"] = (
        round(sum(score < threshold for score in pairs) / len(pairs), 4) if pairs else None
    )
    return section
