"""The ``cluster`` row of bench/run on tiny sizes: a hub, then two replica processes on a real
PostgreSQL and a real redis-server, then on the real NATS. It checks that every figure is there
and every ACK is a committed row, never how fast anything is."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench import run as bench  # puts bench/ on sys.path: the perf package lives there

# isort: split
from perf import cluster

pytestmark = pytest.mark.timeout(90)


async def test_cluster_row_measures_one_hub_and_two_replicas(tmp_path: Path) -> None:
    options = cluster.ClusterOptions(
        configs=((1, None), (2, "redis"), (2, "nats")), subscribers=4, publishers=3, duration=0.3
    )
    raw = await bench.run_rows(["cluster"], {"cluster": options}, tmp_path, None)
    results = raw["cluster"]
    labels = [r["label"] for r in results]
    assert labels == ["1 hub (no bus)", "2 replicas (Redis)", "2 replicas (NATS)"]
    for result in results:
        relay, persist = result["relay"], result["persist"]
        assert relay["complete"] and relay["delivered"] == relay["expected"] > 0, relay
        assert persist["complete"] and persist["acked"] == persist["rows_committed"] > 0
        assert persist["relays_received"] == persist["acked"] * 2
        assert set(relay["cpu"]) >= {"r1", "load", "postgres", "other"}
    assert set(results[1]["persist"]["cpu"]) >= {"r1", "r2", "redis"}
    table = bench.build_table(raw)
    assert len(table) == 6
    for row in table:
        assert row.ratio is not None and math.isfinite(row.ratio) and row.ratio > 0, row
