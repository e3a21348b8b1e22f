"""What the harness gives each trainer, and what it warns about before a run."""

from __future__ import annotations

from kernal.harness.runner import RunOptions
from kernal.harness.scenarios import SCENARIOS, Adversaries


def test_sybils_learn_who_their_colluders_are_and_everyone_the_run_size() -> None:
    specs = SCENARIOS["adversarial"].trainers(100, Adversaries("sybil", 0.3))
    options = RunOptions(engine="learning", engine_options={"model": "softmax"})
    sybils = [s for s in specs if s.behaviour == "sybil"]
    assert len(specs) == 100 and len(sybils) == 30
    one = options.options_for(sybils[0], specs)
    assert one["behaviour"] == "sybil" and one["peers"] == 100
    assert one["colluders"].split(",") == [s.ai_id for s in sybils]
    honest = options.options_for(specs[0], specs)
    assert "colluders" not in honest and "behaviour" not in honest and honest["peers"] == 100
    # Another engine gets only what the run was given.
    assert "peers" not in RunOptions(engine="simulated").options_for(specs[0], specs)


def test_a_trust_threshold_above_the_initial_reputation_is_warned_about() -> None:
    assert RunOptions(trust_threshold=0.5).warnings() == []
    (warning,) = RunOptions(trust_threshold=0.7).warnings()
    assert "0.7" in warning and "accept no one" in warning
