"""Behaviours: what honest and malicious trainers train on and share."""

from __future__ import annotations

import numpy as np
import pytest

from kernal.learning.attacks import BEHAVIOURS, Behaviour, parse_behaviour
from kernal.learning.data import Dataset
from kernal.learning.merge import fedavg
from kernal.learning.model import SoftmaxModel


@pytest.fixture
def trained(pool: Dataset) -> SoftmaxModel:
    return SoftmaxModel.zeros(64, 10).fit(pool.X, pool.y, 20, seed=0)


def _share(name: str, model: SoftmaxModel, interaction: int = 0) -> SoftmaxModel:
    return Behaviour(name).outgoing(model, interaction, None, np.random.default_rng(0))


def test_parse_behaviour() -> None:
    assert parse_behaviour(" Sign-Flip ") == Behaviour("sign_flip")
    assert {parse_behaviour(name).name for name in BEHAVIOURS} == set(BEHAVIOURS)
    with pytest.raises(ValueError, match="label_flip"):
        parse_behaviour("evil")
    with pytest.raises(ValueError):
        Behaviour("evil")


def test_honest_shares_an_equal_copy(trained: SoftmaxModel) -> None:
    shared = _share("honest", trained)
    assert shared is not trained
    np.testing.assert_array_equal(shared.W, trained.W)
    assert Behaviour("honest").trains() and not Behaviour("honest").malicious


@pytest.mark.parametrize("attack", ["sign_flip", "noise"])
def test_poisoned_models_score_near_chance(
    attack: str, trained: SoftmaxModel, test_set: Dataset
) -> None:
    before = trained.copy()
    shared = _share(attack, trained)
    assert trained.accuracy(test_set.X, test_set.y) > 0.9
    assert shared.accuracy(test_set.X, test_set.y) < 0.25
    np.testing.assert_array_equal(trained.W, before.W)  # the private model is untouched


def test_label_flip_trains_a_confidently_wrong_model(pool: Dataset, test_set: Dataset) -> None:
    flip = Behaviour("label_flip")
    np.testing.assert_array_equal(flip.training_labels(np.array([0, 3, 9]), 10), [9, 6, 0])
    np.testing.assert_array_equal(Behaviour("noise").training_labels(pool.y, 10), pool.y)
    model = SoftmaxModel.zeros(64, 10).fit(pool.X, flip.training_labels(pool.y, 10), 20)
    assert model.accuracy(test_set.X, test_set.y) < 0.1


def test_scale_boosts_and_dominates_plain_averaging(
    trained: SoftmaxModel, test_set: Dataset
) -> None:
    shared = _share("scale", trained)
    np.testing.assert_allclose(shared.W, 10 * trained.W)
    # Boosting keeps the argmax but swamps FedAvg: a useless model averaged with it is fixed
    # entirely by the attacker; the same poisoned model boosted wrecks an honest one.
    poisoned = _share("scale", _share("sign_flip", trained))
    averaged = fedavg([trained, poisoned], [1.0, 1.0])
    assert averaged.accuracy(test_set.X, test_set.y) < 0.25


def test_free_rider_echoes_with_inflated_claims(trained: SoftmaxModel) -> None:
    rider = Behaviour("free_rider")
    assert not rider.trains()
    echoed = rider.outgoing(SoftmaxModel.zeros(64, 10), 0, trained, np.random.default_rng(0))
    np.testing.assert_array_equal(echoed.W, trained.W)
    assert echoed is not trained and echoed.class_counts.min() >= 1000
    nothing = rider.outgoing(trained, 0, None, np.random.default_rng(0))
    assert not nothing.W.any() and not nothing.b.any()


def test_on_off_alternates_every_three_interactions(trained: SoftmaxModel) -> None:
    phases = [np.array_equal(_share("on_off", trained, i).W, trained.W) for i in range(12)]
    assert phases == [True] * 3 + [False] * 3 + [True] * 3 + [False] * 3
    np.testing.assert_array_equal(_share("on_off", trained, 4).W, -trained.W)
