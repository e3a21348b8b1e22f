"""Row 1, relay fan-out: one publisher, N subscribers, 256-byte messages, on the kernal hub, Redis
pub/sub and NATS core through the same harness (:mod:`perf.systems`, :mod:`perf.wire`).

A run: start the server (pinned), join N subscribers, join the publisher, publish for
``duration`` seconds as fast as the server takes it, then wait for the deliveries still in
flight. Outstanding work is bounded two ways, the same for all three servers: at most
``window`` messages unacknowledged by the server (hub ACKs, Redis replies, NATS PONGs), and at
most ``bound`` deliveries (messages times subscribers) sent but not yet received, so no server
buffers an unbounded backlog for a harness that reads more slowly than it publishes, and the
latency at N = 1,000 is not just a longer queue than at N = 10.

Deliveries/s = frames counted by all subscribers / (last delivery - first send).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perf import procs
from perf.systems import SYSTEMS, System
from perf.wire import Link, Replies, Tally, open_all, percentile


@dataclass(frozen=True)
class RelayOptions:
    sizes: tuple[int, ...] = (10, 100, 1000)
    systems: tuple[str, ...] = ("kernal", "redis", "nats")
    duration: float = 3.0  # seconds of publishing per run
    batch: int = 64  # messages per write
    window: int = 1024  # messages unacknowledged by the server
    bound: int = 65_536  # deliveries (messages x subscribers) sent but not yet received
    stall: float = 10.0  # seconds without progress before a run gives up
    join_base: float = 30.0  # join budget: join_base + join_per_subscriber * N seconds
    join_per_subscriber: float = 0.1
    concurrency: int = 100  # handshakes in flight while joining


async def pump(
    system: System,
    link: Link,
    replies: Replies,
    tally: Tally,
    fanout: int,
    options: RelayOptions,
) -> tuple[int, str | None]:
    """Publish for ``options.duration`` s within both bounds; ``(messages sent, problem)``."""
    batch, sent = options.batch, 0
    window = max(options.window, batch)
    bound = max(options.bound, batch * fanout)
    tally.first_send_ns = time.perf_counter_ns()
    end = time.monotonic() + options.duration
    while time.monotonic() < end:
        if sent + batch - replies.acked > window and not await replies.wait_acked(
            sent + batch - window, options.stall
        ):
            return sent, replies.error_text or f"no reply for {options.stall:g} s"
        if not await tally.wait_below(bound - batch * fanout, options.stall):
            return sent, f"deliveries stalled for {options.stall:g} s"
        if link.closed:
            return sent, "the server closed the publisher's connection"
        link.write(system.batch(sent, batch))
        sent += batch
        tally.expected += batch * fanout
        if link.paused:
            await link.drain()
        else:
            await asyncio.sleep(0)  # let the subscribers read
    return sent, None


async def settle(tally: Tally, replies: Replies, sent: int, stall: float) -> bool:
    """Wait for what is in flight, until done or ``stall`` s without progress; True if done."""
    last, quiet_since = -1, time.monotonic()
    while tally.delivered < tally.expected or replies.acked < sent:
        progress = tally.delivered + replies.acked
        if progress != last:
            last, quiet_since = progress, time.monotonic()
        elif time.monotonic() - quiet_since > stall:
            return False
        await asyncio.sleep(0.02)
    return True


async def run_one(
    name: str, subscribers: int, workdir: Path, options: RelayOptions, profile: Path | None
) -> dict[str, Any]:
    """One server, one N: the figures of :func:`summary`, or what went wrong."""
    system = SYSTEMS[name](workdir)
    result: dict[str, Any] = {"system": name, "subscribers": subscribers}
    tally = Tally()
    links: list[Link] = []
    try:
        await system.start(subscribers, profile)
        budget = options.join_base + options.join_per_subscriber * subscribers
        started = time.monotonic()
        deadline = started + budget

        async def join(i: int) -> Link:
            return await system.join_subscriber(i, budget)

        joined, errors = await open_all(
            subscribers, join, concurrency=options.concurrency, deadline=deadline
        )
        links = [link for link in joined if isinstance(link, Link)]
        result["joined"] = len(links)
        if len(links) < subscribers:
            result["note"] = f"{len(links)}/{subscribers} subscribers joined in {budget:g} s"
            result["errors"] = errors
            return result
        publisher, replies = await system.join_publisher(max(1.0, deadline - time.monotonic()))
        links.append(publisher)
        for link in links[:-1]:
            await system.before_counting(link, max(1.0, deadline - time.monotonic()))
            link.count_with(system.counter(tally).feed, _lost(tally))
        result["join_s"] = round(time.monotonic() - started, 2)
        assert system.server is not None
        usage = procs.Usage(system.server)
        sent, problem = await pump(system, publisher, replies, tally, subscribers, options)
        complete = await settle(tally, replies, sent, options.stall) and problem is None
        result.update(summary(tally, sent, complete))
        result.update(usage.finish())
        if problem or tally.lost:
            result["note"] = problem or f"{tally.lost} subscribers disconnected"
    except Exception as exc:
        result["note"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        for link in links:
            link.close()
        await system.stop()
    return result


def _lost(tally: Tally) -> Any:
    def lost() -> None:
        tally.lost += 1

    return lost


def summary(tally: Tally, sent: int, complete: bool) -> dict[str, Any]:
    """Deliveries/s over first send to last delivery, and latency quantiles in ms."""
    elapsed = max(1e-9, (tally.last_delivery_ns - tally.first_send_ns) / 1e9)
    p50, p99 = percentile(tally.latencies, 0.5), percentile(tally.latencies, 0.99)
    return {
        "sent": sent,
        "delivered": tally.delivered,
        "expected": tally.expected,
        "complete": complete,
        "seconds": round(elapsed, 3),
        "deliveries_per_s": tally.delivered / elapsed if tally.delivered else 0.0,
        "p50_ms": None if p50 is None else p50 * 1000,
        "p99_ms": None if p99 is None else p99 * 1000,
        "samples": len(tally.latencies),
        "skipped_samples": tally.skipped,
        "lost": tally.lost,
    }


async def run(
    workdir: Path, options: RelayOptions, profiling: procs.Profiling | None, log: Any
) -> list[dict[str, Any]]:
    """Every N, every server, one at a time; one result per pair."""
    results = []
    for n in options.sizes:
        for name in options.systems:
            profile = procs.profile_path(profiling, f"relay-{n}") if name == "kernal" else None
            log(f"relay: {name} N={n}")
            result = await run_one(name, n, workdir, options, profile)
            log(f"relay: {name} N={n}: {_brief(result)}")
            results.append(result)
    return results


def _brief(result: dict[str, Any]) -> str:
    if "deliveries_per_s" not in result:
        return str(result.get("note"))
    text = f"{result['deliveries_per_s']:,.0f} deliveries/s"
    return text + ("" if result["complete"] else f" (partial: {result.get('note')})")
