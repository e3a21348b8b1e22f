"""The table: one row per comparison, built from the raw results of each row module, printed on
stdout and written (between markers, keeping anything after them) to docs/performance.md."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench/run: begin (generated, do not edit between these markers) -->"
END = "<!-- bench/run: end -->"


@dataclass
class Row:
    """One line of the table. ``ratio`` is always kernal ÷ reference."""

    row: str
    kernal: str
    reference: str
    ratio: float | None
    target: str = "report"
    verdict: str = "-"
    lat_kernal: str = ""
    lat_reference: str = ""
    notes: list[str] = field(default_factory=list)


def rate(value: float | None, unit: str = "/s") -> str:
    if value is None:
        return "n/a"
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}{unit}"
    return f"{value:.3g}{unit}"


def ratio_text(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.2g}x" if value < 10 else f"{value:,.0f}x"


def latency(result: dict[str, Any] | None) -> str:
    if not result or result.get("p50_ms") is None:
        return ""
    return f"{_ms(result['p50_ms'])} / {_ms(result['p99_ms'])}"


def _ms(value: float) -> str:
    return f"{value:.3g} ms" if value < 1000 else f"{value / 1000:.3g} s"


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("PASS" if ok else "FAIL")


def relay_rows(results: list[dict[str, Any]]) -> list[Row]:
    rows = []
    by = {(r["system"], r["subscribers"]): r for r in results}
    for n in sorted({r["subscribers"] for r in results}):
        hub = by.get(("kernal", n))
        for ref_name in ("redis", "nats"):
            ref = by.get((ref_name, n))
            if ref is None or hub is None:
                continue
            k, r = hub.get("deliveries_per_s"), ref.get("deliveries_per_s")
            value = _div(k, r)
            ref_label = "Redis pub/sub" if ref_name == "redis" else "NATS core"
            row = Row(
                f"relay fan-out N={n:,}: deliveries/s vs {ref_label}",
                rate(k) + ("" if hub.get("complete") else " (partial)"),
                rate(r) + ("" if ref.get("complete") else " (partial)"),
                value,
                lat_kernal=latency(hub),
                lat_reference=latency(ref),
            )
            if n == 100 and ref_name == "redis":
                row.target, row.verdict = "≥ 1x", _verdict(value is not None and value >= 1)
            for name, res in (("kernal", hub), (ref_name, ref)):
                if res.get("note"):
                    row.notes.append(f"{name}: {res['note']}")
            busy = ref.get("load_cpu", 0) + ref.get("load_core_other", 0)
            if busy >= 0.9:
                row.notes.append(
                    f"the load core was {busy:.0%} busy during the {ref_name} run (the harness "
                    "and other work): the reference may be limited by the load, a lower bound"
                )
            row.notes.append(_cpu_note(hub, "kernal") + "; " + _cpu_note(ref, ref_name))
            rows.append(row)
    return rows


def _cpu_note(result: dict[str, Any], name: str) -> str:
    if "server_cpu" not in result:
        return f"{name}: no CPU figures"
    text = f"{name}: server {result['server_cpu']:.0%} of a core, load {result['load_cpu']:.0%}"
    return text + _others(result)


def _others(result: dict[str, Any]) -> str:
    """Other processes' use of the two cores during the run, when it is worth a mention."""
    other = [
        f"{result[key]:.0%} of the {core} core"
        for key, core in (("server_core_other", "server"), ("load_core_other", "load"))
        if result.get(key, 0) >= 0.1
    ]
    return f" (other work took {' and '.join(other)})" if other else ""


def _relays(run: dict[str, Any]) -> str:
    """Relays received (and their rate) against those expected: each acked share, to every
    other publisher still connected at the end."""
    received, expected = run.get("relays_received", 0), run.get("relays_expected", 0)
    speed = rate(received / run["seconds"])
    lost, publishers = run.get("lost", 0), run.get("publishers")
    if not (lost and publishers):
        return f"relays {received:,} of {expected:,} expected ({speed})"
    left = publishers - lost
    return (
        f"relays {received:,} ({speed}), {expected:,} expected counting only the {left:,}"
        f" publisher{'' if left == 1 else 's'} left connected"
    )


def fanin_rows(results: dict[str, Any]) -> list[Row]:
    reference = results["reference"]
    ceiling = reference["rows_per_s"]
    rows = []
    for run in results["runs"]:
        p = run["publishers"]
        k = run.get("acked_per_s")
        value = _div(k, ceiling)
        row = Row(
            f"persisted fan-in P={p:,}: acked PATTERN_SHAREs/s vs executemany ceiling",
            rate(k) + ("" if run.get("complete") else " (partial)"),
            rate(ceiling, " rows/s"),
            value,
            lat_kernal=latency(run),
        )
        if p == 10:
            row.target = "≥ 100k/s and ≥ 0.4x"
            row.verdict = _verdict(k is not None and k >= 100_000 and (value or 0) >= 0.4)
        if "relays_received" in run and run.get("seconds"):
            row.notes.append(
                f"{_relays(run)}, hub at {run.get('server_cpu', 0):.0%} of a core{_others(run)}, "
                f"{run.get('rows_committed', '?')} rows committed for {run['acked']:,} ACKs"
            )
        if run.get("note"):
            row.notes.append(run["note"])
        per_row = results.get("commit_per_row")
        if p == 10 and per_row and k:
            per_row_rate = per_row["rows_per_s"]
            row.notes.append(
                f"one commit per row (the prototype's way): {rate(per_row_rate, ' rows/s')}, "
                f"kernal {ratio_text(k / per_row_rate)} that"
            )
        rows.append(row)
    return rows


def _cluster_cpu(cpu: dict[str, float] | None, work: float | None, unit: str) -> str:
    """Each process's share of a core, the busiest first, and its CPU per 1,000 ``unit``."""
    if not cpu:
        return "no CPU figures"
    other = cpu.get("other")
    ranked = sorted(((k, v) for k, v in cpu.items() if k != "other"), key=lambda kv: -kv[1])
    text = ", ".join(f"{name} {share:.0%}" for name, share in ranked)
    if other is not None:
        text += f" (other work on the machine: {other:.0%})"
    if work:
        per = ", ".join(f"{name} {_cpu_ms(share / work * 1e6)}" for name, share in ranked)
        text += f"; CPU per 1,000 {unit}: {per}"
    return "CPU " + text


def _cpu_ms(value: float) -> str:
    return f"{value:.0f} ms" if value >= 10 else f"{value:.2g} ms"


def cluster_costs(results: list[dict[str, Any]]) -> str:
    """A markdown table: CPU per 1,000 messages by kind of process, for each configuration
    (the figure that says where the time goes, steadier than throughput on a shared machine)."""
    lines = [
        "| configuration | relay: replicas' CPU per 1,000 deliveries | persisted: replicas' CPU "
        "per 1,000 shares | Redis | PostgreSQL | load |",
        "|---|---|---|---|---|---|",
    ]
    for result in results:
        relay, persist = result.get("relay") or {}, result.get("persist") or {}
        cells = [result["label"]]
        for run, key, names in (
            (relay, "deliveries_per_s", ("replicas",)),
            (persist, "acked_per_s", ("replicas", "redis", "postgres", "load")),
        ):
            cpu, work = run.get("cpu") or {}, run.get(key)
            for name in names:
                if not work:
                    cells.append("n/a")
                    continue
                if name == "replicas":
                    shares = [v for k, v in cpu.items() if k.startswith("r") and k[1:].isdigit()]
                    each = " + ".join(_cpu_ms(v / work * 1e6) for v in shares)
                    total = sum(shares) / work * 1e6
                    cells.append(each if len(shares) == 1 else f"{each} = {_cpu_ms(total)}")
                else:
                    cells.append(_cpu_ms(cpu.get(name, 0.0) / work * 1e6) if name in cpu else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cluster_rows(results: list[dict[str, Any]]) -> list[Row]:
    """Relay and persisted throughput of each configuration ÷ one hub with no bus."""
    base = next((r for r in results if r["replicas"] == 1 and not r["bus"]), {})
    rows = []
    for result in results:
        name = result["label"]
        for kind in ("relay", "persist"):
            run, ref = result.get(kind) or {}, base.get(kind) or {}
            key = "deliveries_per_s" if kind == "relay" else "acked_per_s"
            k, r = run.get(key), ref.get(key)
            partial = "" if run.get("complete") else " (partial)"
            if kind == "relay":
                title = f"cluster relay, {name}: deliveries/s vs 1 hub"
                title += f" ({run.get('subscribers', '?')} subscribers spread over the replicas)"
                work, unit = k, "deliveries"
            else:
                title = f"cluster persisted, {name}: acked PATTERN_SHAREs/s vs 1 hub"
                title += f" ({run.get('publishers', '?')} publishers spread, PostgreSQL)"
                work, unit = k, "shares"
            row = Row(
                title,
                rate(k) + partial if k else "n/a",
                rate(r) if r else "n/a",
                _div(k, r),
                lat_kernal=latency(run),
                lat_reference=latency(ref),
            )
            if kind == "persist" and run.get("seconds"):
                row.notes.append(
                    f"{_relays(run)}, {run.get('rows_committed', '?')} rows committed for "
                    f"{run.get('acked', 0):,} ACKs"
                )
            row.notes.append(_cluster_cpu(run.get("cpu"), work, unit))
            for source in (result, run):
                if source.get("note"):
                    row.notes.append(str(source["note"]))
            rows.append(row)
    return rows


def connection_rows(results: dict[str, Any]) -> list[Row]:
    rows = []
    by = {(r["system"], r["connections"]): r for r in results["idle"]}
    for n in sorted({r["connections"] for r in results["idle"]}):
        hub, ref = by.get(("kernal", n)), by.get(("redis", n)) or {}
        if hub is None:
            continue
        label = f"idle trainers N={n:,}"
        per, ref_per = hub.get("rss_per_connection_kib"), ref.get("rss_per_connection_kib")
        rss = Row(
            f"{label}: RSS per connection vs Redis idle subscriber",
            "n/a" if per is None else f"{per:.1f} KiB",
            "n/a" if ref_per is None else f"{ref_per:.1f} KiB",
            _div(per, ref_per),
        )
        if n >= 10_000:
            rss.target, rss.verdict = "≤ 20 KiB", _verdict(per is not None and per <= 20)
        before, after = hub["rss_before_kib"] / 1024, hub.get("rss_after_kib", 0) / 1024
        rss.notes.append(
            f"kernal RSS {before:.0f} → {after:.0f} MiB for {hub['admitted']:,} connections"
        )
        admitted = Row(
            f"{label}: admitted (connect+AUTH+HELLO→STATE) vs Redis (connect+SUBSCRIBE)",
            f"{hub['admitted']:,}/{n:,} in {hub['ramp_s']:g} s ({rate(hub['admitted_per_s'])})",
            (
                f"{ref['admitted']:,}/{n:,} in {ref['ramp_s']:g} s ({rate(ref['admitted_per_s'])})"
                if ref
                else "n/a"
            ),
            _div(hub["admitted_per_s"], ref.get("admitted_per_s")),
        )
        if n >= 10_000:
            admitted.target = f"all {n:,}"
            admitted.verdict = _verdict(hub["admitted"] == n)
        if hub.get("note"):
            admitted.notes.append(f"kernal: {hub['note']}")
        if hub.get("errors"):
            admitted.notes.append(f"kernal errors: {'; '.join(hub['errors'])[:200]}")
        cpu = Row(
            f"{label}: idle CPU (% of a core) vs Redis",
            f"{hub.get('idle_cpu_pct', math.nan):.1f}%",
            f"{ref['idle_cpu_pct']:.1f}%" if "idle_cpu_pct" in ref else "n/a",
            _div(hub.get("idle_cpu_pct"), ref.get("idle_cpu_pct")),
        )
        cpu.notes.append(
            f"{hub.get('still_connected', 0):,} kernal connections still open after the idle window"
        )
        rows += [rss, admitted, cpu]
    bursts = {b["system"]: b for b in results["burst"]}
    hub_burst = bursts.get("kernal")
    if hub_burst is not None:
        ref_burst = bursts.get("redis")
        n = hub_burst["burst"]
        burst = Row(
            f"burst of {n:,} simultaneous connects: admitted vs Redis",
            f"{hub_burst['admitted']:,}/{n:,} (last at {hub_burst['last_admitted_s']} s)",
            (
                f"{ref_burst['admitted']:,}/{n:,} (last at {ref_burst['last_admitted_s']} s)"
                if ref_burst
                else "n/a"
            ),
            _div(hub_burst["admitted"], ref_burst["admitted"] if ref_burst else None),
            target=f"all {n:,}",
            verdict=_verdict(hub_burst["admitted"] == n) if n >= 1000 else "-",
        )
        if hub_burst.get("note"):
            burst.notes.append(f"kernal: {hub_burst['note']}")
        rows.append(burst)
    return rows


def harness_rows(results: dict[str, Any], target: int = 1000) -> list[Row]:
    best = results["largest_passing"]
    steps = results["steps"]
    speed = steps[0]["speed"] if steps else 5
    largest = best["trainers"] if best else 0
    row = Row(
        f"harness stress_test (simulated, --speed {speed:g}): most trainers all succeeding",
        f"{largest:,} ({best['wall_s']:g} s)" if best else "none",
        f"{target:,} (the target)",
        largest / target,
        target=f"{target:,}",
        verdict=_verdict(largest >= target),
    )
    failing = next((s for s in steps if s is not best and s["trainers"] > largest), None)
    if failing:
        row.notes.append(
            f"{failing['trainers']:,} trainers: {failing['succeeded']:,} succeeded in "
            f"{failing['wall_s']:g} s; {failing.get('note', '')}"
        )
    learning = results["learning"]
    n = learning["trainers"]
    learn = Row(
        f"harness stress_test (learning, {n} trainers, --speed {learning['speed']:g})",
        f"{learning['succeeded']}/{n} succeeded ({learning['wall_s']:g} s)",
        f"{n} (the target)",
        learning["succeeded"] / n,
        target=f"all {n}",
        verdict=_verdict(learning["succeeded"] == n and learning.get("exit_status") == 0),
    )
    if learning.get("note"):
        learn.notes.append(learning["note"])
    return [row, learn]


COLUMNS = (
    "row",
    "kernal",
    "reference",
    "ratio",
    "target",
    "verdict",
    "kernal p50 / p99",
    "reference p50 / p99",
)


def cells(row: Row) -> list[str]:
    return [
        row.row,
        row.kernal,
        row.reference,
        ratio_text(row.ratio),
        row.target,
        row.verdict,
        row.lat_kernal,
        row.lat_reference,
    ]


def text_table(rows: list[Row]) -> str:
    """The table for a terminal, with the notes numbered below it."""
    body = [list(COLUMNS)] + [cells(r) for r in rows]
    widths = [max(len(line[i]) for line in body) for i in range(len(COLUMNS))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in body
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for i, row in enumerate(rows, 1):
        for note in row.notes:
            lines.append(f"  [{i}] {note}")
    return "\n".join(lines)


def markdown_table(rows: list[Row]) -> str:
    head = "| # | " + " | ".join(COLUMNS) + " |\n|" + "---|" * (len(COLUMNS) + 1)
    lines = [head]
    for i, row in enumerate(rows, 1):
        lines.append(f"| {i} | " + " | ".join(c.replace("|", "\\|") for c in cells(row)) + " |")
    return "\n".join(lines)


def write_doc(path: Path, generated: str) -> None:
    """Replace the generated part of ``path`` (between the markers), keeping the rest."""
    block = f"{BEGIN}\n{generated.rstrip()}\n{END}\n"
    if path.exists():
        old = path.read_text(encoding="utf-8")
        if BEGIN in old and END in old:
            pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END) + r"\n?", re.DOTALL)
            path.write_text(pattern.sub(lambda _: block, old, count=1), encoding="utf-8")
            return
    path.write_text(block, encoding="utf-8")


def write_section(path: Path, name: str, generated: str) -> None:
    """Replace the part of ``path`` between ``name``'s markers (appending it, or creating the
    file, when they are not there yet), keeping everything else: several scripts share one
    page, each writing its own section."""
    begin = f"<!-- {name}: begin (generated, do not edit between these markers) -->"
    end = f"<!-- {name}: end -->"
    block = f"{begin}\n{generated.rstrip()}\n{end}\n"
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if begin in old and end in old:
        pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end) + r"\n?", re.DOTALL)
        path.write_text(pattern.sub(lambda _: block, old, count=1), encoding="utf-8")
    else:
        path.write_text(old + ("\n" if old and not old.endswith("\n\n") else "") + block, "utf-8")
