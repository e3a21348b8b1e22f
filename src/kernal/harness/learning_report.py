"""The learning part of a harness report: how well trainers learned, against what baselines,
and whom they came to trust."""

from __future__ import annotations

import functools
import statistics
from typing import Any

from kernal.engines.learning import LearningEngine, dataset_for
from kernal.learning.merge import scan_blind_spot
from kernal.learning.mlp import parse_hidden
from kernal.learning.models import DEFAULT_MODEL, new_model
from kernal.trainer.report import TrainerReport

CENTRALIZED_EPOCHS = 100


@functools.lru_cache(maxsize=4)
def centralized_accuracy(
    source: str | None,
    *,
    epochs: int = CENTRALIZED_EPOCHS,
    model_kind: str = DEFAULT_MODEL,
    hidden: str = "64",
) -> float:
    """Test accuracy of one model (of the run's kind) trained on the whole training pool: the
    upper reference (seeded, so computed once per source and model and kept)."""
    pool, test = dataset_for(source)
    model = new_model(model_kind, pool.X.shape[1], pool.n_classes, parse_hidden(hidden))
    model.fit(pool.X, pool.y, epochs, seed=0)
    return model.accuracy(test.X, test.y)


DETECTION_WINDOW = 5


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def learning_section(reports: dict[str, TrainerReport], threshold: float) -> dict[str, Any] | None:
    """Overall figures, or None when no trainer ran the learning engine."""
    summaries = {
        ai_id: r.engine_summary for ai_id, r in reports.items() if r.engine == LearningEngine.name
    }
    if not summaries:
        return None
    honest = [ai for ai, s in summaries.items() if s.get("behaviour", "honest") == "honest"]
    poisoners = [ai for ai in summaries if ai not in honest]
    final = {ai: s.get("final_accuracy") for ai, s in summaries.items()}
    local = {ai: s.get("local_only_accuracy") for ai, s in summaries.items()}
    sources = {s.get("data") for s in summaries.values()}
    kinds = {s.get("model", DEFAULT_MODEL) for s in summaries.values()}
    trust = {ai: reports[ai].trust for ai in summaries}
    section: dict[str, Any] = {
        "honest_trainers": honest,
        "poisoners": poisoners,
        "mean_honest_accuracy": _mean([acc for ai in honest if (acc := final[ai]) is not None]),
        "mean_honest_local_only_accuracy": _mean(
            [acc for ai in honest if (acc := local[ai]) is not None]
        ),
        "model": next(iter(kinds)) if len(kinds) == 1 else sorted(kinds),
        "centralized_baseline": round(
            centralized_accuracy(next(iter(sources)), model_kind=next(iter(kinds))), 4
        )
        if len(sources) == 1 and len(kinds) == 1
        else None,
        "mean_honest_backdoor_success": _mean(
            [v for ai in honest if (v := summaries[ai].get("backdoor_success")) is not None]
        ),
        # The same trigger on each honest trainer's model trained without merges: on data
        # where an honest model reads the trigger as a class's sign this is high too, and
        # the backdoor's own share is the difference.
        "mean_honest_backdoor_success_alone": _mean(
            [v for ai in honest if (v := summaries[ai].get("backdoor_success_alone")) is not None]
        ),
        # Honest trainers whose trigger scan can refuse nobody on this data (scan_blind_spot).
        "trigger_scan_blind": [
            ai
            for ai in honest
            if (rate := summaries[ai].get("trigger_scan_reference")) is not None
            and scan_blind_spot(rate) is not None
        ],
        "honest_below_local_only": [
            ai
            for ai in honest
            if (base := local[ai]) is not None and (acc := final[ai]) is not None and acc < base
        ],
    }

    # Reputation as honest trainers see their peers, only for peers they actually met.
    def views(targets: list[str]) -> dict[str, float | None]:
        return {
            target: _mean(
                [
                    trust[viewer].scores[target]
                    for viewer in honest
                    if viewer != target and target in trust[viewer].interactions
                ]
            )
            for target in targets
        }

    section["poisoner_reputation_seen_by_honest"] = views(poisoners)
    # A pair met if they worked together, or if the honest trainer refused the poisoner for
    # low reputation (a poisoner known only from STATE has not been judged by this trainer).
    met = [
        trust[viewer].interactions_to_distrust(poisoner)
        for viewer in honest
        for poisoner in poisoners
        if trust[viewer].met(poisoner)
    ]
    section["honest_poisoner_pairs_met"] = len(met)
    section["poisoners_distrusted_within_5"] = (
        round(sum(n is not None and n <= DETECTION_WINDOW for n in met) / len(met), 4)
        if met
        else None
    )
    pairs = [
        trust[viewer].scores[peer]
        for viewer in honest
        for peer in honest
        if peer != viewer and peer in trust[viewer].interactions
    ]
    section["honest_pairs_below_threshold"] = (
        round(sum(score < threshold for score in pairs) / len(pairs), 4) if pairs else None
    )
    return section
