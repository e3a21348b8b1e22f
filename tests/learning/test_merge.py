"""Class-wise merging, the validation gate and the FedAvg baseline."""

from __future__ import annotations

import importlib
from collections.abc import Iterator

import numpy as np
import pytest

from kernal.learning.attacks import SCALE_FACTOR, Behaviour
from kernal.learning.data import Dataset, Shard
from kernal.learning.merge import (
    CLAIM_ACCURACY,
    COMPETENT_ALLOWANCE,
    MAX_NORM_RATIO,
    NORM_SAMPLES,
    TYPICAL_FLOOR,
    claimed_accuracy,
    class_shares,
    evaluate_merge,
    fails_own_classes,
    fedavg,
    merge,
    moved_rows,
    typical_change,
    typical_norm,
)
from kernal.learning.model import SoftmaxModel
from kernal.trainer.reputation import STRIKE_OUTCOME

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


def test_typical_change_is_the_clamped_median_of_the_last_merges() -> None:
    assert typical_change([]) == 0.0
    assert typical_change([-0.1, -0.05, 0.02]) == pytest.approx(-0.05)
    assert typical_change([0.1, 0.2]) == 0.0  # merges that help excuse nothing
    assert typical_change([-0.5, -0.6, -0.4]) == TYPICAL_FLOOR
    assert typical_change([-0.5] * 20 + [0.0] * 20) == 0.0  # only the last 20 count
    assert typical_change([-0.1, -0.1], window=0) == 0.0


def test_typical_cost_spares_skewed_honest_partners_not_flipped_ones(
    skewed_models: tuple[SoftmaxModel, ...], skewed_shards: tuple[Shard, ...]
) -> None:
    """At dirichlet:0.1 an honest partner holding other classes costs our validation slice
    when merged. Measured against what merging a partner typically costs this receiver, far
    fewer honest partners strike; a sign-flipped model still strikes about as often as with
    the absolute rule (it fails the rows its merge would move), and which merges are kept does
    not change."""
    flip = Behaviour("sign_flip")
    strikes = {"honest": [0, 0], "sign_flip": [0, 0], "sign_flip unchecked": [0, 0]}
    for i, own in enumerate(skewed_models):
        val = skewed_shards[i].val
        others = [m for j, m in enumerate(skewed_models) if j != i]
        absolute = [
            evaluate_merge(own, m, val.X, val.y, trigger_scan=False, check_claims=False)
            for m in others
        ]
        typical = typical_change([d.likelihood_change for d in absolute if d.measured])
        assert typical <= 0.0
        for m, before in zip(others, absolute, strict=True):
            after = evaluate_merge(own, m, val.X, val.y, trigger_scan=False, typical=typical)
            assert after.kept == before.kept and after.outcome >= before.outcome
            bad = flip.outgoing(m, 0, None, np.random.default_rng(0))
            flipped = evaluate_merge(own, bad, val.X, val.y, trigger_scan=False).outcome
            excused = [
                evaluate_merge(
                    own, bad, val.X, val.y, trigger_scan=False, typical=typical, check_claims=c
                ).outcome
                for c in (True, False)
            ]
            cases = {
                "honest": (before.outcome, after.outcome),
                "sign_flip": (flipped, excused[0]),
                "sign_flip unchecked": (flipped, excused[1]),
            }
            for name, outcomes in cases.items():
                for k, outcome in enumerate(outcomes):
                    strikes[name][k] += outcome < STRIKE_OUTCOME
    pairs = len(skewed_models) * (len(skewed_models) - 1)
    honest_before, honest_after = strikes["honest"]
    assert honest_before > 0.03 * pairs  # the problem is real at this split (6 of 132)...
    assert honest_after <= honest_before / 2  # ...and mostly gone (1)
    flipped_before, flipped_after = strikes["sign_flip"]
    assert flipped_before >= 0.6 * pairs  # 103
    assert flipped_after >= 0.9 * flipped_before  # 97
    # Without the check on the rows it would move, the allowance would excuse many more (86).
    assert strikes["sign_flip unchecked"][1] < flipped_after


def _skewed_pairs(
    models: tuple[SoftmaxModel, ...], shards: tuple[Shard, ...]
) -> Iterator[tuple[SoftmaxModel, Dataset, SoftmaxModel]]:
    """(receiver, its validation slice, partner) for the first six skewed receivers and every
    other trainer's model, honest and sign-flipped."""
    flip = Behaviour("sign_flip")
    for i, own in enumerate(models[:6]):
        for j, honest in enumerate(models):
            if j != i:
                bad = flip.outgoing(honest, 0, None, np.random.default_rng(0))
                for partner in (honest, bad):
                    yield own, shards[i].val, partner


def test_the_baseline_follows_what_the_partner_gets_right_on_the_rows_it_would_move(
    skewed_models: tuple[SoftmaxModel, ...], skewed_shards: tuple[Shard, ...]
) -> None:
    """Right on most of those rows: at least the competent allowance (one tau), whatever the
    receiver's typical cost; right on a fraction c of them below half: c / CLAIM_ACCURACY of
    the typical cost (none for a model wrong on all of them); no such row to check: the
    typical cost alone. Which merges are kept never depends on it."""
    seen = {"competent": 0, "wrong": 0}
    for own, val, partner in _skewed_pairs(skewed_models, skewed_shards):
        claimed = claimed_accuracy(own, partner, val.X, val.y)
        d = evaluate_merge(
            own,
            partner,
            val.X,
            val.y,
            trigger_scan=False,
            typical=-0.05,
            credit_moved_rows=False,
        )
        plain = evaluate_merge(own, partner, val.X, val.y, trigger_scan=False, check_claims=False)
        assert d.kept == plain.kept
        if not d.measured:
            continue
        if claimed is None:
            assert d.baseline == -0.05
        elif claimed >= CLAIM_ACCURACY:
            seen["competent"] += 1
            assert d.baseline == COMPETENT_ALLOWANCE
            assert d.outcome == pytest.approx(
                np.clip(1 + (d.likelihood_change - COMPETENT_ALLOWANCE) / 0.2, 0, 1)
            )
        else:
            seen["wrong"] += 1
            assert d.baseline == pytest.approx(-0.05 * claimed / CLAIM_ACCURACY)
            assert d.baseline > -0.05  # never the whole allowance
    assert seen["competent"] > 0 and seen["wrong"] > 0


def _true_label_change(
    merged: SoftmaxModel, own: SoftmaxModel, X: np.ndarray, y: np.ndarray
) -> np.ndarray:
    rows = np.arange(len(y))
    change: np.ndarray = merged.predict_proba(X)[rows, y] - own.predict_proba(X)[rows, y]
    return change


def test_a_competent_partner_is_also_measured_on_the_rows_its_merge_moves(
    skewed_models: tuple[SoftmaxModel, ...], skewed_shards: tuple[Shard, ...]
) -> None:
    """A partner right on most of the rows its merge moves gets the better of the allowed
    plain measure and the change on those rows alone; one wrong on them (sign-flipped) gets
    nothing of it. Which merges are kept never depends on it. (No allowance here, so that the
    plain measure is not already 1 for these softmax models.)"""
    credited = {"lifted": 0, "other": 0}
    gate = {"trigger_scan": False, "competent_allowance": 0.0}
    for own, val, partner in _skewed_pairs(skewed_models, skewed_shards):
        d = evaluate_merge(own, partner, val.X, val.y, **gate)
        plain = evaluate_merge(own, partner, val.X, val.y, **gate, credit_moved_rows=False)
        assert d.kept == plain.kept and d.baseline == plain.baseline
        claimed = claimed_accuracy(own, partner, val.X, val.y)
        if not d.measured or claimed is None or claimed < CLAIM_ACCURACY:
            credited["other"] += 1
            assert d.outcome == plain.outcome
            continue
        moved = moved_rows(own, partner, val.y)
        on_moved = _true_label_change(merge(own, partner), own, val.X, val.y)[moved]
        expected = max(plain.outcome, float(np.clip(1 + on_moved.mean() / 0.2, 0, 1)))
        assert d.outcome == pytest.approx(expected)
        credited["lifted"] += d.outcome > plain.outcome + 1e-9
    assert credited["lifted"] > 0 and credited["other"] > 0


def test_a_partner_partly_right_on_the_rows_it_would_move_gets_that_part_of_the_allowance(
    skewed_models: tuple[SoftmaxModel, ...],
    skewed_shards: tuple[Shard, ...],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the bar for a competent partner above every honest one's claimed accuracy, each
    gets the typical allowance in proportion to what it gets right (a partner right on 45% of
    the rows it moves, as honest MLPs of other shards are on `waves`, gets 90% of it): the
    outcome rises with the claimed accuracy, and a model wrong on them all gets none."""
    # The module, not the package's `merge` (the function of the same name).
    gate = importlib.import_module("kernal.learning.merge")
    monkeypatch.setattr(gate, "CLAIM_ACCURACY", 1.01)
    own, val = skewed_models[0], skewed_shards[0].val
    flip = Behaviour("sign_flip")
    fractions = []
    for partner in skewed_models[1:]:
        for candidate in (partner, flip.outgoing(partner, 0, None, np.random.default_rng(0))):
            d = evaluate_merge(own, candidate, val.X, val.y, trigger_scan=False, typical=-0.1)
            claimed = claimed_accuracy(own, candidate, val.X, val.y)
            if not d.measured or claimed is None:
                continue
            assert d.baseline == pytest.approx(-0.1 * claimed / 1.01)
            plain = evaluate_merge(own, candidate, val.X, val.y, trigger_scan=False, typical=0.0)
            assert d.outcome >= plain.outcome and d.kept == plain.kept
            fractions.append(claimed)
    assert min(fractions) == 0.0 and 0.5 < max(fractions) < 1.01


def test_a_flipped_model_fails_the_classes_it_would_move(
    skewed_models: tuple[SoftmaxModel, ...], skewed_shards: tuple[Shard, ...]
) -> None:
    own, val = skewed_models[0], skewed_shards[0].val
    flip = Behaviour("sign_flip")
    honest_fail = [fails_own_classes(own, m, val.X, val.y) for m in skewed_models[1:]]
    flipped_fail = [
        fails_own_classes(own, flip.outgoing(m, 0, None, np.random.default_rng(0)), val.X, val.y)
        for m in skewed_models[1:]
    ]
    assert sum(flipped_fail) > sum(honest_fail)
    assert not fails_own_classes(own, SoftmaxModel.zeros(64, 10), val.X, val.y)  # claims none


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


def test_typical_norm_is_the_lower_quartile_of_the_last_partners() -> None:
    assert typical_norm([]) == 0.0
    assert typical_norm([5.0] * (NORM_SAMPLES - 1)) == 0.0  # too few to judge by
    assert typical_norm([2.0, 2.0, 50.0, 50.0]) == pytest.approx(2.0)  # half boosted: no effect
    assert typical_norm([2.0, 50.0, 50.0, 50.0]) > 10.0  # three quarters: it moves
    assert typical_norm([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2.0)
    assert typical_norm([100.0] * 20 + [2.0] * 20) == pytest.approx(2.0)  # only the last 20
    assert typical_norm([1.0, 2.0], window=0) == 0.0


def test_a_one_class_receiver_judges_norms_by_its_partners_and_still_refuses_boosting(
    pool: Dataset, models: tuple[SoftmaxModel, ...], skewed_models: tuple[SoftmaxModel, ...]
) -> None:
    """A model trained on one class has a small norm, so an honest model trained on all of
    them looks boosted next to it; next to the typical partner's norm it does not, while the
    same model scaled 10x (the ``scale`` attack) is refused either way."""
    rows = np.flatnonzero(pool.y == 0)
    train, val = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    own = SoftmaxModel.zeros(pool.X.shape[1], pool.n_classes)
    own.fit(pool.X[train], pool.y[train], 50, seed=1)
    full = SoftmaxModel.zeros(pool.X.shape[1], pool.n_classes).fit(pool.X, pool.y, 50, seed=1)
    scaled = full.with_parameters(SCALE_FACTOR * full.parameters())
    reference = typical_norm(
        [float(np.linalg.norm(m.parameters())) for m in (*models, *skewed_models, full)]
    )
    assert reference > MAX_NORM_RATIO * float(np.linalg.norm(own.parameters()))

    def refused_on_norm(partner: SoftmaxModel, norm_reference: float) -> bool:
        decision = evaluate_merge(
            own, partner, pool.X[val], pool.y[val], norm_reference=norm_reference
        )
        assert decision.partner_norm == pytest.approx(np.linalg.norm(partner.parameters()))
        return "parameter norm" in decision.reason

    assert refused_on_norm(full, 0.0)  # the old rule: against our own norm alone
    assert not refused_on_norm(full, reference)
    assert refused_on_norm(scaled, reference)
    # A reference below our own norm never loosens the check.
    assert refused_on_norm(scaled, 0.1 * float(np.linalg.norm(own.parameters())))
