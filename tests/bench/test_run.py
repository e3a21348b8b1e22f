"""bench/run end to end on tiny sizes: real hubs, a real redis-server and nats-server, the real
harness command. It checks that every row produces finite figures and a ratio, never how fast
anything is (no timing thresholds)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from bench import run as bench  # puts bench/ on sys.path: the perf package lives there

# isort: split
from perf import connections, fanin, relay, report, scale, systems, wire

pytestmark = pytest.mark.timeout(60)


def _finite(rows: list[report.Row]) -> None:
    assert rows
    for row in rows:
        assert "n/a" not in (row.kernal, row.reference), row
        if "idle CPU" in row.row:
            continue  # an idle server's CPU can be 0.0%: no ratio then
        assert row.ratio is not None and math.isfinite(row.ratio) and row.ratio > 0, row


async def test_relay_fanin_and_connection_rows(tmp_path: Path) -> None:
    options = {
        "relay": relay.RelayOptions(sizes=(5,), duration=0.3, stall=10.0),
        "fanin": fanin.FaninOptions(sizes=(3,), duration=0.3, reference_seconds=0.2),
        "connections": connections.ConnectionOptions(
            sizes=(20,), burst=20, idle_seconds=0.2, quiet_limit=0.0
        ),
    }
    raw = await bench.run_rows(list(options), options, tmp_path, None)
    table = bench.build_table(raw)
    assert len(table) == 2 + 1 + 4  # relay vs Redis and NATS, fan-in, 3 idle rows + burst
    _finite(table)
    for result in raw["relay"]:
        assert result["complete"] and result["delivered"] == result["expected"] > 0, result
        assert result["samples"] > 0
    (run,) = raw["fanin"]["runs"]
    assert run["acked"] == run["sent"] == run["rows_committed"] > 0
    assert run["relays_received"] == run["acked"] * 2
    assert all(
        r["admitted"] == 20 for r in raw["connections"]["idle"] + raw["connections"]["burst"]
    )
    meta = {
        "command": "bench/run",
        "date": "today",
        "machine": bench.machine("asyncio"),
        "load_start": bench.loadavg(),
        "load_end": bench.loadavg(),
        "wall_s": 1.0,
        "quick": False,
    }
    text = report.text_table(table)
    doc = bench.document(meta, table, bench.options_for(False))
    for row in table:
        assert row.row in text and row.row in doc


async def test_harness_row(tmp_path: Path) -> None:
    # The learning step at speed 50, not 200: its trainers' training takes real time, and
    # 0.6 s of scenario was not always enough on a busy machine (2.4 s is).
    options = scale.ScaleOptions(
        steps=(3,), speed=200.0, learning_trainers=2, learning_speed=50.0, timeout=50.0
    )
    raw = await bench.run_rows(["harness"], {"harness": options}, tmp_path, None)
    table = bench.build_table(raw)
    assert raw["harness"]["steps"][0]["succeeded"] == 3
    assert raw["harness"]["steps"][0]["loop_lag_p99"] >= 0  # the machine's lag, measured
    assert raw["harness"]["learning"]["succeeded"] == 2
    _finite(table)


def _redis_stream(count: int) -> bytes:
    frames = []
    for i in range(count):
        payload = systems.request(i, b"%019d" % (time.perf_counter_ns() - 1_000_000))
        frames.append(systems.Redis.marker + payload + b"\r\n")
    return b"".join(frames)


@pytest.mark.parametrize("chunk", [1, 7, 40, 299, 300, 301, 4096])
def test_counter_counts_across_chunk_boundaries(chunk: int) -> None:
    stream = _redis_stream(500)
    tally = wire.Tally(k=10)
    counter = wire.Counter(tally, systems.Redis.marker, marker_ends_frame=False)
    for start in range(0, len(stream), chunk):
        counter.feed(stream[start : start + chunk])
    assert tally.delivered == 500
    assert len(tally.latencies) + tally.skipped == 50
    assert all(0 < x < 60 for x in tally.latencies)


def test_counter_finds_timestamps_before_a_newline() -> None:
    stream = b"".join(systems.request(i, wire.stamp()) + b"\n" for i in range(200))
    tally = wire.Tally(k=10)
    counter = wire.Counter(tally, b"\n", marker_ends_frame=True)
    for start in range(0, len(stream), 1000):
        counter.feed(stream[start : start + 1000])
    assert tally.delivered == 200
    assert len(tally.latencies) + tally.skipped == 20 and tally.latencies


def test_messages_are_256_bytes() -> None:
    assert len(systems.request(123, wire.stamp())) == systems.MESSAGE_BYTES == 256
    assert len(fanin.PATTERN_DATA) == fanin.PATTERN_BYTES


def test_doc_keeps_text_after_the_generated_part(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    report.write_doc(doc, "first")
    doc.write_text(doc.read_text() + "\n## Hand-written\n\nkept\n")
    report.write_doc(doc, "second")
    text = doc.read_text()
    assert "second" in text and "first" not in text and "kept" in text
