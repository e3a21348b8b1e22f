"""Adaptive attacks do what their papers say, and the measurements around them work."""

from __future__ import annotations

import importlib
from functools import cache

import numpy as np
import pytest

from kernal.learning.adaptive import (
    BACKDOOR_TARGET,
    Knowledge,
    alie,
    alie_z,
    attack_success_rate,
    backdoor_training_set,
    gate_aware,
    ipm,
    minmax,
    trigger,
)
from kernal.learning.attacks import Behaviour
from kernal.learning.data import Dataset, Shard
from kernal.learning.merge import (
    COMPETENT_ALLOWANCE,
    COMPETENT_HIJACK,
    HIJACK_LIMIT,
    HIJACK_MARGIN,
    LOSSY_COST,
    RISE_FACTOR,
    RISE_FLOOR,
    claimed_accuracy,
    evaluate_merge,
    hijack_rate,
    merge,
    scan_blind_spot,
    scan_rise,
    typical_rise,
)
from kernal.learning.model import SoftmaxModel
from kernal.learning.simulate import SimResult, simulate


def _knowledge(models: tuple[SoftmaxModel, ...], shard: Shard | None = None) -> Knowledge:
    return Knowledge(
        reference=SoftmaxModel.zeros(64, 10),
        observed=list(models),
        val_X=None if shard is None else shard.val.X,
        val_y=None if shard is None else shard.val.y,
        trainers=10,
        malicious=3,
    )


def test_alie_z_follows_the_papers_formula() -> None:
    # n = 10, m = 3: s = floor(6) - 3 = 3, z = Phi^-1(7 / 10) = 0.5244.
    assert alie_z(10, 3) == pytest.approx(0.5244, abs=1e-4)
    assert alie_z(100, 30) == pytest.approx(0.8064, abs=1e-4)  # s = 21, Phi^-1(0.79)


def test_alie_stays_within_z_standard_deviations(models: tuple[SoftmaxModel, ...]) -> None:
    knowledge = _knowledge(models)
    stack = np.stack([m.parameters() for m in models])
    mu, sigma = stack.mean(axis=0), stack.std(axis=0)
    shared = alie(models[0], knowledge).parameters()
    z = alie_z(10, 3)
    assert np.all(np.abs(shared - mu) <= z * sigma + 1e-12)
    assert np.abs(shared - mu).max() > 0.5 * z * sigma.max()  # and it does use the room


def test_ipm_is_anti_aligned_with_the_honest_mean(models: tuple[SoftmaxModel, ...]) -> None:
    shared = ipm(models[0], _knowledge(models)).parameters()
    mean = np.mean([m.parameters() for m in models], axis=0)
    cosine = shared @ mean / (np.linalg.norm(shared) * np.linalg.norm(mean))
    assert cosine == pytest.approx(-1.0)
    assert np.linalg.norm(shared) == pytest.approx(0.5 * np.linalg.norm(mean))


def test_minmax_stays_within_the_honest_spread_and_moves_against_the_mean(
    models: tuple[SoftmaxModel, ...],
) -> None:
    shared = minmax(models[0], _knowledge(models)).parameters()
    stack = np.stack([m.parameters() for m in models])
    spread = max(np.linalg.norm(a - b) for a in stack for b in stack)
    assert np.max(np.linalg.norm(stack - shared, axis=1)) <= spread + 1e-9
    mean = stack.mean(axis=0)
    assert (shared - mean) @ mean < 0


def test_gate_aware_passes_the_attackers_own_gate_and_does_harm(
    models: tuple[SoftmaxModel, ...], shards: tuple[Shard, ...], test_set: Dataset
) -> None:
    own, shard = models[0], shards[0]
    shared = gate_aware(own, _knowledge(models, shard))
    decision = evaluate_merge(own, shared, shard.val.X, shard.val.y)
    assert decision.kept and decision.outcome >= 0.55
    # A little harm per round (slow poisoning): less probability on the true test labels.
    rows = np.arange(len(test_set.y))

    def confidence(m: SoftmaxModel) -> float:
        return float(m.predict_proba(test_set.X)[rows, test_set.y].mean())

    assert confidence(shared) < confidence(own) - 0.01


def test_a_backdoored_models_trigger_accuracy_is_measured(pool: Dataset, test_set: Dataset) -> None:
    clean = SoftmaxModel.zeros(64, 10).fit(pool.X, pool.y, 30, seed=0)
    X, y = backdoor_training_set(pool.X, pool.y)
    assert len(y) == 2 * len(pool.y) and np.all(y[len(pool.y) :] == BACKDOOR_TARGET)
    bad = SoftmaxModel.zeros(64, 10).fit(X, y, 30, seed=0)
    assert np.all(trigger(test_set.X)[:, -4:] == 1.0)
    assert attack_success_rate(clean, test_set.X, test_set.y) < 0.2
    assert attack_success_rate(bad, test_set.X, test_set.y) > 0.8
    # The backdoor hides: clean accuracy stays close to the clean model's.
    assert bad.accuracy(test_set.X, test_set.y) > clean.accuracy(test_set.X, test_set.y) - 0.05


def test_sybils_take_turns_and_rate_each_other_up() -> None:
    sybils = [Behaviour("sybil", i, 3) for i in range(3)]
    for interaction in range(18):
        assert sum(s.attacking(interaction) for s in sybils) == 1  # exactly one attacks
    assert [sybils[1].attacking(n) for n in range(9)] == [False] * 3 + [True] * 3 + [False] * 3
    assert sybils[0].reported_score(0.9, partner_is_colluder=False) == 0.0
    assert sybils[0].reported_score(0.1, partner_is_colluder=True) == 1.0
    assert Behaviour("honest").reported_score(0.7, partner_is_colluder=False) == 0.7
    with pytest.raises(ValueError):
        Behaviour("sybil", 3, 3)


@cache
def _sybil_run() -> SimResult:
    return simulate(
        n_trainers=10,
        rounds=12,
        seed=0,
        malicious=(7, 8, 9),
        attack="sybil",
        seed_from_hub=True,
        feedback="outcome",
    )


def test_a_sybil_clique_is_distrusted_by_the_reference_trust_logic() -> None:
    """Three sybils among ten take turns at poisoning and rate each other 1 and everyone else
    0 at the hub, and honest trainers start a peer they meet at min(0.5, hub standing)."""
    result = _sybil_run()
    final = result.reputation[-1]
    honest, sybils = result.honest, result.poisoners
    poisoned = [(h, s) for h, s in result.poisoned_pairs if h in honest]
    assert poisoned
    # Most trainers a sybil poisoned distrust it at the end (measured 9 of 13: the others
    # had come to trust it during its honest turns and stay just above 0.5, as the attack
    # intends).
    assert sum(final[h, s] < 0.5 for h, s in poisoned) >= 2 / 3 * len(poisoned)

    def seen(targets: list[int]) -> float:
        pairs = [(h, t) for h in honest for t in targets if h != t and result.interactions[h, t]]
        return float(np.mean([final[h, t] for h, t in pairs]))

    assert seen(sybils) < seen(honest) - 0.1
    # Their ratings of each other do not lift them above the honest trainers at the hub.
    assert (
        max(result.hub_standing[s] for s in sybils)
        < min(result.hub_standing[h] for h in honest) + 0.1
    )


def test_adaptive_attacks_run_in_the_simulator() -> None:
    for attack in ("alie", "ipm", "minmax", "gate_aware", "backdoor"):
        result = simulate(
            n_trainers=5, rounds=2, seed=0, malicious=(4,), attack=attack, omniscient=True
        )
        assert 0.0 <= result.mean_honest_accuracy <= 1.0
        assert 0.0 <= result.mean_backdoor_success <= 1.0


def _backdoored(shard: Shard) -> SoftmaxModel:
    """A model trained on ``shard`` plus its every sample triggered and relabelled."""
    X, y = backdoor_training_set(shard.train.X, shard.train.y)
    return SoftmaxModel.zeros(64, 10).fit(X, y, 30, seed=0)


def test_the_gates_trigger_scan_refuses_a_patch_backdoor_not_honest_models(
    pool: Dataset, shards: tuple[Shard, ...], models: tuple[SoftmaxModel, ...]
) -> None:

    bad = _backdoored(shards[1])
    val = shards[0].val
    assert hijack_rate(bad, val.X) >= 0.7 > hijack_rate(models[0], val.X)
    decision = evaluate_merge(models[0], bad, val.X, val.y)
    assert not decision.kept and decision.outcome == 0.0 and "patch" in decision.reason
    for other in models[1:]:
        assert "patch" not in evaluate_merge(models[0], other, val.X, val.y).reason


def test_the_scan_warns_that_it_is_blind_exactly_when_it_would_let_a_patch_backdoor_pass(
    pool: Dataset, shards: tuple[Shard, ...], models: tuple[SoftmaxModel, ...]
) -> None:
    """On a table where the receiver's own model already sends most stamped rows to one class,
    no partner can rise the scan's margin above it: the same backdoored model the scan refuses
    for a digits receiver passes the scan there, and ``scan_blind_spot`` says so."""

    bad = _backdoored(shards[1])
    val = shards[0].val
    clean_rate = hijack_rate(models[0], val.X)
    assert scan_blind_spot(clean_rate) is None
    assert (
        "patch" in evaluate_merge(models[0], bad, val.X, val.y, hijack_reference=clean_rate).reason
    )
    blind_rate = 1.0 - HIJACK_MARGIN + 0.05
    assert "cannot tell a patch backdoor" in (scan_blind_spot(blind_rate) or "")
    blind = evaluate_merge(models[0], bad, val.X, val.y, hijack_reference=blind_rate)
    assert "patch" not in blind.reason


def test_a_partly_backdoored_receiver_still_refuses_the_backdoor(
    pool: Dataset, shards: tuple[Shard, ...], models: tuple[SoftmaxModel, ...]
) -> None:
    """Once a backdoor slipped in partly, the receiver's own model maps the patch too: measured
    against that model the next backdoored share would pass; against the receiver's rate before
    any merge (``hijack_reference``) it does not."""

    bad = _backdoored(shards[1])
    val = shards[0].val
    clean_rate = hijack_rate(models[0], val.X)
    infected = merge(models[0], bad, weight=0.8)
    assert hijack_rate(infected, val.X) > clean_rate + 0.3
    drifting = evaluate_merge(infected, bad, val.X, val.y)
    assert "patch" not in drifting.reason  # the bar rose with the infection
    anchored = evaluate_merge(infected, bad, val.X, val.y, hijack_reference=clean_rate)
    assert not anchored.kept and anchored.outcome == 0.0 and "patch" in anchored.reason


def test_a_partner_carrying_part_of_a_backdoor_gets_no_competent_allowance(
    pool: Dataset, shards: tuple[Shard, ...], models: tuple[SoftmaxModel, ...]
) -> None:
    """Diluted below the patch scan's limit, a backdoor still shows in the partner's rate, and
    the partner is right on clean rows: it is judged against the typical cost alone, not
    excused the cost of averaging."""

    bad = _backdoored(shards[1])
    own, val = models[0], shards[0].val
    clean_rate = hijack_rate(own, val.X)
    carriers = [merge(models[3], bad, weight=w) for w in (0.4, 0.5, 0.6, 0.7)]
    carriers = [
        m
        for m in carriers
        if clean_rate + COMPETENT_HIJACK <= hijack_rate(m, val.X) < HIJACK_LIMIT
        and (claimed_accuracy(own, m, val.X, val.y) or 0.0) >= 0.5
    ]
    assert carriers, "no diluted carrier between the two limits"
    for carrier in carriers:
        decision = evaluate_merge(own, carrier, val.X, val.y, typical=-0.05)
        assert decision.measured and decision.baseline == -0.05
    clean = evaluate_merge(own, models[3], val.X, val.y, typical=-0.05)
    assert clean.baseline == COMPETENT_ALLOWANCE


def test_the_hubs_credibility_reaches_trainers_the_sybils_never_attacked() -> None:
    """The same clique, with and without the hub's word reaching the trainers: without it,
    only the trainers a sybil poisoned distrust it; with it (the hub's rule, which finds the
    sybils' 0s for honest peers contradicting every honest rater), every honest trainer that
    met a sybil distrusts it within five interactions, and no honest pair falls below."""
    alone = simulate(
        n_trainers=10, rounds=12, seed=0, malicious=(7, 8, 9), attack="sybil", feedback="outcome"
    )
    result = _sybil_run()
    assert alone.detected_within() < 0.9
    assert result.detected_within() == 1.0
    assert result.honest_pairs_below() == 0.0
    assert max(result.hub_standing[s] for s in result.poisoners) < 0.5


def test_a_backdoor_diluted_below_the_scans_limit_is_not_kept_past_the_usual_rise(
    shards: tuple[Shard, ...], models: tuple[SoftmaxModel, ...]
) -> None:
    """A carrier of a diluted backdoor passes the patch scan (under 70%) and would be kept, but
    merging it moves one stamp's class far more than the receiver's honest merges move any:
    with the usual rise its own honest merges set (:func:`typical_rise`), it is refused while
    every honest partner is still kept, and its outcome is the same either way."""

    bad = _backdoored(shards[1])
    own, val = models[2], shards[2].val
    reference = hijack_rate(own, val.X)
    honest = [m for i, m in enumerate(models) if i not in (1, 2)]
    decisions = [evaluate_merge(own, m, val.X, val.y, hijack_reference=reference) for m in honest]
    assert all(d.kept and d.scan_rise is not None for d in decisions)
    rises = [d.scan_rise for d in decisions if d.scan_rise is not None]
    assert rises == [pytest.approx(scan_rise(merge(own, m), own, val.X)) for m in honest]
    usual = typical_rise(rises)
    assert usual is not None and max(RISE_FLOOR, RISE_FACTOR * usual) > max(rises)
    assert typical_rise(rises[:3]) is None  # too few to know what is usual

    carrier = merge(models[0], bad, weight=0.8)
    assert hijack_rate(carrier, val.X) < HIJACK_LIMIT
    unchecked = evaluate_merge(own, carrier, val.X, val.y, hijack_reference=reference)
    assert unchecked.kept and unchecked.scan_rise is not None
    assert unchecked.scan_rise >= max(RISE_FLOOR, RISE_FACTOR * usual)
    checked = evaluate_merge(
        own, carrier, val.X, val.y, hijack_reference=reference, usual_rise=usual
    )
    assert not checked.kept and checked.model is own and "more of our inputs" in checked.reason
    assert checked.outcome == unchecked.outcome and checked.scan_rise == unchecked.scan_rise
    for m in honest:
        again = evaluate_merge(own, m, val.X, val.y, hijack_reference=reference, usual_rise=usual)
        assert again.kept


def test_a_merge_that_costs_accuracy_is_kept_only_if_its_scan_rises_no_more_than_usual(
    shards: tuple[Shard, ...], models: tuple[SoftmaxModel, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a usual rise (a receiver's first merges) a merge that costs validation accuracy
    is refused, as it always was; with one, it is kept if the trigger scan rises no more than
    usual and it costs little probability, and refused otherwise."""
    # The module (the package's ``merge`` is the function of that name).
    merge_module = importlib.import_module("kernal.learning.merge")

    lossy = []
    for i, own in enumerate(models):
        val = shards[i].val
        for j, other in enumerate(models):
            if i == j:
                continue
            decision = evaluate_merge(own, other, val.X, val.y)
            if decision.merged_accuracy < decision.own_accuracy and "validation" in decision.reason:
                lossy.append((own, other, val, decision))
    candidates = [
        (own, other, val, scan_rise(merge(own, other), own, val.X))
        for own, other, val, d in lossy
        if d.likelihood_change >= -LOSSY_COST  # costs little probability: accuracy refused it
    ]
    assert candidates, "no merge refused on accuracy alone"
    for own, other, val, rise in candidates:
        assert not evaluate_merge(own, other, val.X, val.y).kept
        assert evaluate_merge(own, other, val.X, val.y, usual_rise=max(rise, RISE_FLOOR)).kept
        below = max(RISE_FLOOR, RISE_FACTOR * rise) / RISE_FACTOR * 0.99
        if rise > RISE_FLOOR / RISE_FACTOR:
            tight = evaluate_merge(own, other, val.X, val.y, usual_rise=below)
            assert not tight.kept and tight.reason == "worse on our validation data"
    # However usual its rise, a merge costing more than LOSSY_COST of the probability is not kept.
    costs = [-d.likelihood_change for _, _, _, d in lossy if d.likelihood_change < 0]
    assert costs, "no lossy merge costs any probability"
    monkeypatch.setattr(merge_module, "LOSSY_COST", min(costs) / 2)
    for own, other, val, d in lossy:
        if d.likelihood_change < 0:
            assert not evaluate_merge(own, other, val.X, val.y, usual_rise=1.0).kept


def test_the_usual_rise_is_the_median_of_the_last_merges() -> None:

    assert typical_rise([]) is None
    assert typical_rise([0.01, 0.02, 0.01]) is None
    assert typical_rise([0.1, 0.1, 0.2, 0.1, 0.9]) == pytest.approx(0.1)
    assert typical_rise([0.9] * 30 + [0.1] * 20) == pytest.approx(0.1)  # the last 20
