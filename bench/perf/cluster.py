"""The ``cluster`` row: relay and persisted throughput with 1, 2 and 3 replicas, each replica its
own ``kernal hub`` process on one PostgreSQL database and one Redis (docs/cluster.md).

Each configuration gets a fresh PostgreSQL database (on ``$KERNAL_BENCH_PG_URL``'s server,
dropped afterwards) and, on Redis, its own ``redis-server`` (nothing persisted); on NATS, the
machine's ``nats-server`` with JetStream (``$KERNAL_BENCH_NATS_URL``), whose CPU counts under
"other". The reference is the same
run on one hub with no bus: every ratio is "this many replicas ÷ one hub".

- **Relay**: one publisher on the first replica sends ``COLLABORATION_REQUEST``s to everyone
  (ACKed, not stored), as fast as a window of unacknowledged ones allows; the subscribers are
  spread evenly over the replicas and every one of them gets every request.
- **Persisted**: publishers spread evenly over the replicas share ``PATTERN_SHARE``s, each
  committed to PostgreSQL before its ACK and relayed to every other publisher, on whichever
  replica it is. The rows are counted afterwards: an ACK must be a committed row.

Nothing is pinned here (replicas, Redis, PostgreSQL and this load process share the cores, as
they would on one machine), so the figures say what the cluster costs, not what it would scale
to on more machines; the CPU each process used during each run says where the time went.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perf import procs, relay
from perf.fanin import Publisher, _settle, _summary
from perf.systems import PUBLISHER, Hub, join_hub, subscriber_id
from perf.wire import Link, Replies, Tally

PG_URL = os.environ.get("KERNAL_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
NATS_URL = os.environ.get("KERNAL_BENCH_NATS_URL", "nats://127.0.0.1:4222")
CONFIGS: tuple[tuple[int, str | None], ...] = (
    (1, None),
    (1, "redis"),
    (2, "redis"),
    (3, "redis"),
    (2, "nats"),
    (3, "nats"),
)
"""(replicas, bus): one hub alone, the same with the bus it does not need, 2 and 3 replicas on
Redis, then on NATS."""


@dataclass(frozen=True)
class ClusterOptions:
    configs: tuple[tuple[int, str | None], ...] = CONFIGS
    subscribers: int = 30  # relay: spread over the replicas
    publishers: int = 12  # persisted: spread over the replicas
    duration: float = 3.0  # seconds of sending per run
    window: int = 32  # unacknowledged shares per publisher
    relay_window: int = 1024  # unacknowledged requests of the relay publisher
    stall: float = 10.0
    settle_limit: float = 30.0
    join_timeout: float = 30.0


def label(replicas: int, bus: str | None) -> str:
    if not bus:
        return "1 hub (no bus)"
    name = {"redis": "Redis", "nats": "NATS"}[bus]
    return f"{replicas} replica{'s' if replicas > 1 else ''} ({name})"


# ------------------------------------------------------------------ CPU of every process


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process on this machine (other work's sessions included)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _cpu(pid: int) -> float:
    try:
        return procs.cpu_seconds(pid)
    except OSError:
        return 0.0  # gone meanwhile (a PostgreSQL backend that ended)


class Usage:
    """Shares of one core used over an interval: each replica, Redis, PostgreSQL (every
    ``postgres`` process, so other work on the machine counts), this load process."""

    def __init__(self, replicas: list[procs.Server], redis: procs.Server | None) -> None:
        self.replicas, self.redis = replicas, redis
        self._start = self._now()

    def _now(self) -> dict[str, float]:
        now = {"wall": time.perf_counter(), "load": time.process_time()}
        for i, server in enumerate(self.replicas):
            now[f"r{i + 1}"] = server.cpu_seconds()
        if self.redis is not None:
            now["redis"] = self.redis.cpu_seconds()
        now["postgres"] = sum(_cpu(pid) for pid in postgres_pids())
        now["machine"] = sum(procs.core_busy(core) for core in procs.usable_cores())
        return now

    def finish(self) -> dict[str, float]:
        """Each process's share of a core, and ``other``: what the rest of the machine used
        (other work on a shared machine); their sum is at most the number of cores."""
        end = self._now()
        wall = max(1e-9, end["wall"] - self._start["wall"])
        used = {
            key: max(0.0, end[key] - self._start.get(key, 0.0)) / wall
            for key in end
            if key != "wall"
        }
        machine = used.pop("machine")
        used["other"] = max(0.0, machine - sum(used.values()))
        return {key: round(value, 2) for key, value in used.items()}


# ------------------------------------------------------------------ the database


def _admin(sql: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(
        PG_URL.replace("postgresql://", "postgresql+psycopg://", 1),
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
    )
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def _count_rows(url: str) -> int:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    engine = sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg://", 1), poolclass=NullPool
    )
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT COUNT(*) FROM shared_patterns").scalar_one())
    finally:
        engine.dispose()


def database_url(name: str) -> str:
    base, _, _ = PG_URL.rpartition("/")
    return f"{base}/{name}"


# ------------------------------------------------------------------ one configuration


async def _relay(
    ports: list[int], tokens: dict[str, str], options: ClusterOptions, usage_of: Any
) -> dict[str, Any]:
    n = options.subscribers
    links: list[Link] = []
    result: dict[str, Any] = {"subscribers": n}
    try:
        for i in range(n):
            links.append(
                await join_hub(
                    ports[i % len(ports)],
                    subscriber_id(i),
                    tokens[subscriber_id(i)],
                    options.join_timeout,
                )
            )
        # The directory of every replica hears of every subscriber before the publisher asks.
        await asyncio.sleep(1.0)
        publisher = await join_hub(ports[0], PUBLISHER, tokens[PUBLISHER], options.join_timeout)
        replies = Replies(b"\n", b'"ERROR"')
        publisher.count_with(replies.feed, lambda: None)
        tally = Tally()
        system = Hub(Path("."))
        for link in links:
            await link.read_until(b'"' + PUBLISHER.encode() + b'"', options.join_timeout)
            await link.read_until(b"\n", options.join_timeout)
            link.count_with(system.counter(tally).feed, lambda: None)  # as the relay row counts
        links.append(publisher)
        relay_options = relay.RelayOptions(
            duration=options.duration, window=options.relay_window, stall=options.stall
        )
        usage = usage_of()
        sent, problem = await relay.pump(system, publisher, replies, tally, n, relay_options)
        complete = await relay.settle(tally, replies, sent, options.stall) and problem is None
        result["cpu"] = usage.finish()
        result.update(relay.summary(tally, sent, complete))
        if problem:
            result["note"] = problem
    except Exception as exc:
        result["note"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        for link in links:
            link.close()
    return result


async def _persist(
    ports: list[int],
    tokens: dict[str, str],
    ids: list[str],
    options: ClusterOptions,
    usage_of: Any,
) -> dict[str, Any]:
    pubs: list[Publisher] = []
    result: dict[str, Any] = {"publishers": len(ids)}
    try:
        for i, ai_id in enumerate(ids):
            link = await join_hub(ports[i % len(ports)], ai_id, tokens[ai_id], options.join_timeout)
            pub = Publisher(link, ai_id, options.window)
            link.count_with(pub.feed, pub.on_lost)
            pubs.append(pub)
        await asyncio.sleep(1.0)  # every replica knows every publisher (relays reach them all)
        usage = usage_of()
        first_send = time.perf_counter_ns()
        await asyncio.gather(*(p.share_for(options.duration, options.stall) for p in pubs))
        fan = _FaninView(options)
        complete = await _settle(pubs, fan)  # type: ignore[arg-type]
        result["cpu"] = usage.finish()
        result.update(_summary(pubs, first_send, complete, options.stall))
    except Exception as exc:
        result["note"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        for pub in pubs:
            pub.link.close()
    return result


@dataclass(frozen=True)
class _FaninView:
    """The fields of :class:`perf.fanin.FaninOptions` that its ``_settle`` reads."""

    options: ClusterOptions

    @property
    def settle_limit(self) -> float:
        return self.options.settle_limit

    @property
    def stall(self) -> float:
        return self.options.stall


async def run_config(
    replicas: int, bus: str | None, workdir: Path, options: ClusterOptions
) -> dict[str, Any]:
    result: dict[str, Any] = {"replicas": replicas, "bus": bus, "label": label(replicas, bus)}
    name = f"kernal_bench_{uuid.uuid4().hex[:10]}"
    await asyncio.to_thread(_admin, f"CREATE DATABASE {name}")
    url = database_url(name)
    servers: list[procs.Server] = []
    redis: procs.Server | None = None
    try:
        sharers = [f"bench-share-{i:03d}" for i in range(options.publishers)]
        ids = [subscriber_id(i) for i in range(options.subscribers)] + [PUBLISHER] + sharers
        tokens = await procs.register_tokens(url, ids)
        extra = ["--request-fanout", str(options.subscribers)]
        extra += ["--presence-limit", str(len(ids) + 1)]
        if bus == "redis":
            redis = await procs.start_redis(workdir, pin=False)
            extra += ["--bus", f"redis://127.0.0.1:{redis.port}", "--bus-namespace", "bench"]
        elif bus == "nats":
            # The machine's nats-server (JetStream on, for the keys): not this bench's process,
            # so its CPU is under "other"; a namespace of its own.
            extra += ["--bus", NATS_URL, "--bus-namespace", name]
        started = time.monotonic()
        servers = list(
            await asyncio.gather(
                *(
                    procs.start_hub(
                        workdir, url, extra=[*extra, "--replica-id", f"r{i + 1}"], pin=False
                    )
                    for i in range(replicas)
                )
            )
        )
        result["start_s"] = round(time.monotonic() - started, 2)
        if bus:
            await asyncio.sleep(1.0)  # every replica has heard the others' heartbeat

        def usage_of() -> Usage:
            return Usage(servers, redis)

        ports = [server.port for server in servers]
        result["relay"] = await _relay(ports, tokens, options, usage_of)
        result["persist"] = await _persist(ports, tokens, sharers, options, usage_of)
    except Exception as exc:
        result["note"] = f"{type(exc).__name__}: {exc}"[:300]
    finally:
        await asyncio.gather(*(server.stop() for server in servers))
        if redis is not None:
            await redis.stop()
    persist = result.get("persist", {})
    if "acked" in persist:
        persist["rows_committed"] = await asyncio.to_thread(_count_rows, url)
        if persist["rows_committed"] < persist["acked"]:
            persist["note"] = f"only {persist['rows_committed']} rows for {persist['acked']} ACKs"
    await asyncio.to_thread(_admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return result


async def run(workdir: Path, options: ClusterOptions, log: Any) -> list[dict[str, Any]]:
    """Every configuration in turn, unpinned (this process too, for the row's duration)."""
    pinned = os.sched_getaffinity(0)
    os.sched_setaffinity(0, procs.usable_cores())
    try:
        results = []
        for replicas, bus in options.configs:
            log(f"cluster: {label(replicas, bus)}")
            result = await run_config(replicas, bus, workdir, options)
            log(f"cluster: {label(replicas, bus)}: {_brief(result)}")
            results.append(result)
        return results
    finally:
        os.sched_setaffinity(0, pinned)


def _brief(result: dict[str, Any]) -> str:
    if "note" in result:
        return str(result["note"])
    r, p = result["relay"], result["persist"]
    relay_text = (
        f"{r['deliveries_per_s']:,.0f} deliveries/s" if "deliveries_per_s" in r else r.get("note")
    )
    persist_text = f"{p['acked_per_s']:,.0f} acked/s" if "acked_per_s" in p else p.get("note")
    return f"relay {relay_text}; persisted {persist_text}"
