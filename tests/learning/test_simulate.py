"""A small offline run of the protocol: collaboration helps, poisoners get distrusted."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from kernal.learning.simulate import SimResult, simulate


@cache
def _run(attack: str = "label_flip", n_bad: int = 0, merge: str = "gated") -> SimResult:
    return simulate(
        n_trainers=6, rounds=6, seed=0, malicious=range(n_bad), attack=attack, merge=merge
    )


def test_collaboration_beats_local_only() -> None:
    result = _run()
    assert result.mean_honest_accuracy > result.mean_local_accuracy + 0.05
    assert result.worst_gain() > 0.0
    assert result.honest_pairs_below() == 0.0
    assert result.kept > 0
    assert len(result.reputation) == 7 and result.reputation[0].shape == (6, 6)


def test_a_sign_flipper_is_distrusted_and_harmless_behind_the_gate() -> None:
    clean, attacked = _run(), _run("sign_flip", 1)
    assert attacked.behaviours[0] == "sign_flip" and attacked.poisoners == [0]
    assert attacked.poisoner_reputation()[-1] < 0.5
    assert attacked.detected_within(5) == 1.0
    assert attacked.mean_honest_accuracy > 0.9 * clean.mean_honest_accuracy
    # Without the gate the same attacker does visible damage.
    undefended = _run("sign_flip", 1, "fedavg")
    assert undefended.mean_honest_accuracy < attacked.mean_honest_accuracy - 0.05


def test_simulation_is_deterministic_and_validates_arguments() -> None:
    again = simulate(n_trainers=6, rounds=6, seed=0)
    np.testing.assert_array_equal(again.final_accuracy, _run().final_accuracy)
    assert set(again.summary()) >= {"mean_honest_accuracy", "honest_pairs_below"}
    with pytest.raises(ValueError):
        simulate(n_trainers=3, rounds=1, merge="magic")
    with pytest.raises(ValueError, match="shard layout"):
        simulate(n_trainers=3, rounds=1, layout="overlap")


def test_trainers_partitioning_the_pool_gain_together_too() -> None:
    parted = simulate(n_trainers=6, rounds=6, seed=0, layout="partition")
    assert parted.mean_honest_accuracy > parted.mean_local_accuracy + 0.05
    assert parted.worst_gain() > 0.0
    assert parted.mean_local_accuracy != _run().mean_local_accuracy  # other shards


def test_a_sybil_clique_stays_distrusted_by_every_trainer_it_poisoned() -> None:
    """Three colluders taking turns (each poisons a third of its shares, honest otherwise):
    every honest trainer a sybil poisoned ends the run distrusting it, however honest its other
    turns were (the book's strikes), and honest trainers keep trusting one another."""
    result = simulate(n_trainers=10, rounds=10, seed=0, malicious=[7, 8, 9], attack="sybil")
    final = result.reputation[-1]
    victims = [(h, s) for h, s in result.poisoned_pairs if h in result.honest]
    assert len(victims) >= 10
    assert all(final[h, s] < result.threshold for h, s in victims)
    assert result.honest_pairs_below() == 0.0
    # Measured without strikes (the plain average), 3 of these 12 victims end trusting again.


def test_pairs_below_the_threshold_are_counted_of_all_pairs_and_of_pairs_that_met() -> None:
    """Three honest trainers: 0 distrusts 1 after meeting it, and distrusts 2, which it never
    met (its seeded trust); ``honest_met_pairs_below`` counts only the ordered pairs that
    interacted, as the harness report does. The poisoner (3) counts in neither."""
    final = np.full((4, 4), 0.8)
    final[0, 1] = final[0, 2] = final[1, 3] = 0.2
    interactions = np.zeros((4, 4), dtype=np.int64)
    interactions[0, 1] = interactions[1, 0] = interactions[1, 2] = interactions[1, 3] = 1
    result = SimResult(
        behaviours=["honest", "honest", "honest", "sign_flip"],
        local_accuracy=[0.5] * 4,
        final_accuracy=[0.9] * 4,
        centralized_accuracy=0.95,
        reputation=[final],
        interactions=interactions,
        detection={},
        backdoor_success=[0.0] * 4,
    )
    assert result.honest_pairs_below() == pytest.approx(2 / 6)
    assert result.honest_met_pairs_below() == pytest.approx(1 / 3)  # (0,1) of (0,1) (1,0) (1,2)
    assert result.summary()["honest_met_pairs_below"] == pytest.approx(1 / 3)
    interactions[:] = 0
    assert np.isnan(result.honest_met_pairs_below())
