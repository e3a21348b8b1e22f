"""``bench/abuse.py``: honest trainers' latency while the hub is abused, one abuse at a time.

A hub runs as its own process (pinned to core 0, default limits, dashboard on, SQLite), with
500 components of 500 KB stored first (what big API pages and HELLO's recent items are made
of). Ten honest clients (this process, core 1) each share a 256-byte pattern every 1/rate s
with at most ``window`` unacknowledged, receiving every other's relays; every ACK is timed.
They are measured quiet first, then under each abuse in turn, each abuser in a process of its
own (``perf/attacks.py``, from its own loopback address), all of it three times over, then
quiet again. One table: honest ACK p50/p99 (the median of the rounds), p99 ÷ the median quiet
p99, the hub's peak RSS during the phase, and what happened to the abuser, from the frames it
got.

    bench/abuse.py                   # every abuse, 3 rounds (~9 min); writes security-figures.md
    bench/abuse.py --quick               # small sizes, short phases, writes nothing
    bench/abuse.py --only auth_flood,pipelined_pings --no-write --out /tmp/abuse.json
    bench/run --rows abuse               # the same, as a section of bench/run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contextlib

from perf import attacks, procs, report
from perf.fanin import PATTERN_DATA, Publisher
from perf.systems import HELLO
from perf.wire import HandshakeError, Link, percentile

DOC = procs.ROOT / "docs" / "security-figures.md"
SCRIPT = str(Path(__file__).resolve())
ORDER = (
    "feedback_flood",
    "blank_flood",
    "slow_reader",
    "auth_flood",
    "hello_repeat",
    "big_pages",
    "pipelined_pings",
)
TITLES = {
    "quiet": "quiet",
    "feedback_flood": "FEEDBACK flood (1,000 x score 0, one rater)",
    "blank_flood": 'blank lines (b"\\n" * 65536 in a loop, before and after login)',
    "slow_reader": "self-targeted slow reader (500 KB components to itself)",
    "auth_flood": "auth flood (200 concurrent wrong-token logins)",
    "hello_repeat": "HELLO repetition",
    "big_pages": "big API pages (limit=500, 3 in parallel)",
    "pipelined_pings": "pipelined PINGs (30,000 in one write)",
    "quiet again": "quiet again",
}
ADDRESSES = {name: f"127.0.0.{n}" for n, name in enumerate(ORDER, 2)}


@dataclass(frozen=True)
class AbuseOptions:
    honest: int = 10
    rate: float = 20.0  # shares per second per honest client
    window: int = 8  # unacknowledged shares per honest client, at most
    quiet_seconds: float = 10.0
    seconds: float = 12.0  # each abuse (the auth timeout, 10 s, must fit in it)
    settle: float = 3.0  # between phases, not measured
    warmup: float = 10.0  # after storing the large items (SQLite checkpoints its WAL), not measured
    items: int = 500  # large components stored before the honest clients join
    component_bytes: int = 500_000
    attacks: tuple[str, ...] = ORDER
    # Quiet and every abuse this many times over, and each row the median of its rounds: a
    # phase's p99 is set by its two or three slowest group commits (the slow ACKs come in
    # batches), and one fsync stall on a shared disk would otherwise decide a row.
    rounds: int = 3

    @classmethod
    def quick(cls) -> AbuseOptions:
        return cls(
            quiet_seconds=2.0,
            seconds=3.0,
            settle=1.0,
            warmup=1.0,
            items=20,
            component_bytes=50_000,
            rounds=1,
        )


class Honest(Publisher):
    """A paced sharing trainer: one share every ``1 / rate`` s while the window has room."""

    async def share_until(self, stop: asyncio.Event, rate: float) -> None:
        head = b'{"type":"PATTERN_SHARE","pattern_id":"' + self.ai_id.encode() + b"-"
        tail = b'","pattern_data":' + PATTERN_DATA.encode() + b"}\n"
        interval = 1.0 / rate
        next_at = time.monotonic()
        while not (stop.is_set() or self.lost):
            if self.sent - self.acked >= self.window:
                self._room.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._room.wait(), 1.0)
                continue
            self.link.write(head + b"%d" % self.sent + tail)
            self.pending.append(time.perf_counter_ns())
            self.sent += 1
            next_at = max(next_at + interval, time.monotonic() - 1.0)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    def take_phase(self) -> list[tuple[int, float]]:
        """(ACK time in ns, latency in s) since the last call, plus the age of every share
        still waiting (a lower bound on its latency: a share the hub never answers must not
        look fast)."""
        now = time.perf_counter_ns()
        taken, self.latencies = self.latencies, []
        times, self.ack_times = self.ack_times or [], []
        waiting = [(now, (now - sent) / 1e9) for sent in self.pending if now - sent > 0]
        return list(zip(times, taken, strict=True)) + waiting


@dataclass
class Phase:
    name: str
    started_ns: int = field(default_factory=time.perf_counter_ns)
    acks: list[tuple[int, float]] = field(default_factory=list)  # (ACK time ns, latency s)
    rss_peak_kib: int = 0
    rss_start_kib: int = 0
    usage: dict[str, float] = field(default_factory=dict)
    attack: dict[str, Any] = field(default_factory=dict)
    honest_lost: int = 0
    honest_errors: list[str] = field(default_factory=list)
    hub_warnings: dict[str, int] = field(default_factory=dict)

    def slowest(self, n: int = 40) -> list[tuple[float, float]]:
        """The ``n`` slowest ACKs as (s into the phase, ms): whether they came together (the
        hub stalled everyone at once) or spread over the phase (each client's own luck)."""
        worst = sorted(self.acks, key=lambda ack: -ack[1])[:n]
        return sorted(
            (round((at - self.started_ns) / 1e9, 3), round(lat * 1000, 1)) for at, lat in worst
        )

    def figures(self) -> dict[str, Any]:
        lat = [latency for _, latency in self.acks]
        p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
        return {
            "name": self.name,
            "acks": len(lat),
            "slowest": self.slowest(),
            "p50_ms": None if p50 is None else p50 * 1000,
            "p99_ms": None if p99 is None else p99 * 1000,
            "rss_start_mb": self.rss_start_kib / 1024,
            "rss_peak_mb": self.rss_peak_kib / 1024,
            "usage": self.usage,
            "attack": self.attack,
            "honest_lost": self.honest_lost,
            "honest_errors": self.honest_errors,
            "hub_warnings": self.hub_warnings,
        }


def warnings_since(log: Path, offset: int) -> tuple[dict[str, int], int]:
    """The hub's WARNING lines after ``offset`` of its log, by kind (numbers and addresses
    blanked), and the new offset."""
    with log.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    kinds: Counter[str] = Counter()
    for line in text.splitlines():
        if "WARNING" in line:
            message = line.split("WARNING", 1)[1]
            kinds[re.sub(r"\('[^)]*\)|[\d.]+", "#", message).strip(" :-")[:120]] += 1
    return dict(kinds), offset + len(text.encode())


READY = b"ready\n"


async def attack(
    name: str, spec: dict[str, Any], workdir: Path, ready: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Run one abuser in its own process; its JSON result. The process starts (a fraction of
    a second of CPU on the honest clients' core, importing Python), says it is ready, and
    attacks only once told to go: ``ready`` is called in between, so a phase can begin its
    measurement there and not count the start of a Python process as the hub's doing."""
    path = workdir / f"attack-{name}.json"
    path.write_text(json.dumps(spec))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        SCRIPT,
        "--attack",
        name,
        str(path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    first = await proc.stdout.readline()
    if first == READY:
        if ready is not None:
            ready()
        proc.stdin.write(b"go\n")
    out, err = await proc.communicate()
    out = first + out if first != READY else out
    try:
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        result = {"outcome": f"the attack process failed: {err.decode()[-300:]}"}
    return result


async def join_honest(
    port: int, ids: list[str], tokens: dict[str, str], window: int
) -> list[Honest]:
    async def one(ai_id: str) -> Honest:
        link = await Link.open(port)
        link.write(json.dumps({"ai_id": ai_id, "token": tokens[ai_id]}).encode() + b"\n")
        link.write(HELLO)
        if b"AUTH_OK" not in await link.read_until(b"\n", 30):
            raise HandshakeError(f"{ai_id}: no AUTH_OK")
        if b'"STATE"' not in await link.read_until(b"\n", 30):
            raise HandshakeError(f"{ai_id}: no STATE")
        pub = Honest(link, ai_id, window)
        pub.ack_times = []
        link.count_with(pub.feed, pub.on_lost)
        return pub

    return list(await asyncio.gather(*(one(ai_id) for ai_id in ids)))


async def run(workdir: Path, options: AbuseOptions, log: Any = print) -> dict[str, Any]:
    """Every phase against one hub; ``{"options", "seed", "phases": [...]}``."""
    honest_ids = [f"honest-{i:02d}" for i in range(options.honest)]
    db = workdir / "abuse.db"
    tokens = await procs.register_tokens(
        db,
        honest_ids + list(attacks.ABUSER_IDS) + list(attacks.SEED_IDS),
        chosen={attacks.GUARDED_ID: "a passphrase somebody chose"},
    )
    dashboard = procs.free_port()
    hub = await procs.start_hub(workdir, db, limits=True, dashboard_port=dashboard)
    base: dict[str, Any] = {
        "port": hub.port,
        "dashboard_port": dashboard,
        "tokens": tokens,
        "component_bytes": options.component_bytes,
    }
    result: dict[str, Any] = {"options": asdict(options), "phases": []}
    pubs: list[Honest] = []
    stop = asyncio.Event()
    sampling = True
    current: Phase | None = None

    async def sample_rss() -> None:
        while sampling:
            if current is not None and hub.alive():
                with contextlib.suppress(OSError, RuntimeError):
                    current.rss_peak_kib = max(current.rss_peak_kib, hub.rss_kib())
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample_rss())
    log_offset = 0
    try:
        log(f"abuse: storing {options.items} components of {options.component_bytes:,} bytes")
        seed = {**base, "source": "127.0.0.1", "seconds": 0, "count": options.items}
        result["seed"] = await attack("seed", seed, workdir)
        pubs = await join_honest(hub.port, honest_ids, tokens, options.window)
        sharing = [asyncio.create_task(p.share_until(stop, options.rate)) for p in pubs]
        await asyncio.sleep(options.warmup)
        names = [*(["quiet", *options.attacks] * options.rounds), "quiet again"]
        log_offset = hub.log.stat().st_size

        def restart() -> None:
            for pub in pubs:
                pub.take_phase()
            if current is not None:
                current.started_ns = time.perf_counter_ns()

        for step, name in enumerate(names):
            for pub in pubs:
                pub.take_phase()
            current = Phase(name, rss_start_kib=hub.rss_kib())
            current.rss_peak_kib = current.rss_start_kib
            usage = procs.Usage(hub)
            log(f"abuse: {name}")
            if name.startswith("quiet"):
                await asyncio.sleep(options.quiet_seconds)
            else:
                spec = {**base, "source": ADDRESSES[name], "seconds": options.seconds}
                # Measured from the abuser's first move: its process start is not the hub's.
                current.attack = await attack(name, spec, workdir, ready=restart)
                log(f"abuse: {name}: {current.attack.get('outcome')}")
            current.usage = usage.finish()
            current.acks = [x for p in pubs for x in p.take_phase()]
            current.honest_lost = sum(p.lost for p in pubs)
            current.honest_errors = sorted({p.error for p in pubs if p.error})
            current.hub_warnings, log_offset = warnings_since(hub.log, log_offset)
            if not hub.alive():
                current.attack["hub"] = f"the hub exited: {hub.log_tail()}"
            result["phases"].append({**current.figures(), "round": names[:step].count(name)})
            current = None
            if not hub.alive():
                break
            await asyncio.sleep(options.settle)
        stop.set()
        await asyncio.gather(*sharing, return_exceptions=True)
    finally:
        sampling = False
        await sampler
        for pub in pubs:
            pub.link.close()
        result["hub_exit"] = await hub.stop()
        result["hub_log_tracebacks"] = hub.log.read_text(errors="replace").count("Traceback")
    result["summary"] = summarise(result["phases"])
    return result


def summarise(phases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per phase name, in order of first appearance: the median of its rounds' p50 and
    p99 (each round's p99 kept in ``p99s_ms``), the highest RSS, the mean CPU, the last
    round's abuser fate, honest losses and hub warnings over every round."""
    rows: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(p["name"] for p in phases):
        rounds = [p for p in phases if p["name"] == name]
        p50s = [p["p50_ms"] for p in rounds if p["p50_ms"] is not None]
        p99s = [p["p99_ms"] for p in rounds if p["p99_ms"] is not None]
        usage = [p["usage"] for p in rounds if p["usage"]]
        warnings: Counter[str] = Counter()
        for p in rounds:
            warnings.update(p.get("hub_warnings", {}))
        rows[name] = {
            "name": name,
            "rounds": len(rounds),
            "acks": sum(p["acks"] for p in rounds),
            "p50_ms": statistics.median(p50s) if p50s else None,
            "p99_ms": statistics.median(p99s) if p99s else None,
            "p99s_ms": p99s,
            "rss_start_mb": min(p["rss_start_mb"] for p in rounds),
            "rss_peak_mb": max(p["rss_peak_mb"] for p in rounds),
            "usage": {
                key: statistics.fmean(u[key] for u in usage if key in u)
                for key in {key for u in usage for key in u}
            },
            "attack": rounds[-1]["attack"],
            "honest_lost": sum(p["honest_lost"] for p in rounds),
            "honest_errors": sorted({e for p in rounds for e in p["honest_errors"]}),
            "hub_warnings": dict(warnings),
        }
    return list(rows.values())


# ---------------------------------------------------------------------- the table

COLUMNS = (
    "abuse",
    "honest ACK p50 / p99 (ms)",
    "p99 / quiet p99",
    "hub RSS peak (MB)",
    "hub CPU (others on its core)",
    "what happened to the abuser",
)


def quiet_p99(phases: list[dict[str, Any]]) -> float | None:
    """The reference: the median p99 of every quiet phase (one per round, and the one after
    the abuses), measured and summarised as the abuses' are."""
    quiet = [p["p99_ms"] for p in phases if p["name"].startswith("quiet") and p["p99_ms"]]
    return statistics.median(quiet) if quiet else None


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    quiet = quiet_p99(result["phases"])
    rows = []
    for phase in result["summary"]:
        p50, p99 = phase["p50_ms"], phase["p99_ms"]
        latency = "n/a" if p50 is None else f"{p50:,.1f} / {p99:,.1f}"
        if len(phase["p99s_ms"]) > 1:
            latency += " (" + ", ".join(f"{x:,.0f}" for x in phase["p99s_ms"]) + ")"
        ratio = "n/a" if p99 is None or not quiet else f"{p99 / quiet:.2f}x"
        rss = f"{phase['rss_peak_mb']:,.0f} (from {phase['rss_start_mb']:,.0f})"
        fate = str(phase["attack"].get("outcome", "-"))
        said = sorted(phase.get("hub_warnings", {}).items(), key=lambda kv: -kv[1])[:2]
        if said:
            fate += " [hub log: " + "; ".join(f"{n} x {text!r}" for text, n in said) + "]"
        if phase["honest_lost"] or phase["honest_errors"]:
            fate += f" [honest: {phase['honest_lost']} lost, errors {phase['honest_errors']}]"
        usage = phase.get("usage", {})
        cpu = f"{usage.get('server_cpu', 0):.0%}"
        if "server_core_other" in usage:
            cpu += f" ({usage['server_core_other']:.0%})"
        rows.append([TITLES.get(phase["name"], phase["name"]), latency, ratio, rss, cpu, fate])
    return rows


def text_table(result: dict[str, Any]) -> str:
    body = [list(COLUMNS), *table_rows(result)]
    widths = [max(len(line[i]) for line in body) for i in range(len(COLUMNS) - 1)]
    lines = []
    for n, line in enumerate(body):
        cells = [c.ljust(w) for c, w in zip(line, widths, strict=False)] + [line[-1]]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 30)
    return "\n".join(lines)


def markdown_table(result: dict[str, Any]) -> str:
    head = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)
    lines = [head]
    for row in table_rows(result):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


def report_rows(result: dict[str, Any]) -> list[report.Row]:
    """The phases as rows of bench/run's table: kernal = p99 under the abuse, reference = the
    quiet p99 of the same run (:func:`quiet_p99`), target = within 2x; the abuser's fate and
    RSS in the notes."""
    quiet = quiet_p99(result["phases"])
    rows = []
    for phase in result["summary"]:
        if phase["name"].startswith("quiet"):
            continue
        p99 = phase["p99_ms"]
        ratio = None if p99 is None or not quiet else p99 / quiet
        rows.append(
            report.Row(
                f"abuse: {TITLES.get(phase['name'], phase['name'])}: honest ACK p99 vs quiet",
                "n/a" if p99 is None else f"{p99:,.1f} ms",
                "n/a" if quiet is None else f"{quiet:,.1f} ms",
                ratio,
                target="≤ 2x",
                verdict="-" if ratio is None else ("PASS" if ratio <= 2 else "FAIL"),
                notes=[
                    f"hub RSS peak {phase['rss_peak_mb']:,.0f} MB",
                    str(phase["attack"].get("outcome", "-")),
                ],
            )
        )
    return rows


def document(result: dict[str, Any], meta: dict[str, Any]) -> str:
    o = result["options"]
    seed = result.get("seed", {}).get("outcome", "?")
    return f"""## Honest trainers under abuse (`bench/abuse.py`)

- **Command:** `{meta["command"]}` ({meta["wall_s"] / 60:.1f} min)
- **Date:** {meta["date"]}; **commit:** {meta["commit"]}; load average {meta["load_start"]}
  at the start, {meta["load_end"]} at the end (2 shared cores: other work runs beside it)
- **Setup:** one hub process (`kernal hub`, default limits, dashboard on, SQLite) pinned to
  core 0, with {o["items"]} components of {o["component_bytes"]:,} bytes stored first
  ({seed}); {o["honest"]} honest clients in the bench process (core 1), each sharing a
  256-byte pattern {o["rate"]:g} times a second with at most {o["window"]} unacknowledged and
  receiving all the others' relays. Quiet for {o["quiet_seconds"]:g} s, then each abuse for
  {o["seconds"]:g} s from its own process and loopback address (127.0.0.N, so per-address
  limits fall on it), {o["settle"]:g} s between phases; all of that {o["rounds"]} times, then
  quiet again. The first phase
  starts {o["warmup"]:g} s after the large items are stored (SQLite checkpoints its WAL
  meanwhile). The auth flood resets its connections at the end of its phase, so that the
  guesses still waiting in the hub's backoff are dropped unchecked instead of spilling into
  the next phase.
- **Latency** is from the write of a share to its ACK, for every share sent in the phase; a
  share still unanswered at the end of a phase counts with its age so far. An abuse phase is
  measured from the moment its process has started (imported Python, on the honest clients'
  core) and is told to attack.

{markdown_table(result)}

Each row is the median of its rounds (in brackets, each round's p99): one phase's p99 is set by
its two or three slowest group commits, as the slow ACKs come in batches, and a single fsync
stall on this shared disk would otherwise decide a row. The ratio is the row's p99 over the
median p99 of every quiet phase (the target is 2x). RSS is the
hub's `VmRSS` sampled every 50 ms during the phase (from: at its start). Hub CPU is the hub
process's CPU time over the phase in shares of one core; in brackets, what other processes
used of the hub's core meanwhile (this machine is shared: a high figure there slows the hub
without being its doing). The abuser's fate is
what its own connections saw: the frames it got (by type and ERROR code), and whether the hub
closed them. This measures the hub as it is on this branch: FEEDBACK (reputation) and the HTTP
API are being changed on other branches, so their rows show the behaviour before those
changes.
"""


# ---------------------------------------------------------------------- command line


def _git(*args: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(procs.ROOT), *args], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--attack":
        procs.pin_self(procs.LOAD_CORE)
        spec = json.loads(Path(sys.argv[3]).read_text())
        sys.stdout.buffer.write(READY)  # imported and pinned: the attack starts when told
        sys.stdout.flush()
        sys.stdin.readline()
        print(json.dumps(attacks.run_attack(sys.argv[2], spec), default=str))
        return
    parser = argparse.ArgumentParser(
        prog="bench/abuse.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small and short (writes nothing)")
    parser.add_argument("--only", help=f"comma-separated abuses, of {','.join(ORDER)}")
    parser.add_argument("--out", type=Path, help="also write every raw figure here (JSON)")
    parser.add_argument("--no-write", action="store_true", help=f"leave {DOC.name} alone")
    args = parser.parse_args()
    options = AbuseOptions.quick() if args.quick else AbuseOptions()
    if args.only:
        chosen = tuple(a.strip() for a in args.only.split(",") if a.strip())
        unknown = sorted(set(chosen) - set(ORDER))
        if unknown:
            parser.error(f"unknown abuses {', '.join(unknown)}: choose from {', '.join(ORDER)}")
        options = replace(options, attacks=chosen)
    procs.raise_nofile()
    procs.pin_self(procs.LOAD_CORE)
    meta: dict[str, Any] = {
        "command": shlex.join(["bench/abuse.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "commit": _git("rev-parse", "--short", "HEAD")
        + (" (with uncommitted changes)" if _git("status", "--porcelain", "src") else ""),
        "load_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kernal-abuse-") as tmp:
        result = asyncio.run(run(Path(tmp), options, _log))
    meta["wall_s"] = time.monotonic() - started
    meta["load_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    if args.out is not None:
        args.out.write_text(json.dumps({"meta": meta, "result": result}, indent=1, default=str))
    print(text_table(result))
    print(f"\n{meta['command']}: {meta['wall_s']:.0f} s, hub exit {result['hub_exit']}, "
          f"{result['hub_log_tracebacks']} tracebacks in its log")  # fmt: skip
    if not (args.quick or args.no_write or args.only):
        report.write_section(DOC, "bench/abuse.py", document(result, meta))
        print(f"wrote {DOC.relative_to(procs.ROOT)}")


if __name__ == "__main__":
    main()
