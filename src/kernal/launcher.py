"""Trainers the hub runs as child processes (started from the dashboard, ``POST /api/trainers``).

A :class:`Launcher` starts ``python -m kernal trainer ...`` for an AI, with its token in the
child's environment (``KERNAL_TOKEN``: a command line is visible to every user of the machine),
reads what the child prints into a bounded ring of lines, records how it exited, and stops it
(SIGTERM, then SIGKILL after a grace period). It never restarts a trainer: one that exits stays
listed as exited, with its last lines, until it is removed.

It knows nothing of the hub or the web app: it is given the hub's address and scenario speed,
and the caller mints and revokes tokens (:mod:`kernal.web.trainers`). Nothing in
:mod:`kernal.hub` imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger("kernal.launcher")

LOG_LINES = 2_000  # lines kept per trainer (the newest)
LINE_CHARS = 4_096  # a longer line is cut: the ring is bounded in bytes too, not only in lines
STOP_GRACE = 5.0  # real seconds between SIGTERM and SIGKILL


class LaunchRefused(Exception):
    """The trainer cannot be launched (limit reached, id taken); the message says why and what
    to do. ``conflict`` tells a taken id from a full launcher."""

    def __init__(self, message: str, *, conflict: bool = True) -> None:
        super().__init__(message)
        self.conflict = conflict


@dataclass(frozen=True)
class LaunchSpec:
    """What to run: the trainer's identity and engine, options already validated by the
    engine's :class:`~kernal.engines.base.EngineOptions` (JSON values)."""

    ai_id: str
    specialization: str
    engine: str = "learning"
    options: Mapping[str, Any] = field(default_factory=dict)
    capabilities: Sequence[str] | None = None
    seed: int | None = None


@dataclass
class Launched:
    """One launched trainer: its process, its recent output and how it ended."""

    spec: LaunchSpec
    command: list[str]
    """The child's argv; it holds no secret (the token travels in the environment)."""
    process: asyncio.subprocess.Process
    started_at: float
    logs: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    lines_seen: int = 0
    exit_code: int | None = None
    exited_at: float | None = None
    stopping: bool = False
    workdir: Path | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    watcher: asyncio.Task[None] | None = None

    @property
    def ai_id(self) -> str:
        return self.spec.ai_id

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def state(self) -> Literal["running", "exited"]:
        return "exited" if self.done.is_set() else "running"


class Launcher:
    """Runs and supervises trainer processes against one hub.

    ``hub`` is the address the children connect to (``HOST:PORT`` or ``tls://HOST:PORT``),
    ``speed`` their scenario speed (the hub's), ``limit`` how many may be listed at once
    (running or exited). ``python`` is the interpreter (this one by default)."""

    def __init__(
        self,
        hub: str,
        *,
        speed: float = 1.0,
        limit: int = 16,
        ca: str | None = None,
        grace: float = STOP_GRACE,
        python: str = sys.executable,
    ) -> None:
        self.hub = hub
        self.speed = speed
        self.limit = limit
        self.ca = ca
        self.grace = grace
        self.python = python
        self._launched: dict[str, Launched] = {}
        self._reserved: set[str] = set()

    def __contains__(self, ai_id: object) -> bool:
        return ai_id in self._launched or ai_id in self._reserved

    def get(self, ai_id: str) -> Launched | None:
        return self._launched.get(ai_id)

    def all(self) -> list[Launched]:
        """Every listed trainer, oldest launch first."""
        return sorted(self._launched.values(), key=lambda t: t.started_at)

    def reserve(self, ai_id: str) -> None:
        """Claim ``ai_id`` before the awaits of a launch (minting the token), so two requests
        for one id, or for the last free slot, cannot both pass. Raises :class:`LaunchRefused`.
        Undo with :meth:`release` if the launch does not go ahead."""
        if ai_id in self:
            existing = self._launched.get(ai_id)
            if existing is not None and existing.state == "exited":
                raise LaunchRefused(
                    f"{ai_id} was launched and exited (code {existing.exit_code}); remove it "
                    f"with DELETE /api/trainers/{ai_id} (its logs go with it), then launch again"
                )
            raise LaunchRefused(
                f"{ai_id} is already launched; stop it first (DELETE /api/trainers/{ai_id})"
            )
        if len(self._launched) + len(self._reserved) >= self.limit:
            raise LaunchRefused(
                f"{self.limit} trainers are launched already (running or exited), the most "
                "this hub allows; stop or remove one, or start the hub with a higher "
                "--max-launched-trainers",
                conflict=False,
            )
        self._reserved.add(ai_id)

    def release(self, ai_id: str) -> None:
        self._reserved.discard(ai_id)

    def command_for(self, spec: LaunchSpec, workdir: Path) -> list[str]:
        """The child's argv: engine options as ``--option KEY=JSON``; the AI id and
        specialization after ``--`` (an AI id may start with ``-``)."""
        argv = [self.python, "-m", "kernal", "trainer", "--hub", self.hub]
        if self.ca:
            argv += ["--ca", self.ca]
        argv += ["--engine", spec.engine, "--speed", repr(self.speed)]
        if spec.seed is not None:
            argv += ["--seed", str(spec.seed)]
        for key, value in spec.options.items():
            argv += ["--option", f"{key}={json.dumps(value)}"]
        if spec.capabilities:
            path = workdir / "capabilities.toml"
            # JSON strings are valid TOML basic strings: ids and labels arrive quoted safely.
            caps = ", ".join(json.dumps(c) for c in spec.capabilities)
            path.write_text(
                f"[capabilities]\n{json.dumps(spec.specialization)} = [{caps}]\n", "utf-8"
            )
            argv += ["--capabilities-file", str(path)]
        return [*argv, "--", spec.ai_id, spec.specialization]

    async def launch(self, spec: LaunchSpec, token: str) -> Launched:
        """Start the trainer of a :meth:`reserve`\\ d id with ``token``. Raises OSError if the
        process cannot start (the reservation is released either way)."""
        workdir = Path(tempfile.mkdtemp(prefix=f"kernal-trainer-{os.getpid()}-"))
        try:
            command = self.command_for(spec, workdir)
            # The child gets none of the hub's KERNAL_* settings (its admin and read tokens
            # above all), only its own token.
            env = {k: v for k, v in os.environ.items() if not k.startswith("KERNAL_")}
            env["KERNAL_TOKEN"] = token
            env["PYTHONUNBUFFERED"] = "1"  # lines reach the ring as they are printed
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=workdir,
            )
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        finally:
            self.release(spec.ai_id)
        launched = Launched(spec, command, process, time.time(), workdir=workdir)
        self._launched[spec.ai_id] = launched
        launched.watcher = asyncio.create_task(self._watch(launched))
        log.info("%s launched: pid %d, engine %s", spec.ai_id, process.pid, spec.engine)
        return launched

    async def _watch(self, launched: Launched) -> None:
        """Read the child's output into its ring until it closes, then record the exit."""
        process = launched.process
        assert process.stdout is not None
        try:
            while True:
                try:
                    raw = await process.stdout.readline()
                except ValueError:  # a line past the stream's limit: take what is buffered
                    raw = await process.stdout.read(64 * 1024)
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                if len(line) > LINE_CHARS:
                    line = f"{line[:LINE_CHARS]}… ({len(line) - LINE_CHARS} more characters)"
                launched.logs.append(line)
                launched.lines_seen += 1
            code = await process.wait()
        finally:
            launched.exit_code = process.returncode
            launched.exited_at = time.time()
            launched.done.set()
            if launched.workdir is not None:
                shutil.rmtree(launched.workdir, ignore_errors=True)
        how = "stopped" if launched.stopping else "exited by itself"
        launched.logs.append(f"[kernal] trainer {how}, exit code {code}")
        log.info("%s %s: pid %d, exit code %d", launched.ai_id, how, launched.pid, code)

    async def stop(self, ai_id: str) -> Launched | None:
        """Stop ``ai_id``'s trainer (SIGTERM, SIGKILL after the grace period) and forget it.
        Returns it (with its exit code), or None if it was not launched."""
        launched = self._launched.get(ai_id)
        if launched is None:
            return None
        await self._terminate(launched)
        self._launched.pop(ai_id, None)
        return launched

    async def _terminate(self, launched: Launched) -> None:
        launched.stopping = True
        if not launched.done.is_set():
            with contextlib.suppress(ProcessLookupError):
                launched.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(launched.done.wait(), self.grace)
            except TimeoutError:
                log.warning("%s ignored SIGTERM for %.0f s; killing it", launched.ai_id, self.grace)
                with contextlib.suppress(ProcessLookupError):
                    launched.process.kill()
                await launched.done.wait()
        if launched.watcher is not None:
            await launched.watcher

    async def stop_all(self) -> list[Launched]:
        """Stop every trainer at once (the hub is stopping); returns those that were listed."""
        launched = list(self._launched.values())
        await asyncio.gather(*(self._terminate(t) for t in launched))
        self._launched.clear()
        return launched
