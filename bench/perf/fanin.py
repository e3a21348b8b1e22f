"""Row 2, persisted fan-in: P publishers send ``PATTERN_SHARE``s, each with at most ``window``
unacknowledged; the hub commits each one (SQLite, WAL, ``synchronous=FULL``), ACKs it, and
relays it to the other P - 1, as it does today.

Reference, the same run and machine: the write ceiling of that database, that is rows of the
same size inserted into ``shared_patterns`` (schema made by kernal's own migrations) with
``executemany`` in transactions of :data:`REFERENCE_BATCH` rows (the hub store's largest
batch), WAL and ``synchronous=FULL``, in a tight loop pinned to the server core. For scale, the
same with one row per transaction (what the prototype did per share) is measured too.

Acked shares/s = ACKs received / (last ACK - first send). Every ACK's latency is kept. After the
hub stops, the rows in its database are counted: an ACK must mean a committed row.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perf import procs
from perf.systems import join_hub
from perf.wire import Link, Marker, open_all, percentile

PATTERN_BYTES = 256
REFERENCE_BATCH = 256  # SqlStore's default max_batch: the most writes the hub puts in one commit
_DATA = json.dumps({"weights": ""}, separators=(",", ":"))
PATTERN_DATA = json.dumps(
    {"weights": "w" * (PATTERN_BYTES - len(_DATA))}, separators=(",", ":")
)  # exactly PATTERN_BYTES of compact JSON, as the hub stores it


@dataclass(frozen=True)
class FaninOptions:
    sizes: tuple[int, ...] = (10, 100, 1000)
    duration: float = 3.0  # seconds of sharing per run
    window: int = 32  # unacknowledged shares per publisher
    reference_seconds: float = 3.0
    stall: float = 10.0  # seconds without progress before a run stops waiting
    settle_limit: float = 60.0  # at most this long waiting for ACKs and relays after sending
    join_base: float = 30.0
    join_per_publisher: float = 0.1
    concurrency: int = 100


class Publisher:
    """One sharing trainer: counts its ACKs (timing each), the relays it receives, errors."""

    def __init__(self, link: Link, ai_id: str, window: int) -> None:
        self.link, self.ai_id, self.window = link, ai_id, window
        self.acks, self.relays = Marker(b'"ACK"'), Marker(b'"from"')
        self.acked = self.sent = self.received = 0
        self.pending: deque[int] = deque()
        self.latencies: list[float] = []
        self.ack_times: list[int] | None = None  # a list: also each ACK's perf_counter_ns
        self.last_ack_ns = 0
        self.error: str | None = None  # the first ERROR frame the hub sent
        self.stalled = False  # waited ``stall`` s for an ACK and gave up sending
        self.lost = False
        self._room = asyncio.Event()

    def feed(self, data: bytes) -> None:
        n = sum(self.acks.count(data))
        self.received += sum(self.relays.count(data))
        if b'"ERROR"' in data and self.error is None:
            at = data.find(b'"ERROR"')
            self.error = data[max(0, at - 20) : at + 200].decode(errors="replace")
        if n:
            now = self.last_ack_ns = time.perf_counter_ns()
            pop, keep = self.pending.popleft, self.latencies.append
            count = min(n, len(self.pending))
            for _ in range(count):
                keep((now - pop()) / 1e9)
            if self.ack_times is not None:
                self.ack_times.extend([now] * count)
            self.acked += n
            self._room.set()

    def on_lost(self) -> None:
        self.lost = True
        self._room.set()

    async def share_for(self, seconds: float, stall: float) -> None:
        """Share as fast as the window allows for ``seconds``, then stop sending."""
        end = time.monotonic() + seconds
        head = b'{"type":"PATTERN_SHARE","pattern_id":"' + self.ai_id.encode() + b"-"
        tail = b'","pattern_data":' + PATTERN_DATA.encode() + b"}\n"
        while time.monotonic() < end and not (self.lost or self.error or self.stalled):
            room = self.window - (self.sent - self.acked)
            if room <= 0:
                self._room.clear()
                try:
                    await asyncio.wait_for(self._room.wait(), stall)
                except TimeoutError:
                    self.stalled = True
                continue
            first = self.sent
            frames = b"".join(head + b"%d" % i + tail for i in range(first, first + room))
            self.link.write(frames)
            now = time.perf_counter_ns()
            self.pending.extend([now] * room)
            self.sent += room
            if self.link.paused:
                await self.link.drain()
            else:
                await asyncio.sleep(0)


def executemany_ceiling(db: Path, seconds: float, batch: int = REFERENCE_BATCH) -> dict[str, Any]:
    """Rows/s of ``executemany`` batches into ``shared_patterns`` of a migrated ``db`` (WAL,
    ``synchronous=FULL``), for about ``seconds``, on the server core."""
    with procs.pinned_to(procs.SERVER_CORE):
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            sql = (
                "INSERT INTO shared_patterns (pattern_id, pattern_data, contributor, timestamp,"
                " usage_count) VALUES (?, ?, ?, ?, 0)"
            )
            rows = commits = 0
            started = time.perf_counter()
            while time.perf_counter() - started < seconds:
                now = time.time()
                values = [(f"ref-{rows + i}", PATTERN_DATA, "reference", now) for i in range(batch)]
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(sql, values)
                conn.execute("COMMIT")
                rows += batch
                commits += 1
            elapsed = time.perf_counter() - started
            (stored,) = conn.execute("SELECT COUNT(*) FROM shared_patterns").fetchone()
        finally:
            conn.close()
    return {
        "rows_per_s": rows / elapsed,
        "rows": rows,
        "stored": stored,
        "commits": commits,
        "batch": batch,
        "seconds": round(elapsed, 3),
    }


async def run_one(
    publishers: int, workdir: Path, options: FaninOptions, profile: Path | None
) -> dict[str, Any]:
    """P publishers on a fresh hub: acked shares/s, ACK latency, relays, rows committed."""
    result: dict[str, Any] = {"publishers": publishers}
    db = workdir / f"fanin-{publishers}.db"
    ids = [f"bench-share-{i:05d}" for i in range(publishers)]
    tokens = await procs.register_tokens(db, ids)
    hub = await procs.start_hub(workdir, db, profile=profile)
    pubs: list[Publisher] = []
    try:
        budget = options.join_base + options.join_per_publisher * publishers
        started = time.monotonic()

        async def join(i: int) -> Publisher:
            link = await join_hub(hub.port, ids[i], tokens[ids[i]], budget)
            pub = Publisher(link, ids[i], options.window)
            link.count_with(pub.feed, pub.on_lost)
            return pub

        joined, errors = await open_all(
            publishers, join, concurrency=options.concurrency, deadline=started + budget
        )
        pubs = [p for p in joined if isinstance(p, Publisher)]
        result["joined"], result["join_s"] = len(pubs), round(time.monotonic() - started, 2)
        if len(pubs) < publishers:
            result["note"] = f"{len(pubs)}/{publishers} publishers joined in {budget:g} s"
            result["errors"] = errors
            return result
        usage = procs.Usage(hub)
        first_send = time.perf_counter_ns()
        await asyncio.gather(*(p.share_for(options.duration, options.stall) for p in pubs))
        complete = await _settle(pubs, options)
        result.update(usage.finish())
        result.update(_summary(pubs, first_send, complete, options.stall))
    except Exception as exc:
        result["note"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        for pub in pubs:
            pub.link.close()
        await hub.stop(60 if profile else 15)
    if "acked" in result:
        with sqlite3.connect(db) as conn:
            (result["rows_committed"],) = conn.execute(
                "SELECT COUNT(*) FROM shared_patterns"
            ).fetchone()
        if result["rows_committed"] < result["acked"]:
            result["note"] = f"only {result['rows_committed']} rows for {result['acked']} ACKs"
    return result


def _expected_relays(pubs: list[Publisher]) -> int:
    alive = sum(not p.lost for p in pubs)
    return sum(p.acked for p in pubs) * max(0, alive - 1)


async def _settle(pubs: list[Publisher], options: FaninOptions) -> bool:
    """Until every share is ACKed and relayed (True), or a stall or the limit (False)."""
    deadline = time.monotonic() + options.settle_limit
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        acked = sum(p.acked for p in pubs)
        relays = sum(p.received for p in pubs)
        live = [p for p in pubs if not p.lost]
        if all(p.acked >= p.sent for p in live) and relays >= _expected_relays(pubs):
            return not any(p.lost or p.error or p.stalled for p in pubs)
        if acked + relays != last:
            last, quiet_since = acked + relays, time.monotonic()
        elif time.monotonic() - quiet_since > options.stall:
            return False
        await asyncio.sleep(0.05)
    return False


def _summary(
    pubs: list[Publisher], first_send: int, complete: bool, stall: float
) -> dict[str, Any]:
    acked = sum(p.acked for p in pubs)
    last_ack = max((p.last_ack_ns for p in pubs), default=first_send)
    elapsed = max(1e-9, (last_ack - first_send) / 1e9)
    latencies = [x for p in pubs for x in p.latencies]
    p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
    errors = sorted({p.error for p in pubs if p.error})
    out: dict[str, Any] = {
        "sent": sum(p.sent for p in pubs),
        "acked": acked,
        "seconds": round(elapsed, 3),
        "acked_per_s": acked / elapsed if acked else 0.0,
        "p50_ms": None if p50 is None else p50 * 1000,
        "p99_ms": None if p99 is None else p99 * 1000,
        "relays_received": sum(p.received for p in pubs),
        "relays_expected": _expected_relays(pubs),
        "lost": sum(p.lost for p in pubs),
        "complete": complete,
    }
    stalled = sum(p.stalled for p in pubs)
    # Every cause is named: at P=1,000 publishers both stall and are dropped as slow
    # consumers, and the dropped ones' relays are not expected (``_expected_relays``).
    notes = []
    if errors:
        notes.append(f"{len(errors)} publishers got ERRORs, e.g. {errors[0][:160]}")
    if stalled:
        notes.append(f"{stalled} publishers stopped sending after waiting {stall:g} s for an ACK")
    if out["lost"]:
        notes.append(
            f"{out['lost']} publishers disconnected by the hub (relays expected only for the "
            "others)"
        )
    if not notes and not complete:
        notes.append("not every ACK or relay arrived before the stall limit")
    if notes:
        out["note"] = "; ".join(notes)
    return out


async def run(
    workdir: Path, options: FaninOptions, profiling: procs.Profiling | None, log: Any
) -> dict[str, Any]:
    """The reference, then every P; ``{"reference": ..., "runs": [...]}``."""
    ref_db = workdir / "reference.db"
    await procs.create_schema(ref_db)
    log("fan-in: executemany reference")
    reference = executemany_ceiling(ref_db, options.reference_seconds)
    log(f"fan-in: reference {reference['rows_per_s']:,.0f} rows/s")
    # What the prototype did per share, for scale: one transaction per row.
    one_db = workdir / "reference-commit-per-row.db"
    await procs.create_schema(one_db)
    per_row = executemany_ceiling(one_db, min(options.reference_seconds, 2.0), batch=1)
    log(f"fan-in: one commit per row {per_row['rows_per_s']:,.0f} rows/s")
    runs = []
    for p in options.sizes:
        log(f"fan-in: kernal P={p}")
        profile = procs.profile_path(profiling, f"fanin-{p}")
        result = await run_one(p, workdir, options, profile)
        rate = result.get("acked_per_s")
        log(f"fan-in: P={p}: " + (f"{rate:,.0f} acked/s" if rate else str(result.get("note"))))
        runs.append(result)
    return {"reference": reference, "commit_per_row": per_row, "runs": runs}
