"""``bench/run``: the hub against real references, one table of ratios.

Every row compares kernal with a reference measured in the same run on the same machine: Redis
pub/sub and NATS core for relay fan-out, ``executemany`` into the same SQLite schema for
persisted fan-in, Redis idle subscribers for connections, the performance targets for the
harness. Servers run pinned to core 0, this process (the load) to core 1. The table goes to
stdout and, after a full run, to docs/performance.md (with the command, date, commit and
machine); ``--out`` writes every raw figure as JSON.

    bench/run                          # every row (~15 min)
    bench/run --quick                  # small N, short runs: a smoke run (~1 min), no doc write
    bench/run --rows relay,fanin --out /tmp/bench.json --no-write
    bench/run --rows relay --profile /tmp/prof   # the hub under py-spy, one SVG per hub run
    bench/run --rows abuse                       # honest latency under abuse (bench/abuse.py)

The ``abuse`` row is not in the default set: ``bench/abuse.py`` runs it on its own and writes its
table to docs/security-figures.md; through ``bench/run`` its phases become rows of this table
(p99 under each abuse ÷ the quiet p99 of the same run) and docs/performance.md is left alone.

Nor is the ``cluster`` row (it needs PostgreSQL, ``$KERNAL_BENCH_PG_URL``): 1, 2 and 3
replicas as separate ``kernal hub`` processes on PostgreSQL and Redis (``perf/cluster.py``,
about 1.5 min). ``bench/run --rows cluster`` writes its own section of docs/performance.md
and leaves the main table alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import abuse
from perf import cluster, connections, fanin, procs, relay, report, scale, wire

ROWS = ("relay", "fanin", "connections", "harness")
OPTIONAL_ROWS = ("abuse", "cluster")  # only when asked for with --rows
DOC = procs.ROOT / "docs" / "performance.md"


def options_for(quick: bool) -> dict[str, Any]:
    if not quick:
        return {
            "relay": relay.RelayOptions(),
            "fanin": fanin.FaninOptions(),
            "connections": connections.ConnectionOptions(),
            "harness": scale.ScaleOptions(),
            "abuse": abuse.AbuseOptions(),
            "cluster": cluster.ClusterOptions(),
        }
    return {
        "relay": relay.RelayOptions(sizes=(10, 100), duration=0.5, stall=5.0, join_base=15.0),
        "fanin": fanin.FaninOptions(
            sizes=(10,), duration=0.5, reference_seconds=0.5, stall=5.0, settle_limit=10.0
        ),
        "connections": connections.ConnectionOptions(
            sizes=(100,), burst=100, idle_seconds=1.0, quiet_limit=3.0, burst_timeout=20.0
        ),
        "harness": scale.ScaleOptions(
            steps=(10,), speed=20.0, learning_trainers=5, learning_speed=50.0, timeout=90.0
        ),
        "abuse": abuse.AbuseOptions.quick(),
        "cluster": cluster.ClusterOptions(
            configs=((1, None), (2, "redis")), subscribers=6, publishers=4, duration=0.5
        ),
    }


async def run_rows(
    rows: list[str], opts: dict[str, Any], workdir: Path, profile: procs.Profiling | None
) -> dict[str, Any]:
    """Run each row in turn; its raw results, or ``{"error": ...}`` if it broke."""
    raw: dict[str, Any] = {}
    for name in rows:
        started = time.monotonic()
        try:
            if name == "relay":
                raw[name] = await relay.run(workdir, opts[name], profile, _log)
            elif name == "fanin":
                raw[name] = await fanin.run(workdir, opts[name], profile, _log)
            elif name == "connections":
                raw[name] = await connections.run(workdir, opts[name], profile, _log)
            elif name == "harness":
                raw[name] = await scale.run(workdir, opts[name], _log)
            elif name == "abuse":
                raw[name] = await abuse.run(workdir, opts[name], _log)
            elif name == "cluster":
                raw[name] = await cluster.run(workdir, opts[name], _log)
        except Exception as exc:  # one broken row must not cost the others
            raw[name] = {"error": f"{type(exc).__name__}: {exc}"}
        _log(f"{name}: done in {time.monotonic() - started:.0f} s")
    return raw


BUILDERS: dict[str, Callable[[Any], list[report.Row]]] = {
    "relay": report.relay_rows,
    "fanin": report.fanin_rows,
    "connections": report.connection_rows,
    "harness": report.harness_rows,
    "abuse": abuse.report_rows,
    "cluster": report.cluster_rows,
}


def build_table(raw: dict[str, Any]) -> list[report.Row]:
    """The table rows for every row's raw results (a failed row gets one line saying so)."""
    table: list[report.Row] = []
    for name, results in raw.items():
        if isinstance(results, dict) and "error" in results:
            table.append(
                report.Row(f"{name}: failed", "n/a", "n/a", None, notes=[results["error"]])
            )
            continue
        try:
            table += BUILDERS[name](results)
        except Exception as exc:
            table.append(report.Row(f"{name}: no table", "n/a", "n/a", None, notes=[repr(exc)]))
    return table


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _output(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine(loop_name: str) -> dict[str, Any]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    dirty = _output(["git", "-C", str(procs.ROOT), "status", "--porcelain", "--", "src", "bench"])
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "event_loop": loop_name,
        "redis": _output([procs.REDIS, "--version"]).split(" sha=")[0].replace(" v=", " "),
        "nats": _output([procs.NATS, "--version"]).replace("nats-server: ", ""),
        "commit": _output(["git", "-C", str(procs.ROOT), "rev-parse", "--short", "HEAD"])
        + (" (with uncommitted changes in src/ or bench/)" if dirty else ""),
        "pinned": procs.can_pin(),
        "nofile": procs.raise_nofile(),
    }


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def measures(opts: dict[str, Any]) -> str:
    """What each row measures, with the settings of this run."""
    r, f, c, h = opts["relay"], opts["fanin"], opts["connections"], opts["harness"]
    steps = ", ".join(f"{n:,}" for n in h.steps)
    return f"""- **Relay fan-out.** One publisher, N subscribers, 256-byte messages (a
  `COLLABORATION_REQUEST` frame; the same bytes are the Redis `PUBLISH` and NATS `PUB`
  payload). The publisher sends for {r.duration:g} s as fast as the server takes it, with at
  most {r.window:,} messages unacknowledged by the server (hub ACKs, Redis replies, NATS PONGs
  after each batch of {r.batch}) and at most {r.bound:,} deliveries in flight. Subscribers
  count frames per chunk (`bytes.count` of the frame marker) and parse the timestamp in every
  {wire.SAMPLE_EVERY}th frame. Deliveries/s = frames received by all subscribers / (last
  delivery - first send). Latency at saturation is mostly the time a message waits in the
  window.
- **Persisted fan-in.** P trainers send `PATTERN_SHARE`s ({fanin.PATTERN_BYTES}-byte
  `pattern_data`) for {f.duration:g} s, each with {f.window} unacknowledged; the hub commits
  (SQLite, WAL, `synchronous=FULL`), ACKs, and relays every share to the other P - 1. The
  reference is the write ceiling of the same schema (made by kernal's migrations):
  `executemany` of {fanin.REFERENCE_BATCH}-row batches (the hub store's largest transaction),
  one commit each, same durability, on the server core, for {f.reference_seconds:g} s. The
  rows in the hub's database are counted after the run: an ACK must be a committed row.
- **Connections.** N trainers authenticate (generated tokens) and say HELLO, {c.concurrency}
  handshakes in flight at a time, then stay idle (reading), until a deadline of
  {c.ramp_base:g} s + {c.ramp_per_connection * 1000:g} ms per connection. RSS is the hub's
  `VmRSS` before and after, divided by the connections that got in; admissions/s is over the
  whole ramp; idle CPU is over a {c.idle_seconds:g} s window once the hub has quietened (at
  most {c.quiet_limit:g} s of waiting). The burst starts all its connections in the same
  event-loop turn on a fresh hub, each given {c.burst_timeout:g} s. The reference is
  redis-server with as many idle subscribers (`SUBSCRIBE`, one channel each).
- **Harness scale.** `kernal harness stress_test --engine simulated --trainers N --speed
  {h.speed:g}` for N = {steps}, stopping at the first run where a trainer did not succeed
  (each run at most {h.timeout:g} s); then `--trainers {h.learning_trainers} --speed
  {h.learning_speed:g}` with the learning engine. The reference is the target."""


def document(meta: dict[str, Any], table: list[report.Row], opts: dict[str, Any]) -> str:
    pin = (
        "hub, redis-server and nats-server pinned to core 0, the load (this harness) to core 1; "
        "the harness row runs unpinned (its hub process and trainer workers use both cores)"
        if meta["machine"]["pinned"]
        else "not pinned (fewer than 2 usable cores)"
    )
    notes = "\n".join(
        f"{i}. " + "; ".join(row.notes) for i, row in enumerate(table, 1) if row.notes
    )
    return f"""# Performance

Measured by `bench/run` (see [bench/README.md](../bench/README.md)). Every row is a ratio,
kernal ÷ a reference measured in the same run on the same machine, because the machines this
runs on are small and shared and absolute figures move from run to run. This part of the page
is rewritten by each full run; anything after the end marker is kept.

- **Command:** `{meta["command"]}` ({meta["wall_s"] / 60:.1f} min)
- **Date:** {meta["date"]}
- **Commit:** {meta["machine"]["commit"]}
- **Machine:** {meta["machine"]["cores"]} cores ({meta["machine"]["cpu"]}), Linux
  {meta["machine"]["kernel"]}, Python {meta["machine"]["python"]}, client harness on
  {meta["machine"]["event_loop"]}; {meta["machine"]["redis"]}; nats-server
  {meta["machine"]["nats"]}; load average {meta["load_start"]} at the start,
  {meta["load_end"]} at the end (other work on the machine shares the cores)
- **Pinning:** {pin}

{report.markdown_table(table)}

Ratios are kernal ÷ reference (for RSS and CPU, lower is better). Latencies are from send to
receipt: relayed frames for fan-out, ACKs for fan-in. "(partial)": not everything sent arrived
before the stall limit; the figure counts what did.

### Notes on this run

{notes}

### What each row measures

{measures(opts)}
"""


def cluster_document(meta: dict[str, Any], table: list[report.Row], raw: list[Any]) -> str:
    """docs/performance.md's section for the cluster row."""
    notes = "\n".join(
        f"{i}. " + "; ".join(row.notes) for i, row in enumerate(table, 1) if row.notes
    )
    m = meta["machine"]
    return f"""## Replicas: 1, 2 and 3 `kernal hub` processes on PostgreSQL and Redis

- **Command:** `{meta["command"]}` ({meta["wall_s"] / 60:.1f} min)
- **Date:** {meta["date"]}
- **Commit:** {m["commit"]}
- **Machine:** {m["cores"]} cores ({m["cpu"]}), load average {meta["load_start"]} at the start,
  {meta["load_end"]} at the end (other work on the machine shares the cores)
- **Not pinned:** the replicas, redis-server, PostgreSQL and the load (this harness) share the
  cores, as on one machine. The reference of every row is one hub with no bus, same run.

{report.markdown_table(table)}

Where the time goes, CPU per 1,000 messages (the replicas' and every other process's CPU over
the measured interval ÷ what went through; load = this harness):

{report.cluster_costs(raw)}

{cluster.__doc__.split(chr(10) + chr(10), 1)[1].strip().replace("``", "`")}

#### Notes on this run (CPU: share of one core over the measured interval)

{notes}
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small N and short runs: a smoke run (implies --no-write)",
    )
    parser.add_argument(
        "--rows",
        default=",".join(ROWS),
        help=f"comma-separated rows to run, of {','.join(ROWS + OPTIONAL_ROWS)} (default: "
        f"{','.join(ROWS)})",
    )
    parser.add_argument("--out", type=Path, help="also write every raw figure here (JSON)")
    parser.add_argument("--no-write", action="store_true", help="leave docs/performance.md alone")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run each hub under py-spy, one file per hub run in DIR "
        "(implies --no-write: profiled figures are not comparable)",
    )
    parser.add_argument(
        "--profile-format",
        choices=sorted(procs.PROFILE_SUFFIXES),
        default="flamegraph",
        help="py-spy's output: flamegraph (.svg), speedscope (.json) or raw "
        "collapsed stacks (.txt)",
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="FILE.json",
        help="no measuring: print the table of an earlier --out file (and write the doc from it "
        "unless --no-write)",
    )
    args = parser.parse_args()
    if args.source is not None:
        saved = json.loads(args.source.read_text())
        results = saved["results"]
        main_rows = not ({"abuse", "cluster"} & set(results))
        finish(saved["meta"], results, args, write=main_rows and not args.no_write)
        if "cluster" in results and not args.no_write:
            write_cluster(saved["meta"], results["cluster"])
        return
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = sorted(set(rows) - set(ROWS + OPTIONAL_ROWS))
    if unknown:
        parser.error(
            f"unknown rows {', '.join(unknown)}: choose from {', '.join(ROWS + OPTIONAL_ROWS)}"
        )
    profiling = None
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
        profiling = procs.Profiling(args.profile, args.profile_format)
    procs.raise_nofile()
    procs.pin_self(procs.LOAD_CORE)
    try:
        import uvloop  # type: ignore[import-not-found]

        runner, loop_name = uvloop.run, f"uvloop {uvloop.__version__}"
    except ImportError:
        runner, loop_name = asyncio.run, "asyncio's default loop (uvloop not installed)"
    meta: dict[str, Any] = {
        "command": shlex.join(["bench/run", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(loop_name),
        "load_start": loadavg(),
        "quick": args.quick,
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kernal-bench-") as tmp:
        raw = runner(run_rows(rows, options_for(args.quick), Path(tmp), profiling))
    meta["wall_s"] = round(time.monotonic() - started, 1)
    meta["load_end"] = loadavg()
    if args.out is not None:  # first, so a bug further on cannot cost the measurements
        args.out.write_text(json.dumps({"meta": meta, "results": raw}, indent=1, default=str))
    # The abuse row's document is docs/security-figures.md (bench/abuse.py writes it); the
    # cluster row writes a section of its own.
    quiet = args.no_write or args.quick or args.profile
    write = not (quiet or "abuse" in rows or "cluster" in rows)
    finish(meta, raw, args, write=write)
    if "cluster" in rows and not quiet:
        write_cluster(meta, raw["cluster"])


def write_cluster(meta: dict[str, Any], results: Any) -> None:
    """The cluster row's section of docs/performance.md (not when the row failed)."""
    if isinstance(results, dict):
        return
    section = cluster_document(meta, build_table({"cluster": results}), results)
    report.write_section(DOC, "bench/run --rows cluster", section)
    print(f"wrote the cluster section of {DOC.relative_to(procs.ROOT)}")


def finish(
    meta: dict[str, Any], raw: dict[str, Any], args: argparse.Namespace, *, write: bool
) -> None:
    """Print the table; write the doc when asked."""
    table = build_table(raw)
    print(report.text_table(table))
    print(
        f"\n{meta['command']}: {meta['wall_s']:.0f} s on {meta['machine']['event_loop']}, "
        f"load average {meta['load_start']} → {meta['load_end']}"
    )
    if write:
        report.write_doc(DOC, document(meta, table, options_for(meta["quick"])))
        print(f"wrote {DOC.relative_to(procs.ROOT)}")


if __name__ == "__main__":
    main()
