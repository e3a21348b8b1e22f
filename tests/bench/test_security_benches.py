"""bench/abuse.py, bench/crash.py and bench/fuzz.py end to end on tiny sizes: real hub
processes, real abusers in their own processes. They check that each produces its figures and
that the hub held (nothing ACKed lost, no crash), never how fast anything is."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import run as bench  # puts bench/ on sys.path: the perf package and scripts are there

# isort: split
import abuse
import crash
import fuzz

pytestmark = pytest.mark.timeout(90)


async def test_abuse_phases_produce_a_row_each(tmp_path: Path) -> None:
    options = abuse.AbuseOptions(
        honest=3,
        quiet_seconds=0.5,
        seconds=1.5,
        settle=0.2,
        warmup=0.5,
        items=4,
        component_bytes=20_000,
        attacks=("pipelined_pings", "slow_reader"),
        rounds=1,
    )
    result = await abuse.run(tmp_path, options, log=lambda _: None)
    names = [phase["name"] for phase in result["phases"]]
    assert names == ["quiet", "pipelined_pings", "slow_reader", "quiet again"]
    assert result["seed"]["acked"] == 4
    for phase in result["phases"]:
        assert phase["acks"] > 0 and phase["p99_ms"] is not None and phase["rss_peak_mb"] > 0
        assert phase["honest_lost"] == 0
    pings = result["phases"][1]["attack"]
    assert pings["peer"]["got"]["PONG"] > 0, pings
    assert result["phases"][2]["attack"]["shares"] > 0
    assert result["hub_log_tracebacks"] == 0
    rows = bench.BUILDERS["abuse"](result)
    assert len(rows) == 2 and all(row.ratio is not None for row in rows)
    assert "pipelined PINGs" in abuse.markdown_table(result)
    assert [row["name"] for row in result["summary"]] == names


def _phase(name: str, p99: float, rss: float = 100.0, **attack: object) -> dict[str, object]:
    return {
        "name": name, "acks": 10, "p50_ms": p99 / 4, "p99_ms": p99, "rss_start_mb": rss,
        "rss_peak_mb": rss, "usage": {"server_cpu": 0.1}, "attack": attack, "honest_lost": 0,
        "honest_errors": [], "hub_warnings": {"slow": 1},
    }  # fmt: skip


def test_rounds_are_summarised_by_their_median_against_every_quiet_phase() -> None:
    # One stalled round out of three (90 ms) decides neither its row nor the quiet reference.
    phases = [
        _phase("quiet", 10.0), _phase("blank_flood", 12.0, rss=120, round=0),
        _phase("quiet", 90.0), _phase("blank_flood", 90.0, rss=150, round=1),
        _phase("quiet", 11.0), _phase("blank_flood", 14.0, rss=130, round=2),
        _phase("quiet again", 12.0),
    ]  # fmt: skip
    summary = {row["name"]: row for row in abuse.summarise(phases)}
    assert list(summary) == ["quiet", "blank_flood", "quiet again"]
    flood = summary["blank_flood"]
    assert flood["rounds"] == 3 and flood["acks"] == 30
    assert flood["p99_ms"] == 14.0 and flood["p99s_ms"] == [12.0, 90.0, 14.0]
    assert flood["rss_peak_mb"] == 150 and flood["attack"] == {"round": 2}
    assert flood["hub_warnings"] == {"slow": 3}
    assert abuse.quiet_p99(phases) == 11.5  # median of 10, 90, 11, 12
    (row,) = abuse.report_rows({"phases": phases, "summary": list(summary.values())})
    assert row.ratio == pytest.approx(14.0 / 11.5) and row.verdict == "PASS"


async def test_crash_cycles_lose_nothing(tmp_path: Path) -> None:
    result = await crash.run(
        tmp_path, cycles=2, clients=2, window=8, run_min=0.8, run_max=1.0, seed=1, log=print
    )
    assert result["acked"] > 0
    assert result["cycles_clean"] == 2
    assert result["missing"] == result["duplicated"] == result["altered"] == 0
    assert "| 2 |" in crash.table(result)


async def test_fuzz_frames_at_a_live_hub(tmp_path: Path) -> None:
    live = await fuzz.run_live(tmp_path, 150, seed=3, log=print)
    assert live["hub_alive_at_end"] and live["tracebacks"] == 0
    assert live["honest"]["pongs"] == live["honest"]["pings"] > 0
    assert live["rows_from_errored_frames"] == 0 and live["acked_items_missing"] == 0
    assert sum(live["codes"].values()) > 0
