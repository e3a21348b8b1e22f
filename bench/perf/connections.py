"""Row 3, connections: N authenticated idle trainers on one hub, and a burst of simultaneous
connects; the same against redis-server (idle subscribers, one channel each) as the reference.

An idle trainer connects, sends AUTH and HELLO, reads AUTH_OK and STATE (it has joined), then
only reads (the hub keeps sending it AI_JOINED as others arrive). ``concurrency`` handshakes are
in flight at a time during the ramp, which stops at a deadline. Measured on the server process:
RSS (``VmRSS``) before the first connection and after the ramp, divided by the connections
that got in; admissions per second over the whole ramp; CPU over an ``idle_seconds`` window
once the server has quietened down (or a bounded wait has passed: then it says so).

Burst: a fresh server, ``burst`` connections all started in the same event-loop turn, counted
if their handshake completes within ``burst_timeout``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perf import procs
from perf.systems import join_hub
from perf.wire import Link, open_all


@dataclass(frozen=True)
class ConnectionOptions:
    sizes: tuple[int, ...] = (1000, 10_000)
    burst: int = 1000
    idle_seconds: float = 10.0
    quiet_limit: float = 30.0  # at most this long waiting for the server to go idle
    quiet_cpu: float = 0.05  # "idle": under 5% of a core over one second
    concurrency: int = 200
    ramp_base: float = 30.0  # ramp deadline: ramp_base + ramp_per_connection * N seconds
    ramp_per_connection: float = 0.015
    handshake_timeout: float = 60.0
    burst_timeout: float = 60.0
    reference: bool = True


def idle_id(i: int) -> str:
    return f"bench-idle-{i:05d}"


class Idle:
    """A joined connection that only reads; counts the frames and notices a close."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.frames = 0
        self.lost = False
        link.count_with(self.feed, self.on_lost)

    def feed(self, data: bytes) -> None:
        self.frames += data.count(b"\n")

    def on_lost(self) -> None:
        self.lost = True


Joiner = Callable[[int, float], Awaitable[Idle]]


def hub_joiner(port: int, tokens: dict[str, str]) -> Joiner:
    async def join(i: int, timeout: float) -> Idle:
        ai_id = idle_id(i)
        return Idle(await join_hub(port, ai_id, tokens[ai_id], timeout))

    return join


def redis_joiner(port: int) -> Joiner:
    async def join(i: int, timeout: float) -> Idle:
        link = await Link.open(port, timeout)
        channel = idle_id(i).encode()
        link.write(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(channel), channel))
        await link.read_until(b":1\r\n", timeout)
        return Idle(link)

    return join


async def _quiet(server: procs.Server, options: ConnectionOptions) -> float:
    """Wait until the server uses under ``quiet_cpu`` of a core for a second (bounded); return
    the CPU share of the last second."""
    deadline = time.monotonic() + options.quiet_limit
    share = 1.0
    while time.monotonic() < deadline:
        before = server.cpu_seconds()
        await asyncio.sleep(1.0)
        share = server.cpu_seconds() - before
        if share < options.quiet_cpu:
            break
    return share


async def idle_run(
    server: procs.Server, join: Joiner, n: int, options: ConnectionOptions
) -> dict[str, Any]:
    """Ramp ``n`` idle connections onto ``server``; RSS, admission rate, idle CPU."""
    result: dict[str, Any] = {"system": server.name, "connections": n}
    await asyncio.sleep(0.5)
    rss_before = server.rss_kib()
    budget = options.ramp_base + options.ramp_per_connection * n
    started = time.monotonic()
    joined, errors = await open_all(
        n,
        lambda i: join(i, options.handshake_timeout),
        concurrency=options.concurrency,
        deadline=started + budget,
    )
    ramp = time.monotonic() - started
    idles = [j for j in joined if isinstance(j, Idle)]
    try:
        result.update(
            admitted=len(idles),
            ramp_s=round(ramp, 2),
            admitted_per_s=len(idles) / ramp,
            rss_before_kib=rss_before,
        )
        if len(idles) < n:
            result["note"] = f"{len(idles)}/{n} got in within {budget:g} s"
            result["errors"] = errors
        last_second = await _quiet(server, options)
        result["busy_after_ramp"] = last_second >= options.quiet_cpu
        result["rss_after_kib"] = rss = server.rss_kib()
        if idles:
            result["rss_per_connection_kib"] = (rss - rss_before) / len(idles)
        cpu = server.cpu_seconds()
        await asyncio.sleep(options.idle_seconds)
        result["idle_cpu_pct"] = 100 * (server.cpu_seconds() - cpu) / options.idle_seconds
        result["still_connected"] = sum(not i.lost for i in idles)
        if result["busy_after_ramp"]:
            result["note"] = (
                result.get("note", "") + f"; still busy {options.quiet_limit:g} s after the ramp"
            ).lstrip("; ")
    finally:
        for idle in idles:
            idle.link.close()
    return result


async def burst_run(
    server: procs.Server, join: Joiner, n: int, options: ConnectionOptions
) -> dict[str, Any]:
    """``n`` connections started together; how many joined within the timeout, how fast."""
    started = time.monotonic()
    times: list[float] = []

    async def one(i: int) -> Idle:
        idle = await join(i, options.burst_timeout)
        times.append(time.monotonic() - started)
        return idle

    outcomes = await asyncio.gather(
        *(asyncio.wait_for(one(i), options.burst_timeout) for i in range(n)),
        return_exceptions=True,
    )
    idles = [o for o in outcomes if isinstance(o, Idle)]
    failures = sorted({type(o).__name__ for o in outcomes if isinstance(o, BaseException)})
    for idle in idles:
        idle.link.close()
    result: dict[str, Any] = {
        "system": server.name,
        "burst": n,
        "admitted": len(idles),
        "last_admitted_s": round(max(times), 2) if times else None,
        "median_admitted_s": round(sorted(times)[len(times) // 2], 2) if times else None,
    }
    if failures:
        result["note"] = f"{n - len(idles)} failed ({', '.join(failures)})"
    return result


async def _hub(
    workdir: Path, n: int, tag: str, profile: Path | None
) -> tuple[procs.Server, Joiner]:
    db = workdir / f"connections-{tag}.db"
    tokens = await procs.register_tokens(db, [idle_id(i) for i in range(n)])
    server = await procs.start_hub(workdir, db, profile=profile)
    return server, hub_joiner(server.port, tokens)


async def run(
    workdir: Path, options: ConnectionOptions, profiling: procs.Profiling | None, log: Any
) -> dict[str, Any]:
    """Idle ramps for each size and the burst, on the hub then (optionally) on Redis."""
    out: dict[str, Any] = {"idle": [], "burst": []}

    def profile(tag: str) -> Path | None:
        return procs.profile_path(profiling, f"connections-{tag}")

    for n in options.sizes:
        log(f"connections: kernal, {n} idle trainers")
        server, join = await _hub(workdir, n, f"idle-{n}", profile(f"idle-{n}"))
        try:
            out["idle"].append(await idle_run(server, join, n, options))
        finally:
            await server.stop(60 if server.profile else 15)
        log(f"connections: kernal {n}: {_brief(out['idle'][-1])}")
        if options.reference:
            redis = await procs.start_redis(workdir, maxclients=max(n + 100, 10_100))
            try:
                out["idle"].append(await idle_run(redis, redis_joiner(redis.port), n, options))
            finally:
                await redis.stop()
            log(f"connections: redis {n}: {_brief(out['idle'][-1])}")
    log(f"connections: kernal, burst of {options.burst}")
    server, join = await _hub(workdir, options.burst, "burst", profile("burst"))
    try:
        out["burst"].append(await burst_run(server, join, options.burst, options))
    finally:
        await server.stop(60 if server.profile else 15)
    if options.reference:
        redis = await procs.start_redis(workdir)
        try:
            out["burst"].append(
                await burst_run(redis, redis_joiner(redis.port), options.burst, options)
            )
        finally:
            await redis.stop()
    log(f"connections: burst: {[(b['system'], b['admitted']) for b in out['burst']]}")
    return out


def _brief(result: dict[str, Any]) -> str:
    per = result.get("rss_per_connection_kib")
    text = f"{result.get('admitted')}/{result['connections']} in {result.get('ramp_s')} s"
    return text + (f", {per:.1f} KiB each" if per is not None else "")
