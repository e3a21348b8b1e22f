"""The processes the bench starts and watches.

Each server (the kernal hub, ``redis-server``, ``nats-server``) runs as its own process pinned to
:data:`SERVER_CORE`; the bench process itself is the load and pins itself to :data:`LOAD_CORE`.
Servers get the hard ``RLIMIT_NOFILE`` as their soft limit (10k connections need it). Their RSS
and CPU time are read from ``/proc``. With a profile directory, the hub runs under
``py-spy record`` (py-spy on the load core, the hub on the server core); the profile file's
suffix picks py-spy's format (``.svg`` flame graph, ``.json`` speedscope, ``.txt`` collapsed
stacks).

Token registration is the only place the bench reaches into kernal's Python API
(:func:`register_tokens`): keep it that way, so a rename inside kernal is a one-function fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
SERVER_CORE = 0
LOAD_CORE = 1
REDIS = "/usr/bin/redis-server"
NATS = "/usr/sbin/nats-server"
CLK_TCK = os.sysconf("SC_CLK_TCK")


_CORES = frozenset(os.sched_getaffinity(0))  # before pin_self narrows this process to one


def usable_cores() -> set[int]:
    """The cores this process could use when it started (pinning does not change this)."""
    return set(_CORES)


def can_pin() -> bool:
    """Pinning needs both cores; on a one-core machine everything shares it (said in the notes)."""
    return {SERVER_CORE, LOAD_CORE} <= _CORES


def pin_self(core: int) -> None:
    """Pin the calling thread (the bench's main thread) to ``core``, when pinning is possible."""
    if can_pin():
        os.sched_setaffinity(0, {core})


@contextlib.contextmanager
def pinned_to(core: int) -> Iterator[None]:
    """The calling thread on ``core`` for the block (when pinning is possible), then back on
    the cores it had: whoever called (bench/run, or the tests in one pytest process) keeps its
    own pinning, and the processes it starts later inherit that, not ``core``."""
    before = os.sched_getaffinity(0)
    pin_self(core)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def raise_nofile() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; return the new soft limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1 (the server binds it right after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads) in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def core_busy(core: int) -> float:
    """Seconds ``core`` has spent not idle since boot (user, nice, system, irq, softirq, steal),
    whoever ran there."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, line.split()[1:9])
            return (user + nice + system + irq + softirq + steal) / CLK_TCK
    return 0.0


class Usage:
    """CPU use over an interval, as shares of one core: the server process, this process, and
    what else ran on the server and load cores (other work on a shared machine)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self._start = self._now()

    def _now(self) -> tuple[float, float, float, float, float]:
        return (
            time.perf_counter(),
            self.server.cpu_seconds(),
            time.process_time(),
            core_busy(SERVER_CORE),
            core_busy(LOAD_CORE),
        )

    def finish(self) -> dict[str, float]:
        end = self._now()
        wall, server, load, core0, core1 = (b - a for a, b in zip(self._start, end, strict=True))
        wall = max(wall, 1e-9)
        out = {"server_cpu": server / wall, "load_cpu": load / wall}
        if can_pin():
            out["server_core_other"] = max(0.0, core0 - server) / wall
            out["load_core_other"] = max(0.0, core1 - load) / wall
        return {k: round(v, 2) for k, v in out.items()}


PROFILE_SUFFIXES = {"flamegraph": ".svg", "speedscope": ".json", "raw": ".txt"}


@dataclass(frozen=True)
class Profiling:
    """Where and how to profile hubs: one py-spy output file per hub run."""

    directory: Path
    format: str = "flamegraph"

    def path(self, name: str) -> Path:
        return self.directory / (name + PROFILE_SUFFIXES[self.format])


def profile_path(profiling: Profiling | None, name: str) -> Path | None:
    return None if profiling is None else profiling.path(name)


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        return [int(p) for p in text.split()]
    return []


@dataclass
class Server:
    """A started server process. ``pid`` is the measured process (the hub, not py-spy)."""

    name: str
    proc: asyncio.subprocess.Process
    port: int
    pid: int
    log: Path
    profile: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def alive(self) -> bool:
        return self.proc.returncode is None

    async def stop(self, timeout: float = 15.0) -> int | None:
        """SIGINT the measured process (the hub stops cleanly on it), SIGKILL after ``timeout``."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT if self.name == "kernal" else signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                for pid in {self.pid, self.proc.pid}:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                await self.proc.wait()
        return self.proc.returncode

    def log_tail(self, lines: int = 5) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _preexec(core: int | None) -> None:
    """In the child before exec: file limit to the hard limit, then pin (inherited by threads)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Unpinned: every usable core, not the core this (pinned) bench process is on.
    os.sched_setaffinity(0, {core} if core is not None else _CORES)


async def _wait_listening(port: int, proc: asyncio.subprocess.Process, timeout: float) -> None:
    """Until ``port`` accepts a connection; raises if the process exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"exited with status {proc.returncode} before listening")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    raise RuntimeError(f"not listening on port {port} after {timeout:g} s")


async def start(
    name: str,
    argv: list[str],
    port: int,
    workdir: Path,
    *,
    profile: Path | None = None,
    timeout: float = 60.0,
    pin: bool = True,
) -> Server:
    """Start ``argv`` pinned to the server core (``pin=False``: on any core), logging to
    ``workdir/<name>.log``; return once ``port`` accepts connections. With ``profile`` (an
    output file), run it under py-spy."""
    log = workdir / f"{name}-{port}.log"
    core = SERVER_CORE if can_pin() and pin else None
    if profile is not None:
        spy = shutil.which("py-spy", path=str(VENV_BIN)) or shutil.which("py-spy")
        if spy is None:
            raise RuntimeError("--profile needs py-spy: run scripts/setup (it is a dev dependency)")
        fmt = {".json": "speedscope", ".txt": "raw"}.get(profile.suffix, "flamegraph")
        pinned = ["taskset", "-c", str(SERVER_CORE)] if core is not None else []
        # 1,000 samples a second: a relay run lasts a second or two. --nonblocking: py-spy
        # pausing the hub for every sample cut a fan-in run from 9.2k to 2.4k shares/s, and
        # a profile of a hub that slow shows a different balance of work.
        spy_argv = [
            spy,
            "record",
            "--nonblocking",
            "--rate",
            "1000",
            "--format",
            fmt,
            "-o",
            str(profile),
        ]
        argv = [*spy_argv, "--", *pinned, *argv]
        core = LOAD_CORE if core is not None else None  # py-spy itself samples from the load core
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=lambda: _preexec(core),
        )
    pid = proc.pid
    server = Server(name, proc, port, pid, log, profile)
    try:
        await _wait_listening(port, proc, timeout)
        if profile is not None:
            kids = _children(proc.pid)
            if not kids:
                raise RuntimeError("py-spy started no child process")
            server.pid = kids[0]
    except BaseException as exc:
        await server.stop(5)
        if isinstance(exc, RuntimeError):
            raise RuntimeError(f"{name}: {exc}\n{server.log_tail()}") from None
        raise
    return server


async def start_hub(
    workdir: Path,
    db: Path | str,
    *,
    profile: Path | None = None,
    extra: list[str] | None = None,
    limits: bool = False,
    dashboard_port: int = -1,
    port: int | None = None,
    pin: bool = True,
) -> Server:
    """A kernal hub on ``port`` (default: a free one) with ``db`` (tokens registered
    beforehand), no dashboard unless ``dashboard_port`` is given, at the default log level: as an
    operator runs it (plus ``extra`` flags). ``limits``: keep the default rate and
    per-address limits (the abuse bench measures them)."""
    port = free_port() if port is None else port
    argv = [str(VENV_BIN / "kernal"), "hub", "--port", str(port)]
    argv += ["--dashboard-port", str(dashboard_port), "--db", str(db)]
    if not limits:
        # No rate limit or connections-per-address limit: one bench process is every publisher
        # and subscriber, from one address, far faster than any trainer.
        argv += ["--rate-limit", "0", "--limit", "rate_bytes=0"]
        argv += ["--max-connections-per-address", "0"]
    argv += extra or []
    return await start("kernal", argv, port, workdir, profile=profile, pin=pin)


async def start_redis(workdir: Path, *, maxclients: int = 10_100, pin: bool = True) -> Server:
    """redis-server on a free port, nothing persisted (pub/sub needs no disk)."""
    port = free_port()
    argv = [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    argv += ["no", "--maxclients", str(maxclients), "--dir", str(workdir)]
    return await start("redis", argv, port, workdir, pin=pin)


async def start_nats(workdir: Path) -> Server:
    """nats-server (core NATS, no JetStream) on a free port."""
    port = free_port()
    return await start("nats", [NATS, "-a", "127.0.0.1", "-p", str(port)], port, workdir)


async def register_tokens(
    db: Path | str, ai_ids: list[str], *, chosen: dict[str, str] | None = None
) -> dict[str, str]:
    """Create ``db`` (a SQLite file or a PostgreSQL URL) with kernal's schema and one
    generated token per id; return the tokens.
    ``chosen``: ids with a token a person chose, stored with the full stretching (as
    ``kernal token add`` stores one), so guessing it costs what it costs in a deployment.

    The one function that uses kernal's Python API (the same calls as the harness runner's
    ``_register``): adapt it here if those names move.
    """
    from kernal.hub.auth import GENERATED_TOKEN_ITERATIONS, generate_token, hash_token
    from kernal.storage.sql import SqlStore

    tokens = {ai_id: generate_token() for ai_id in ai_ids}
    hashes = {
        ai_id: hash_token(token, iterations=GENERATED_TOKEN_ITERATIONS)
        for ai_id, token in tokens.items()
    }
    for ai_id, token in (chosen or {}).items():
        tokens[ai_id], hashes[ai_id] = token, hash_token(token)
    now = time.time()
    async with SqlStore(str(db)) as store:
        # Concurrent, so the store's writer commits them in batches instead of one fsync each.
        await asyncio.gather(
            *(store.set_token_hash(ai_id, stored, now) for ai_id, stored in hashes.items())
        )
    return tokens


async def create_schema(db: Path) -> None:
    """An empty database with kernal's schema, made by kernal's own migrations."""
    from kernal.storage.sql import SqlStore

    async with SqlStore(str(db)):
        pass
