"""What the hub stored from TRAINER_REPORTs agrees with the harness's report of the same run:
each trainer's last reported accuracy is the final accuracy the report gives it."""

from __future__ import annotations

from pathlib import Path

from kernal.harness.runner import RunOptions, run_scenario
from kernal.harness.scenarios import SCENARIOS, Adversaries
from kernal.storage.sql import SqlStore


async def test_hub_reports_agree_with_the_harness_report(tmp_path: Path) -> None:
    db = str(tmp_path / "hub.db")
    report = await run_scenario(SCENARIOS["learning"], speed=100, trainers=3, db=db, workers=0)
    async with SqlStore(db) as store:
        latest = {r.ai_id: r for r in await store.latest_trainer_reports()}
        series = await store.trainer_reports()
    trainers = report["trainers"]
    assert set(latest) == set(trainers)
    for ai_id, entry in trainers.items():
        results = entry["results"]
        last = latest[ai_id]
        assert last.final
        assert last.accuracy == results["final_accuracy"]
        assert last.local_only_accuracy == results["local_only_accuracy"]
        assert last.merges_kept == results["engine_summary"]["merges_kept"]
        assert last.trust == results["reputation"]
        # Reports came all along the run, not only at the end.
        assert sum(1 for r in series if r.ai_id == ai_id) > 1


async def test_hub_knows_whom_each_trainer_refused_as_its_report_does(tmp_path: Path) -> None:
    db = str(tmp_path / "hub.db")
    # The agreement is the point here, not the model: the softmax model trains in a fraction of
    # the MLP's time, so six trainers sharing the hub's process (workers=0) keep up with the
    # clock on a loaded CI machine (the MLP's lag there, 0.34 s at --speed 100, once left every
    # poisoner undetected and this test with nothing to compare).
    options = RunOptions(
        engine_options={"model": "softmax"}, adversaries=Adversaries("sign_flip", 0.34)
    )
    report = await run_scenario(
        SCENARIOS["adversarial"], speed=100, trainers=6, db=db, options=options, workers=0
    )
    async with SqlStore(db) as store:
        latest = {r.ai_id: r for r in await store.latest_trainer_reports()}
    poisoners = set(report["learning"]["poisoners"])
    for ai_id in report["learning"]["honest_trainers"]:
        refused = report["trainers"][ai_id]["results"]["rejected_for_low_reputation"]
        assert {peer: count for peer, (count, _) in latest[ai_id].rejected.items()} == refused
        # The trust the page draws is the trust the trainer reported.
        assert latest[ai_id].trust == report["trainers"][ai_id]["results"]["reputation"]
    # How fast each honest trainer meets each poisoner depends on the machine's load; that the
    # trust it measures has caught some of them by the end does not.
    honest = report["learning"]["honest_trainers"]
    assert any(latest[ai].trust.get(p, 1.0) < 0.5 for ai in honest for p in poisoners)
    assert any(latest[ai].rejected for ai in honest)
