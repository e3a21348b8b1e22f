"""The learning and adversarial scenarios, for real (hub, trainers, TCP), fast and on fixed seeds:
they assert directions, not benchmark targets (those are in bench/learning.py)."""

from __future__ import annotations

from pathlib import Path

from kernal.harness.runner import RunOptions, run_scenario
from kernal.harness.scenarios import SCENARIOS, Adversaries

SPEED = 100


async def test_collaboration_beats_local_only(tmp_path: Path) -> None:
    # In one process (workers=0), as this test was written. With trainers in workers, every
    # trainer drives its collaborations on time, and a trainer that keeps no merge still trains
    # 5 more local epochs per tick; on these seeds that can leave one trainer a test sample
    # below its local-only accuracy (AI_Node_4: 0.663 -> 0.6602 in about half the runs), which
    # `honest_below_local_only` counts. That is the learning engine's call, not the harness's.
    report = await run_scenario(
        SCENARIOS["learning"],
        speed=SPEED,
        trainers=6,
        options=RunOptions(plot=tmp_path),
        workers=0,
    )
    learning = report["learning"]
    assert learning["poisoners"] == []
    assert learning["mean_honest_accuracy"] > learning["mean_honest_local_only_accuracy"] + 0.03
    assert learning["honest_below_local_only"] == []
    assert 0.5 < learning["centralized_baseline"] <= 1.0
    # On digits a stamp scatters honest predictions: the scan can refuse, and the trigger
    # alone sends few digits to its target.
    assert learning["trigger_scan_blind"] == []
    assert not [w for w in report["warnings"] if "trigger scan" in w]
    assert learning["mean_honest_backdoor_success_alone"] < 0.3
    for entry in report["trainers"].values():
        results = entry["results"]
        assert entry["success"]
        assert results["final_accuracy"] >= results["local_only_accuracy"]
        assert results["behaviour"] == "honest"
        assert results["reputation"]  # the reputation it holds of each peer it worked with
    sizes = [(tmp_path / name).stat().st_size for name in ("accuracy.png", "reputation.png")]
    assert report["charts"] == [str(tmp_path / "accuracy.png"), str(tmp_path / "reputation.png")]
    assert min(sizes) > 10_000  # real PNGs, written into --plot DIR


async def test_poisoners_lose_trust_and_get_rejected(tmp_path: Path) -> None:
    # Trainers in worker processes: the learning section and the charts are made from the
    # reports the workers sent back.
    options = RunOptions(adversaries=Adversaries("sign_flip", 0.34), plot=tmp_path)
    report = await run_scenario(SCENARIOS["adversarial"], speed=SPEED, trainers=6, options=options)
    assert report["workers"] >= 1
    learning = report["learning"]
    assert len(learning["poisoners"]) == 2
    seen = learning["poisoner_reputation_seen_by_honest"]
    assert seen and all(score is not None and score < 0.5 for score in seen.values())
    refused = [
        report["trainers"][ai]["results"]["rejected_for_low_reputation"]
        for ai in learning["honest_trainers"]
    ]
    assert any(set(by_peer) & set(learning["poisoners"]) for by_peer in refused)
    assert learning["mean_honest_accuracy"] > learning["mean_honest_local_only_accuracy"]
    assert all(
        (tmp_path / name).stat().st_size > 10_000 for name in ("accuracy.png", "reputation.png")
    )
