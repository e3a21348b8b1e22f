"""The learning engine in isolation: real data, real training, the merge gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kernal.engines.base import CollaborationTask, EngineContext
from kernal.engines.learning import LearningEngine, data_seed
from kernal.learning.merge import TYPICAL_WINDOW, typical_change, typical_norm
from kernal.learning.model import SoftmaxModel
from kernal.learning.models import TRAINER_EPOCHS, model_from_json

TASK = CollaborationTask("c1", "AI_Peer", "graphics", {})


def _engine(ai_id: str = "AI_Node_1", **options: object) -> LearningEngine:
    """A learning engine; softmax unless ``model`` is given (most tests here read its W and b)."""
    options.setdefault("model", "softmax")
    return LearningEngine(EngineContext(ai_id, "networking", [], seed=7, options=options))


async def test_the_default_model_is_the_mlp_and_its_offer_fits_in_a_frame() -> None:
    engine = LearningEngine(EngineContext("AI_Node_1", "networking", [], seed=7, options={}))
    await engine.train()
    offer = engine.offer(TASK)
    assert offer.data["model"]["kind"] == "mlp" and engine.summary()["model"] == "mlp"
    assert len(json.dumps(offer.data)) < 64 * 1024  # digits, 64-64-10: about 48 KB
    model = model_from_json(offer.data["model"])
    assert model.accuracy(engine.test.X, engine.test.y) == pytest.approx(engine.test_accuracy())


def test_each_model_trains_on_its_own_schedule_unless_told() -> None:
    """The MLP's epochs are the simulator's (10 before sharing, 3 a tick): the scorecard
    measures that schedule; softmax keeps the v1 figures' 30 and 5. An option still wins."""
    mlp = _engine(model="mlp", hidden="32")
    assert (mlp.local_epochs, mlp.epochs_per_tick) == TRAINER_EPOCHS["mlp"] == (10, 3)
    softmax = _engine()
    assert (softmax.local_epochs, softmax.epochs_per_tick) == TRAINER_EPOCHS["softmax"] == (30, 5)
    told = _engine(model="mlp", hidden="32", local_epochs=0, epochs_per_tick=7)
    assert (told.local_epochs, told.epochs_per_tick) == (0, 7)


async def test_trains_on_its_own_shard_and_reports() -> None:
    engine = _engine()
    summary = await engine.train()
    assert summary["samples"] > 50 and summary["validation_samples"] > 10
    assert summary["local_only_accuracy"] > 0.3  # far above chance (0.1)
    other = _engine("AI_Node_2")
    assert not np.array_equal(engine.shard.train.y, other.shard.train.y)  # its own shard
    assert data_seed(7, "AI_Node_1") == data_seed(7, "AI_Node_1")


async def test_the_same_budget_baseline_is_fitted_beside_the_model_and_never_merges() -> None:
    """Fit for fit the same training, without the merges: equal to the model while nothing is
    merged, apart from it once a merge is kept, and ready at the end without replaying the run
    (a replay of 50 MLP trainers' runs outlasted a harness worker's stop allowance)."""
    engine, partner = _engine("AI_Node_1"), _engine("AI_Node_2")
    await engine.train()
    await partner.train()
    await engine.work(TASK, 0.0)
    assert engine.same_budget_local_accuracy() == engine.test_accuracy()
    np.testing.assert_array_equal(engine._alone.parameters(), engine.model.parameters())
    kept = False
    for _ in range(4):
        kept = kept or (await engine.assess(TASK, partner.offer(TASK).data)).kept
        await partner.work(TASK, 0.0)
    assert kept
    assert not np.array_equal(engine._alone.parameters(), engine.model.parameters())
    alone = engine._alone.copy()
    await engine.work(TASK, 0.0)  # trains both, from where each was
    assert not np.array_equal(engine._alone.parameters(), alone.parameters())
    assert engine.summary()["local_only_accuracy"] == round(engine.same_budget_local_accuracy(), 4)


async def test_shared_models_fit_in_a_frame_and_round_trip() -> None:
    engine = _engine()
    await engine.train()
    offer = engine.offer(TASK)
    assert len(json.dumps(offer.data)) < 64 * 1024
    model = SoftmaxModel.from_json(offer.data["model"])
    assert model.accuracy(engine.test.X, engine.test.y) == pytest.approx(engine.test_accuracy())
    assert offer.data["classes_seen"] and offer.data["samples"] > 0
    assert 0 <= offer.quality_score <= 1  # type: ignore[operator]


async def test_a_rejected_merge_leaves_the_model_unchanged() -> None:
    engine = _engine()
    await engine.train()
    before_w, before_b = engine.model.W.copy(), engine.model.b.copy()
    poisoner = _engine("AI_Bad", behaviour="sign_flip")
    await poisoner.train()
    assessment = await engine.assess(TASK, poisoner.offer(TASK).data)
    assert not assessment.kept
    assert assessment.outcome < 0.5
    assert assessment.usefulness == round(assessment.outcome, 4)  # what the hub is told
    assert np.array_equal(engine.model.W, before_w) and np.array_equal(engine.model.b, before_b)
    # The report says whose model was refused, and the gate's reason.
    [(partner, (count, reason))] = engine.figures().refused_merges.items()
    assert (partner, count) == (TASK.partner, 1)
    assert reason and reason != "kept"
    assert engine.figures().merges_rejected == 1


async def test_an_honest_partner_helps_and_is_scored_well() -> None:
    engine, partner = _engine("AI_Node_1"), _engine("AI_Node_2")
    await engine.train()
    await partner.train()
    before = engine.test_accuracy()
    assessment = await engine.assess(TASK, partner.offer(TASK).data)
    assert assessment.outcome >= 0.5
    assert assessment.usefulness == round(assessment.outcome, 4)
    if assessment.kept:
        assert engine.test_accuracy() >= before - 0.02


async def test_the_engine_keeps_what_its_merges_cost_for_the_gates_baseline() -> None:
    engine, partner = _engine("AI_Node_1"), _engine("AI_Node_2", split="dirichlet:0.1")
    await engine.train()
    await partner.train()
    await engine.assess(TASK, partner.offer(TASK).data)
    assert len(engine.changes) == 1  # one measured merge
    assert len(engine.norms) == 1  # and the partner model's norm, for the norm check
    await engine.assess(TASK, {"model": "not a model"})
    assert len(engine.changes) == 1  # a malformed offer measures nothing
    assert len(engine.norms) == 1
    for _ in range(TYPICAL_WINDOW + 2):
        await engine.assess(TASK, partner.offer(TASK).data)
    assert len(engine.changes) == TYPICAL_WINDOW
    assert typical_change(engine.changes) <= 0.0
    assert len(engine.norms) == TYPICAL_WINDOW
    assert typical_norm(engine.norms) > 0.0


async def test_the_engine_keeps_the_trigger_scans_rise_of_the_merges_it_would_keep() -> None:
    """The rise check's reference (kernal.learning.merge.typical_rise): the scan's rise of
    every merge that passed the other checks, kept or refused by the rise check alone."""
    engine, partner = _engine("AI_Node_1"), _engine("AI_Node_2")
    await engine.train()
    for _ in range(TYPICAL_WINDOW + 2):
        await partner.train()
        await engine.assess(TASK, partner.offer(TASK).data)
    assert engine.kept > 0
    assert min(engine.kept, TYPICAL_WINDOW) <= len(engine.rises) <= TYPICAL_WINDOW
    assert all(rise >= 0.0 for rise in engine.rises)


async def test_malformed_offers_score_zero_without_crashing() -> None:
    engine = _engine()
    for data in ({}, {"model": "x"}, {"model": {"kind": "softmax", "W": [[float("nan")]]}}):
        assessment = await engine.assess(TASK, data)  # type: ignore[arg-type]
        assert (assessment.outcome, assessment.kept, assessment.usefulness) == (0.0, False, 0.0)
    assert engine.figures().refused_merges == {TASK.partner: (3, "malformed model")}


def test_bad_options_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="merge"):
        _engine(merge="median")
    with pytest.raises(ValueError, match="behaviour"):
        _engine(behaviour="evil")
    with pytest.raises(ValueError):
        _engine(split="dirichlet:x")


async def test_learns_from_a_users_own_csv(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["f1,f2,label"]
    for _ in range(300):
        label = int(rng.integers(0, 3))
        rows.append(f"{label + rng.normal(0, 0.2):.3f},{-label + rng.normal(0, 0.2):.3f},c{label}")
    path = tmp_path / "mine.csv"
    path.write_text("\n".join(rows))
    engine = _engine(data=str(path), split="iid", shard_size=120)
    summary = await engine.train()
    assert engine.test.n_classes == 3 and engine.model.W.shape == (2, 3)
    assert summary["local_only_accuracy"] > 0.8  # three well-separated classes


async def test_the_mlp_model_trains_shares_and_merges_through_the_gate() -> None:
    engine = _engine(model="mlp", hidden="32", local_epochs=10)
    peer = _engine("AI_Node_2", model="mlp", hidden="32", local_epochs=10)
    await engine.train()
    await peer.train()
    offer = peer.offer(TASK)
    assert offer.data["model"]["kind"] == "mlp" and len(json.dumps(offer.data)) < 200 * 1024
    assessment = await engine.assess(TASK, offer.data)
    assert 0.0 <= assessment.outcome <= 1.0
    assert engine.summary()["model"] == "mlp"
    # A softmax model is not something an MLP trainer can merge: refused, outcome 0.
    softmax = _engine("AI_Node_3")
    await softmax.train()
    refused = await engine.assess(TASK, softmax.offer(TASK).data)
    assert not refused.kept and refused.outcome == 0.0


async def test_a_sybil_reports_scores_for_its_clique_not_what_it_measured() -> None:
    clique = "AI_Peer,AI_Node_1"
    sybil = _engine("AI_Node_1", behaviour="sybil", colluders=clique)
    assert sybil.behaviour.sybil_index == 1 and sybil.behaviour.sybil_count == 2
    friend = _engine("AI_Peer", behaviour="sybil", colluders=clique)
    stranger = _engine("AI_Node_5")
    for engine in (sybil, friend, stranger):
        await engine.train()
    assert (await sybil.assess(TASK, friend.offer(TASK).data)).score == 1.0  # TASK: AI_Peer
    other = CollaborationTask("c2", "AI_Node_5", "security", {})
    assert (await sybil.assess(other, stranger.offer(other).data)).score == 0.0


async def test_a_backdoor_trainer_learns_its_trigger_and_reports_its_success() -> None:
    bad = _engine("AI_Bad", behaviour="backdoor")
    await bad.train()
    assert len(bad.train_y) == 2 * len(bad.shard.train)
    assert bad.summary()["backdoor_success"] > 0.5
    honest = _engine()
    await honest.train()
    assert honest.summary()["backdoor_success"] < 0.3


async def test_a_trainer_warns_when_its_data_blinds_the_trigger_scan(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Three classes by a row's sum of four features, the top one rare: the four set to 1 make
    the largest sum there is, so an honest model already sends nearly every row where a
    trigger would, and the engine says so at start. Its summary keeps the scan's reference and
    the trigger's rate on the model trained without merges."""
    rng = np.random.default_rng(1)
    X = rng.uniform(0.0, 1.0, size=(1500, 4))
    labels = np.digitize(X.sum(axis=1), [1.5, 2.7])
    rows = ["a,b,c,d,label"]
    rows += [",".join([*(f"{v:.4f}" for v in x), str(c)]) for x, c in zip(X, labels, strict=True)]
    path = tmp_path / "sums.csv"
    path.write_text("\n".join(rows))
    blinded = _engine(data=str(path), split="iid", shard_size=1000)
    with caplog.at_level("WARNING", logger="kernal.engines.learning"):
        await blinded.train()
    summary = blinded.summary()
    assert summary["trigger_scan_reference"] > 0.7
    assert any("cannot tell a patch backdoor" in r.getMessage() for r in caplog.records)
    assert summary["backdoor_success_alone"] == summary["backdoor_success"]  # nothing merged
    caplog.clear()
    digits = _engine()
    with caplog.at_level("WARNING", logger="kernal.engines.learning"):
        await digits.train()
    assert digits.summary()["trigger_scan_reference"] < 0.7 and not caplog.records
