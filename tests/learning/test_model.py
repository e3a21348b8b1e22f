"""Softmax regression: training, determinism and the hostile-input JSON format."""

from __future__ import annotations

import contextlib
import copy
import json
import math
from typing import Any

import numpy as np
import pytest

from kernal.learning.data import Dataset
from kernal.learning.model import SoftmaxModel, softmax


def _trained(pool: Dataset, seed: int = 0, epochs: int = 30) -> SoftmaxModel:
    return SoftmaxModel.zeros(64, 10).fit(pool.X, pool.y, epochs, seed=seed)


def test_training_beats_chance_by_far(pool: Dataset, test_set: Dataset) -> None:
    model = _trained(pool)
    assert model.accuracy(test_set.X, test_set.y) > 0.9
    assert model.predict_proba(test_set.X).shape == (len(test_set), 10)
    np.testing.assert_allclose(model.predict_proba(test_set.X).sum(axis=1), 1.0)


def test_training_is_deterministic_given_the_seed(pool: Dataset) -> None:
    a, b, c = _trained(pool, 1, 5), _trained(pool, 1, 5), _trained(pool, 2, 5)
    np.testing.assert_array_equal(a.W, b.W)
    np.testing.assert_array_equal(a.b, b.b)
    assert not np.array_equal(a.W, c.W)


def test_fit_warm_starts_and_tracks_counts(pool: Dataset) -> None:
    model = SoftmaxModel.zeros(64, 10)
    first = pool.subset(np.flatnonzero(pool.y < 5))
    model.fit(first.X, first.y, 3)
    before = model.W.copy()
    second = pool.subset(np.flatnonzero(pool.y >= 5)[:50])
    model.fit(second.X, second.y, 1)
    assert model.rounds == 2
    assert not np.array_equal(model.W, before)  # continued from the previous parameters
    expected = np.maximum(first.counts(), second.counts())
    np.testing.assert_array_equal(model.class_counts, expected)


def test_balanced_training_does_not_erase_absent_classes(pool: Dataset) -> None:
    """Logit adjustment: training on classes 0-4 barely moves what was learnt for 5-9."""
    full = _trained(pool, epochs=20)
    low = pool.subset(np.flatnonzero(pool.y < 5))
    high = pool.subset(np.flatnonzero(pool.y >= 5))
    kept = full.copy().fit(low.X, low.y, 10)
    plain = full.copy().fit(low.X, low.y, 10, balance=None)
    assert kept.accuracy(high.X, high.y) > plain.accuracy(high.X, high.y) + 0.2


def test_softmax_is_stable_for_huge_logits() -> None:
    p = softmax(np.array([[1e300, 0.0, -1e300], [5.0, 5.0, 5.0]]))
    np.testing.assert_allclose(p, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]])


def test_copy_is_independent(pool: Dataset) -> None:
    model = _trained(pool, epochs=1)
    twin = model.copy()
    twin.W[0, 0] += 1.0
    twin.class_counts[0] += 1
    assert model.W[0, 0] != twin.W[0, 0] and model.class_counts[0] != twin.class_counts[0]


def test_json_round_trip_is_compact_and_close(pool: Dataset, test_set: Dataset) -> None:
    model = _trained(pool)
    data = model.to_json()
    text = json.dumps(data)
    assert len(text.encode()) < 16 * 1024  # far below the 64 KiB budget
    back = SoftmaxModel.from_json(json.loads(text))
    np.testing.assert_allclose(back.W, model.W, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(back.b, model.b, rtol=1e-4, atol=1e-9)
    np.testing.assert_array_equal(back.class_counts, model.class_counts)
    assert back.rounds == model.rounds
    assert back.accuracy(test_set.X, test_set.y) == model.accuracy(test_set.X, test_set.y)
    assert data["kind"] == "softmax" and data["features"] == 64 and data["classes"] == 10


def _valid() -> dict[str, Any]:
    model = SoftmaxModel(np.ones((3, 2)), np.zeros(2), np.array([4, 5]), 2)
    return model.to_json()


def _mutated(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(_valid())
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("W", 0, 0), math.nan),
        (("W", 1, 1), math.inf),
        (("b", 0), -math.inf),
        (("W", 0, 0), 1e300),
        (("W", 0, 0), 10**400),
        (("W", 0, 0), "1.0"),
        (("W", 0, 0), True),
        (("W", 0, 0), None),
        (("W", 0), [1.0]),
        (("W", 0), [1.0, 2.0, 3.0]),
        (("W",), [[1.0, 1.0]] * 2),
        (("W",), [[1.0, 1.0]] * 100_000),
        (("W",), "[[1, 1]]"),
        (("b",), [0.0] * 1_000_000),
        (("b",), {"0": 1.0}),
        (("kind",), "mlp"),
        (("features",), -3),
        (("features",), 3.0),
        (("features",), 10**12),
        (("classes",), True),
        (("class_counts",), [1, -1]),
        (("class_counts",), [1, 1.5]),
        (("class_counts",), [1, 10**12]),
        (("class_counts",), [1]),
        (("rounds",), -1),
        (("rounds",), "2"),
    ],
)
def test_from_json_rejects_malformed_models(path: tuple[Any, ...], value: Any) -> None:
    with pytest.raises(ValueError):
        SoftmaxModel.from_json(_mutated(path, value))


@pytest.mark.parametrize("data", [None, [], "softmax", 3, {}, {"kind": "softmax"}])
def test_from_json_rejects_non_models(data: Any) -> None:
    with pytest.raises(ValueError):
        SoftmaxModel.from_json(data)


def test_from_json_fuzz_only_ever_raises_value_error() -> None:
    rng = np.random.default_rng(0)
    junk: list[Any] = [None, "x", -1, 0, 2.5, math.nan, [], {}, [[]], True, 10**30, [None]]
    keys = list(_valid())
    for _ in range(300):
        data = copy.deepcopy(_valid())
        key = keys[rng.integers(len(keys))]
        if rng.random() < 0.5 and isinstance(data[key], list) and data[key]:
            data[key][rng.integers(len(data[key]))] = junk[rng.integers(len(junk))]
        else:
            data[key] = junk[rng.integers(len(junk))]
        with contextlib.suppress(ValueError):
            SoftmaxModel.from_json(data)


def test_constructor_checks_shapes() -> None:
    with pytest.raises(ValueError):
        SoftmaxModel(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError):
        SoftmaxModel(np.zeros((3, 2)), np.zeros(2), np.array([1, -1]))
