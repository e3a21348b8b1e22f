"""``bench/crash.py``: SIGKILL the hub again and again while trainers share; nothing ACKed is lost.

One SQLite database (default durability: WAL, ``synchronous=FULL``) and one port. Each cycle
starts a hub process (``kernal hub``, pinned to core 0), connects the clients, lets them share
``PATTERN_SHARE``s with at most ``window`` unacknowledged each, and SIGKILLs the hub after a
random moment (seeded). Every client first re-sends, with the same ids and data, what it had
sent and not seen ACKed before the kill, as the SDK does after a reconnect. After each kill the
database is read directly: every share ever ACKed must be there exactly once, with the data it
was sent with, and ``PRAGMA integrity_check`` must say ``ok``.

    bench/crash.py                   # 20 cycles (~1.5 min); writes docs/security-figures.md
    bench/crash.py --cycles 3 --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shlex
import signal
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from perf import procs, report

DOC = procs.ROOT / "docs" / "security-figures.md"


@dataclass
class Sharer:
    """One client's shares across every cycle: sent, ACKed, and sent but not ACKed yet."""

    ai_id: str
    token: str
    window: int
    next_n: int = 0
    acked: set[str] = field(default_factory=set)
    unacked: set[str] = field(default_factory=set)  # sent, no ACK seen yet
    data: dict[str, str] = field(default_factory=dict)  # id -> its pattern_data, as JSON text
    duplicates: int = 0  # ACKs saying the share was already stored (a retry of a committed one)

    def frame(self, pattern_id: str) -> bytes:
        data = self.data[pattern_id]
        return b'{"type":"PATTERN_SHARE","pattern_id":"%s","pattern_data":%s}\n' % (
            pattern_id.encode(),
            data.encode(),
        )

    def new_share(self, cycle: int) -> str:
        pattern_id = f"{self.ai_id}-{self.next_n}"
        self.next_n += 1
        self.data[pattern_id] = json.dumps(
            {"cycle": cycle, "n": self.next_n, "w": [round(random.random(), 6)] * 8},
            separators=(",", ":"),
        )
        return pattern_id

    async def share(self, port: int, cycle: int) -> None:
        """Connect, re-send what is unacknowledged, then share until the connection dies."""
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**24)
        except OSError:
            return
        try:
            writer.write(json.dumps({"ai_id": self.ai_id, "token": self.token}).encode() + b"\n")
            writer.write(b'{"type":"HELLO","specialization":"networking","follow":[]}\n')
            for _ in range(2):  # AUTH_OK, STATE
                if not await reader.readline():
                    return
            room = asyncio.Event()

            async def read() -> None:
                try:
                    while line := await reader.readline():
                        reply = json.loads(line)
                        if reply.get("type") == "ACK":
                            pattern_id = reply["id"]
                            if pattern_id in self.unacked:
                                self.unacked.discard(pattern_id)
                                self.acked.add(pattern_id)
                                self.duplicates += bool(reply.get("duplicate"))
                                room.set()
                        elif reply.get("type") == "ERROR":
                            raise RuntimeError(f"{self.ai_id}: hub said {reply}")
                finally:
                    room.set()  # wake the writer: the connection is gone

            reading = asyncio.create_task(read())
            # As the SDK does after a reconnect: what was not ACKed goes again, same ids and
            # data (at most a window of it: the window was never exceeded).
            for pattern_id in self.unacked:
                writer.write(self.frame(pattern_id))
            await writer.drain()
            while not reading.done():
                room_left = self.window - len(self.unacked)
                if room_left <= 0:
                    room.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(room.wait(), 1.0)
                    continue
                for _ in range(room_left):
                    pattern_id = self.new_share(cycle)
                    self.unacked.add(pattern_id)
                    writer.write(self.frame(pattern_id))
                await writer.drain()
            with contextlib.suppress(ConnectionError, OSError, asyncio.IncompleteReadError):
                await reading
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()


def check(db: Path, sharers: list[Sharer]) -> dict[str, Any]:
    """Every ACKed share in the database exactly once with its data; integrity_check."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        (integrity,) = conn.execute("PRAGMA integrity_check").fetchone()
        counts = dict(
            conn.execute("SELECT pattern_id, COUNT(*) FROM shared_patterns GROUP BY pattern_id")
        )
        stored = dict(conn.execute("SELECT pattern_id, pattern_data FROM shared_patterns"))
    acked = {pattern_id: s for s in sharers for pattern_id in s.acked}
    missing = [p for p in acked if p not in counts]
    duplicated = [p for p, n in counts.items() if n > 1]
    altered = [p for p, s in acked.items() if p in stored and stored[p] != s.data[p]]
    return {
        "integrity": integrity,
        "rows": sum(counts.values()),
        "acked": len(acked),
        "missing": len(missing),
        "duplicated": len(duplicated),
        "altered": len(altered),
        "examples": (missing + duplicated + altered)[:5],
    }


async def run(
    workdir: Path,
    *,
    cycles: int,
    clients: int,
    window: int,
    run_min: float,
    run_max: float,
    seed: int,
    log: Any,
) -> dict[str, Any]:
    rng = random.Random(seed)
    random.seed(seed)
    db = workdir / "crash.db"
    ids = [f"crash-{i:02d}" for i in range(clients)]
    tokens = await procs.register_tokens(db, ids)
    sharers = [Sharer(ai_id, tokens[ai_id], window) for ai_id in ids]
    port = procs.free_port()
    rounds = []
    for cycle in range(1, cycles + 1):
        hub = await procs.start_hub(workdir, db, port=port)
        before = sum(len(s.acked) for s in sharers)
        duplicates_before = sum(s.duplicates for s in sharers)
        tasks = [asyncio.create_task(s.share(port, cycle)) for s in sharers]
        alive = rng.uniform(run_min, run_max)
        try:
            await asyncio.sleep(alive)
        finally:  # also on Ctrl+C: no hub left behind
            os.kill(hub.pid, signal.SIGKILL)
            await hub.proc.wait()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        problems = [repr(r) for r in results if isinstance(r, BaseException)]
        checked = check(db, sharers)
        checked.update(
            cycle=cycle,
            alive_s=round(alive, 2),
            acked_in_cycle=checked["acked"] - before,
            retried_duplicates=sum(s.duplicates for s in sharers) - duplicates_before,
            unacked_at_kill=sum(len(s.unacked) for s in sharers),
            client_problems=problems[:3],
            exit=hub.proc.returncode,
        )
        rounds.append(checked)
        log(
            f"crash: cycle {cycle}: {checked['acked_in_cycle']:,} ACKed in {alive:.1f} s, "
            f"{checked['acked']:,} in all, {checked['missing']} missing, "
            f"{checked['duplicated']} duplicated, integrity {checked['integrity']}"
        )
    return {
        "cycles": cycles,
        "clients": clients,
        "window": window,
        "seed": seed,
        "rounds": rounds,
        "acked": rounds[-1]["acked"] if rounds else 0,
        "missing": sum(r["missing"] for r in rounds),
        "duplicated": sum(r["duplicated"] for r in rounds),
        "altered": sum(r["altered"] for r in rounds),
        "integrity_failures": sum(r["integrity"] != "ok" for r in rounds),
        "cycles_clean": sum(
            r["missing"] == r["duplicated"] == r["altered"] == 0 and r["integrity"] == "ok"
            for r in rounds
        ),
    }


def table(result: dict[str, Any]) -> str:
    failures = result["integrity_failures"]
    cells = [
        str(result["cycles"]),
        f"{result['acked']:,}",
        str(result["missing"]),
        str(result["duplicated"]),
        str(result["altered"]),
        "ok" if not failures else f"{failures} failed",
        f"{result['cycles_clean']} of {result['cycles']}",
    ]
    head = "cycles | ACKed shares | missing | duplicated | altered | integrity_check | clean cycles"
    return f"| {head} |\n|" + "---|" * len(cells) + "\n| " + " | ".join(cells) + " |"


def cycle_table(result: dict[str, Any]) -> str:
    lines = [
        "| cycle | alive (s) | ACKed in cycle | retried, already stored | unACKed at the kill "
        "| ACKed in all | missing | duplicated |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rounds"]:
        lines.append(
            f"| {r['cycle']} | {r['alive_s']:.1f} | {r['acked_in_cycle']:,} | "
            f"{r['retried_duplicates']} | {r['unacked_at_kill']} | {r['acked']:,} | "
            f"{r['missing']} | {r['duplicated']} |"
        )
    return "\n".join(lines)


def document(result: dict[str, Any], meta: dict[str, Any]) -> str:
    return f"""## Nothing ACKed is lost when the hub is killed (`bench/crash.py`)

- **Command:** `{meta["command"]}` ({meta["wall_s"] / 60:.1f} min); **date:** {meta["date"]};
  **commit:** {meta["commit"]}
- **Setup:** {result["clients"]} clients sharing `PATTERN_SHARE`s with at most
  {result["window"]} unacknowledged each into one hub process (`kernal hub`, SQLite, default
  durability: WAL and `synchronous=FULL`), killed with SIGKILL after a random 1-3 s (seed
  {result["seed"]}) and restarted on the same database and port. After each restart every
  client first re-sends what it had not seen ACKed, with the same ids and data (what the SDK
  does); the hub answers those already stored with `"duplicate": true`. After each kill the
  database is read directly: every share ever ACKed must be in it exactly once, with the data
  it was sent with ("altered" counts those that differ).

{table(result)}

<details><summary>Per cycle</summary>

{cycle_table(result)}

</details>
"""


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench/crash.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--out", type=Path, help="also write every raw figure here (JSON)")
    parser.add_argument("--no-write", action="store_true", help=f"leave {DOC.name} alone")
    args = parser.parse_args()
    procs.pin_self(procs.LOAD_CORE)
    meta: dict[str, Any] = {
        "command": shlex.join(["bench/crash.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": report_commit(),
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kernal-crash-") as tmp:
        result = asyncio.run(
            run(
                Path(tmp),
                cycles=args.cycles,
                clients=args.clients,
                window=args.window,
                run_min=1.0,
                run_max=3.0,
                seed=args.seed,
                log=lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", file=sys.stderr),
            )
        )
    meta["wall_s"] = time.monotonic() - started
    if args.out is not None:
        args.out.write_text(json.dumps({"meta": meta, "result": result}, indent=1))
    print(table(result))
    print(f"\n{meta['command']}: {meta['wall_s']:.0f} s")
    if not args.no_write and args.cycles >= 20:
        report.write_section(DOC, "bench/crash.py", document(result, meta))
        print(f"wrote {DOC.relative_to(procs.ROOT)}")
    if result["cycles_clean"] != result["cycles"]:
        sys.exit(1)


def report_commit() -> str:
    import subprocess

    try:
        out = subprocess.run(
            ["git", "-C", str(procs.ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out or "unknown"


if __name__ == "__main__":
    main()
