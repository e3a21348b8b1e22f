"""Our numpy aggregators for the scorecard's server-FL baselines (bench/robust_fl.py)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.robust_fl import aggregate


def _clients() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    honest = rng.normal(1.0, 0.1, size=(7, 5))
    attackers = np.full((3, 5), -50.0)
    return np.concatenate([honest, attackers]), np.ones(10)


@pytest.mark.parametrize("rule", ["krum", "multikrum", "trimmed_mean", "median"])
def test_robust_rules_ignore_three_far_outliers(rule: str) -> None:
    stack, weights = _clients()
    out = aggregate(rule, stack, weights, f=3)
    assert np.all(np.abs(out - 1.0) < 0.3)


def test_fedavg_is_dragged_by_them_and_rules_are_checked() -> None:
    stack, weights = _clients()
    assert np.all(aggregate("fedavg", stack, weights, f=3) < -10)
    with pytest.raises(ValueError, match="krum"):
        aggregate("magic", stack, weights, f=3)
