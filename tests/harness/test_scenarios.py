"""Each harness scenario, run for real (hub, trainers, TCP, SQLite) at high speed: most with the
hub and trainers in processes of their own, as users run them; some in one event loop
(``workers=0``), the mode kept for debugging."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from kernal.harness.runner import RunOptions, default_workers, run_scenario
from kernal.harness.scenarios import SCENARIOS

# These tests are about the harness's mechanics (trainers, timing, samples, report), so they
# use the simulated engine, whose work takes no real time at any speed. The learning engine
# has its own scenario tests (test_learning_scenarios.py).
SIMULATED = RunOptions(engine="simulated")


def _check_report(report: dict[str, Any], trainers: int, duration: float) -> None:
    assert set(report) >= {
        "scenario",
        "start_time",
        "trainers",
        "hub_stats",
        "final_stats",
        "end_time",
        "duration",
    }
    json.dumps(report)  # the report is plain JSON
    assert len(report["trainers"]) == trainers
    assert report["interrupted"] is False
    assert report["summary"] == {
        "trainers": trainers,
        "succeeded": trainers,
        "failed": 0,
        "never_connected": 0,
        "errors": {},
    }
    for ai_id, entry in report["trainers"].items():
        assert entry["success"], (ai_id, entry["results"])
        assert "error" not in entry["results"]  # only a trainer that failed has one
        assert entry["results"]["patterns_shared"] == 3
        assert entry["results"]["components_shared"] == 2
    expected_keys = [f"t_{t}s" for t in range(30, int(duration), 30)]
    assert list(report["hub_stats"]) == expected_keys
    for sample in report["hub_stats"].values():
        assert set(sample) >= {"shared_patterns", "shared_components", "connected_ais"}
    final = report["final_stats"]
    assert final["shared_patterns"] == 3 * trainers
    assert final["shared_components"] >= 2 * trainers
    assert final["connected_ais"] == trainers
    assert report["end_time"] > report["start_time"]
    assert report["duration"] < duration  # ran faster than real time


async def test_basic() -> None:
    # The default (learning) engine: its training takes real time whatever the speed, so a
    # moderate speed keeps this from depending on how loaded the machine is.
    report = await run_scenario(SCENARIOS["basic"], speed=60)
    assert report["scenario"] == "Basic Collaboration"
    assert report["workers"] == min(2, default_workers())  # one per core, none idle
    assert set(report["trainers"]) == {"AI_Node_1", "AI_Node_2"}
    _check_report(report, 2, 180)
    assert report["final_stats"]["collaborations_completed"] >= 1
    # Counts only grow over time.
    samples = list(report["hub_stats"].values())
    assert all(a["shared_patterns"] <= b["shared_patterns"] for a, b in itertools.pairwise(samples))


async def test_multi_spec() -> None:
    report = await run_scenario(SCENARIOS["multi_spec"], speed=200, options=SIMULATED, workers=0)
    assert report["workers"] == 0
    assert set(report["trainers"]) == {"AI_Node_1", "AI_Node_2", "AI_Node_3", "AI_WindowManager"}
    specs = {t["results"]["specialization"] for t in report["trainers"].values()}
    assert len(specs) == 4
    _check_report(report, 4, 300)


async def test_stress_test() -> None:
    # A load test of the hub: the simulated engine keeps the trainers' own work negligible.
    report = await run_scenario(
        SCENARIOS["stress_test"], speed=40, trainers=20, options=SIMULATED, workers=2
    )
    _check_report(report, 20, 120)
    assert report["workers"] == 2


async def test_sequential_trainers_join_one_after_another() -> None:
    # Speed 20 leaves half a real second between a join (t=20 s) and the sample at t=30 s, so a
    # loaded machine still logs the trainer in before the hub is sampled.
    report = await run_scenario(
        SCENARIOS["sequential"], speed=20, trainers=4, options=SIMULATED, workers=0
    )
    duration = 3 * 20 + 90
    _check_report(report, 4, duration)
    connected = [sample["connected_ais"] for sample in report["hub_stats"].values()]
    assert connected[0] == 2  # at t=30 s: the ones that joined at 0 and 20 s
    assert connected == sorted(connected)


async def test_uses_the_given_database(tmp_path: Path) -> None:
    db = tmp_path / "kept.db"
    report = await run_scenario(
        SCENARIOS["basic"], speed=200, db=str(db), options=SIMULATED, workers=0
    )
    assert db.exists()
    import sqlite3

    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM shared_patterns").fetchone() == (
            report["final_stats"]["shared_patterns"],
        )


@pytest.mark.parametrize("key", sorted(SCENARIOS))
def test_scenario_definitions(key: str) -> None:
    scenario = SCENARIOS[key]
    specs = scenario.trainers()
    assert len(specs) == scenario.default_trainers
    assert len({s.ai_id for s in specs}) == len(specs)
    assert all(s.join_at < scenario.duration(len(specs)) for s in specs)
