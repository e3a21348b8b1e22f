"""Acknowledged-share throughput of a real hub, against a same-machine reference.

The hub runs as its own process (``kernal.py hub``); this process is the load: C clients each
send M ``PATTERN_SHARE`` frames with up to W unacknowledged, and time every ACK (an ACK means the
row is committed with synchronous=FULL). The reference, measured in the same run, is what the
prototype did for every share: one SQLite INSERT and COMMIT (WAL, synchronous=FULL) per row.
Machines here are noisy, so read the ratio, not the absolute figures.

    .venv/bin/python bench/hub_throughput.py [--clients 8] [--shares 500] [--window 32]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LISTENING = re.compile(rb"Hub listening for trainers on [\d.]+:(\d+)")


async def start_hub(db: Path) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "kernal.py"),
        "hub",
        "--port",
        "0",
        "--dashboard-port",
        "-1",
        "--db",
        str(db),
        stderr=asyncio.subprocess.PIPE,
    )  # default log level, as users run it: one line per share is part of the cost
    assert proc.stderr is not None
    log = b""
    while not (match := LISTENING.search(log)):
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        if not line:
            raise RuntimeError(f"hub exited: {log.decode()}")
        log += line
    drain = asyncio.create_task(proc.stderr.read())  # keep the pipe from filling up
    proc.drain = drain  # type: ignore[attr-defined]
    return proc, int(match.group(1))


async def client(port: int, n: int, shares: int, window: int, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
    ai_id = f"AI_Node_{n + 1}"
    writer.write(json.dumps({"ai_id": ai_id, "token": f"secret{n + 1}"}).encode() + b"\n")
    writer.write(b'{"type":"HELLO","specialization":"bench"}\n')
    await writer.drain()
    while json.loads(await reader.readline())["type"] != "STATE":
        pass
    sent_at: dict[str, float] = {}
    slots = asyncio.Semaphore(window)
    payload = {"weights": [0.125] * 64, "round": 1}

    async def read_acks() -> None:
        done = 0
        while done < shares:
            reply = json.loads(await reader.readline())
            if reply.get("type") == "ACK":
                latencies.append(time.perf_counter() - sent_at.pop(reply["ref"]))
                slots.release()
                done += 1
            elif reply.get("type") == "ERROR":
                raise RuntimeError(reply)

    acks = asyncio.create_task(read_acks())
    for i in range(shares):
        await slots.acquire()
        ref = f"{ai_id}-{i}"
        frame = {"type": "PATTERN_SHARE", "msg_id": ref, "pattern_id": ref, "pattern_data": payload}
        sent_at[ref] = time.perf_counter()
        writer.write(json.dumps(frame).encode() + b"\n")
        if i % window == 0:
            await writer.drain()
    await writer.drain()
    await acks
    writer.close()
    await writer.wait_closed()


async def hub_run(clients: int, shares: int, window: int, workdir: Path) -> dict[str, float]:
    proc, port = await start_hub(workdir / "hub.db")
    latencies: list[float] = []
    try:
        started = time.perf_counter()
        await asyncio.gather(*(client(port, n, shares, window, latencies) for n in range(clients)))
        elapsed = time.perf_counter() - started
    finally:
        proc.terminate()
        await proc.wait()
    with sqlite3.connect(workdir / "hub.db") as db:
        stored = db.execute("SELECT COUNT(*) FROM shared_patterns").fetchone()[0]
    assert stored == clients * shares, f"{stored} rows for {clients * shares} ACKs"
    latencies.sort()
    return {
        "shares_per_s": clients * shares / elapsed,
        "ack_p50_ms": 1000 * statistics.median(latencies),
        "ack_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def reference_commit_per_row(rows: int, workdir: Path) -> float:
    """The prototype's way: INSERT + COMMIT per share, WAL, synchronous=FULL."""
    db = sqlite3.connect(workdir / "ref.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE shared_patterns (pattern_id TEXT PRIMARY KEY, pattern_data TEXT,"
        " contributor TEXT, timestamp REAL, usage_count INTEGER DEFAULT 0)"
    )
    data = json.dumps({"weights": [0.125] * 64, "round": 1})
    started = time.perf_counter()
    for i in range(rows):
        db.execute(
            "INSERT INTO shared_patterns VALUES (?, ?, ?, ?, 0)",
            (f"p{i}", data, "ref", time.time()),
        )
        db.commit()
    elapsed = time.perf_counter() - started
    db.close()
    return rows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent trainers (max 8)")
    parser.add_argument("--shares", type=int, default=500, help="shares per client")
    parser.add_argument("--window", type=int, default=32, help="unacknowledged shares per client")
    args = parser.parse_args()
    clients = min(args.clients, 8)  # demo tokens cover AI_Node_1..8
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        reference = reference_commit_per_row(clients * args.shares, workdir)
        hub = asyncio.run(hub_run(clients, args.shares, args.window, workdir))
    print(f"{'measure':<44}{'value':>12}")
    print(f"{'reference: SQLite commit per share (rows/s)':<44}{reference:>12.0f}")
    print(f"{'hub: acknowledged shares/s, end to end':<44}{hub['shares_per_s']:>12.0f}")
    print(f"{'hub: ACK latency p50 (ms)':<44}{hub['ack_p50_ms']:>12.2f}")
    print(f"{'hub: ACK latency p99 (ms)':<44}{hub['ack_p99_ms']:>12.2f}")
    print(f"{'ratio hub / reference':<44}{hub['shares_per_s'] / reference:>12.2f}")
    print(
        json.dumps(
            {
                "reference_rows_per_s": reference,
                **hub,
                "clients": clients,
                "shares_per_client": args.shares,
                "window": args.window,
            }
        )
    )


if __name__ == "__main__":
    main()
