"""Shared, cached fixtures: the digits split and a few trained shard models (fixed seeds)."""

from __future__ import annotations

from functools import cache

import pytest

from kernal.learning.data import Dataset, Shard, holdout, load_digits, make_shard
from kernal.learning.model import SoftmaxModel


@cache
def _split() -> tuple[Dataset, Dataset]:
    return holdout(load_digits(), seed=0)


@cache
def _shards(split: str, n: int) -> tuple[Shard, ...]:
    pool, _ = _split()
    return tuple(make_shard(pool, split, seed=100 + i) for i in range(n))


@cache
def _models(split: str, n: int) -> tuple[SoftmaxModel, ...]:
    models = []
    for shard in _shards(split, n):
        model = SoftmaxModel.zeros(shard.train.X.shape[1], shard.train.n_classes)
        models.append(model.fit(shard.train.X, shard.train.y, 50, seed=1))
    return tuple(models)


@pytest.fixture
def pool() -> Dataset:
    return _split()[0]


@pytest.fixture
def test_set() -> Dataset:
    return _split()[1]


@pytest.fixture
def shards() -> tuple[Shard, ...]:
    """Six non-IID (dirichlet:0.5) shards of the digits pool."""
    return _shards("dirichlet:0.5", 6)


@pytest.fixture
def models() -> tuple[SoftmaxModel, ...]:
    """One model per shard of ``shards``, 50 epochs each. Copy before mutating."""
    return _models("dirichlet:0.5", 6)


@pytest.fixture
def skewed_shards() -> tuple[Shard, ...]:
    """Twelve dirichlet:0.1 shards of the digits pool: one to three classes each, mostly."""
    return _shards("dirichlet:0.1", 12)


@pytest.fixture
def skewed_models() -> tuple[SoftmaxModel, ...]:
    """One model per shard of ``skewed_shards``, 50 epochs each. Copy before mutating."""
    return _models("dirichlet:0.1", 12)
