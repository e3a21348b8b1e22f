"""Class-wise merging, the validation gate and the FedAvg baseline."""

from __future__ import annotations

import numpy as np
import pytest

from kernal.learning.attacks import Behaviour
from kernal.learning.data import Shard
from kernal.learning.merge import class_shares, evaluate_merge, fedavg, merge
from kernal.learning.model import SoftmaxModel

ALPHA, START, THRESHOLD = 0.3, 0.5, 0.5


def _ema(outcomes: list[float]) -> list[float]:
    scores, score = [], START
    for outcome in outcomes:
        score = ALPHA * outcome + (1 - ALPHA) * score
        scores.append(score)
    return scores


def test_merge_with_itself_is_itself(models: tuple[SoftmaxModel, ...]) -> None:
    model = models[0]
    same = merge(model, model.copy())
    np.testing.assert_array_equal(same.W, model.W)
    np.testing.assert_array_equal(same.b, model.b)
    np.testing.assert_array_equal(same.class_counts, model.class_counts)


def test_class_wise_merge_takes_each_class_from_who_saw_it() -> None:
    own = SoftmaxModel(np.zeros((2, 3)), np.zeros(3), np.array([98, 0, 9]))
    other = SoftmaxModel(np.ones((2, 3)), np.ones(3), np.array([0, 98, 9]))
    merged = merge(own, other)
    np.testing.assert_allclose(merged.b, [0.01, 0.99, 0.5])
    np.testing.assert_allclose(class_shares(own, other), [0.01, 0.99, 0.5])
    np.testing.assert_array_equal(merged.class_counts, [98, 98, 9])
    np.testing.assert_allclose(merge(own, other, weight=0.25).W, 0.25)
    with pytest.raises(ValueError):
        merge(own, other, weight=1.5)
    with pytest.raises(ValueError):
        merge(own, SoftmaxModel.zeros(3, 3))


def test_rejected_merge_returns_own_model_untouched(
    models: tuple[SoftmaxModel, ...], shards: tuple[Shard, ...]
) -> None:
    own, val = models[0], shards[0].val
    before = own.copy()
    hostile = Behaviour("sign_flip").outgoing(models[1], 0, None, np.random.default_rng(0))
    decision = evaluate_merge(own, hostile, val.X, val.y)
    assert not decision.kept
    assert decision.model is own
    np.testing.assert_array_equal(own.W, before.W)
    np.testing.assert_array_equal(own.b, before.b)
    np.testing.assert_array_equal(own.class_counts, before.class_counts)
    assert decision.outcome < THRESHOLD
    assert decision.merged_accuracy < decision.own_accuracy


def test_honest_non_iid_partners_are_mostly_kept_and_stay_trusted(
    models: tuple[SoftmaxModel, ...], shards: tuple[Shard, ...]
) -> None:
    decisions = [
        evaluate_merge(models[i], models[j], shards[i].val.X, shards[i].val.y)
        for i in range(len(models))
        for j in range(len(models))
        if i != j
    ]
    kept = [d for d in decisions if d.kept]
    assert len(kept) > len(decisions) / 2
    for d in kept:
        assert d.model is not None and d.merged_accuracy >= d.own_accuracy
    # An honest partner's outcomes keep the reputation at or above the threshold.
    assert np.mean([d.outcome >= THRESHOLD for d in decisions]) > 0.9
    assert _ema([d.outcome for d in decisions])[-1] >= THRESHOLD


@pytest.mark.parametrize("attack", ["label_flip", "sign_flip", "noise", "scale", "free_rider"])
def test_always_malicious_partners_fall_below_threshold_within_five(
    attack: str, models: tuple[SoftmaxModel, ...], shards: tuple[Shard, ...]
) -> None:
    behaviour = Behaviour(attack)
    rng = np.random.default_rng(0)
    for i in range(3):
        own, val = models[i], shards[i].val
        outcomes = []
        for j in range(len(models)):
            if j == i:
                continue
            if attack == "label_flip":  # a model trained on flipped labels
                sh = shards[j].train
                partner = SoftmaxModel.zeros(64, 10)
                partner.fit(sh.X, behaviour.training_labels(sh.y, 10), 50, seed=1)
            else:  # free_rider echoes what we just sent it
                partner = behaviour.outgoing(models[j], j, own.copy(), rng)
            outcomes.append(evaluate_merge(own, partner, val.X, val.y).outcome)
        below = [score < THRESHOLD for score in _ema(outcomes[:5])]
        assert any(below), (attack, i, outcomes)


def test_guards_refuse_with_outcome_zero(
    models: tuple[SoftmaxModel, ...], shards: tuple[Shard, ...]
) -> None:
    own, val = models[0], shards[0].val
    cases = {
        "zero": SoftmaxModel.zeros(64, 10),
        "norm": SoftmaxModel(10 * models[1].W, 10 * models[1].b, models[1].class_counts),
        "copy": own.copy(),
        "shape": SoftmaxModel.zeros(64, 3),
    }
    for name, partner in cases.items():
        decision = evaluate_merge(own, partner, val.X, val.y)
        assert not decision.kept and decision.outcome == 0.0, name
        assert decision.model is own
    older = models[2]
    echo = evaluate_merge(own, older.copy(), val.X, val.y, history=[older])
    assert echo.outcome == 0.0 and "copy" in echo.reason
    with pytest.raises(ValueError):
        evaluate_merge(own, models[1], val.X[:0], val.y[:0])


def test_fedavg_is_a_plain_weighted_average(models: tuple[SoftmaxModel, ...]) -> None:
    a, b = models[0], models[1]
    np.testing.assert_allclose(fedavg([a, b], [1.0, 1.0]).W, (a.W + b.W) / 2)
    np.testing.assert_allclose(fedavg([a, b], [3.0, 1.0]).b, 0.75 * a.b + 0.25 * b.b)
    wa, wb = a.class_counts.sum(), b.class_counts.sum()
    np.testing.assert_allclose(fedavg([a, b]).W, (wa * a.W + wb * b.W) / (wa + wb))
    np.testing.assert_array_equal(fedavg([a]).W, a.W)
    for bad in ([], [a, SoftmaxModel.zeros(64, 3)]):
        with pytest.raises(ValueError):
            fedavg(bad)
    with pytest.raises(ValueError):
        fedavg([a, b], [1.0])
    with pytest.raises(ValueError):
        fedavg([a, b], [0.0, 0.0])
