"""What the hub stored from TRAINER_REPORTs agrees with the harness's report of the same run:
each trainer's last reported accuracy is the final accuracy the report gives it."""

from __future__ import annotations

from pathlib import Path

from kernal.harness.runner import run_scenario
from kernal.harness.scenarios import SCENARIOS
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
