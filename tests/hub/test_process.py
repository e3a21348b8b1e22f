"""The hub as users run it: a separate process. An ACKed share survives SIGKILL; Ctrl+C shuts
down cleanly with no traceback and an intact database."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(rb"Hub listening for trainers on ([\d.]+):(\d+)")


class HubProcess:
    def __init__(self, proc: asyncio.subprocess.Process, port: int, log: bytearray) -> None:
        self.proc = proc
        self.port = port
        self.log = log

    async def drain_log(self) -> bytes:
        assert self.proc.stderr is not None
        self.log += await self.proc.stderr.read()
        return bytes(self.log)


async def start_hub_process(
    tmp_path: Path, *extra: str, env: dict[str, str] | None = None
) -> HubProcess:
    """``python3 kernal.py hub`` on free ports with ``extra`` flags, once it says it listens."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "kernal.py"),
        "hub",
        "--port",
        "0",
        "--dashboard-port",
        "0",
        "--db",
        str(tmp_path / "hub_data.db"),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        env=None if env is None else {**os.environ, **env},
    )
    assert proc.stderr is not None
    log = bytearray()
    # Started as a user sees it: trainers' port and the dashboard both up.
    while not (match := LISTENING.search(log)) or b"Dashboard on" not in log:
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert line, f"hub exited early:\n{log.decode()}"
        log += line
    return HubProcess(proc, int(match.group(2)), log)


async def stop_hub_process(hub: HubProcess) -> None:
    if hub.proc.returncode is None:
        hub.proc.kill()
        await hub.proc.wait()


@pytest.fixture
async def hub_process(tmp_path: Path) -> AsyncIterator[HubProcess]:
    hub = await start_hub_process(tmp_path)
    yield hub
    await stop_hub_process(hub)


async def _share(port: int, count: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b'{"ai_id": "AI_Node_1", "token": "secret1"}\n')
    writer.write(b'{"type": "HELLO", "specialization": "networking"}\n')
    for n in range(count):
        frame = {"type": "PATTERN_SHARE", "pattern_id": f"p{n}", "pattern_data": {"n": n}}
        writer.write(json.dumps(frame).encode() + b"\n")
    await writer.drain()
    acks = 0
    while acks < count:
        reply = json.loads(await asyncio.wait_for(reader.readline(), 10))
        acks += reply["type"] == "ACK"
    writer.close()
    await writer.wait_closed()


async def test_acked_shares_survive_kill(hub_process: HubProcess, tmp_path: Path) -> None:
    await _share(hub_process.port, 25)
    hub_process.proc.send_signal(signal.SIGKILL)
    await hub_process.proc.wait()
    with sqlite3.connect(tmp_path / "hub_data.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT COUNT(*) FROM shared_patterns").fetchone() == (25,)


async def test_ctrl_c_shuts_down_cleanly(hub_process: HubProcess, tmp_path: Path) -> None:
    await _share(hub_process.port, 3)
    hub_process.proc.send_signal(signal.SIGINT)
    code = await asyncio.wait_for(hub_process.proc.wait(), 15)
    log = (await hub_process.drain_log()).decode()
    assert code == 130
    assert "Traceback" not in log
    assert "Hub stopped" in log
    with sqlite3.connect(tmp_path / "hub_data.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT COUNT(*) FROM shared_patterns").fetchone() == (3,)


async def test_hub_logs_read_like_the_original(hub_process: HubProcess) -> None:
    await _share(hub_process.port, 1)
    hub_process.proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(hub_process.proc.wait(), 15)
    log = (await hub_process.drain_log()).decode()
    assert re.search(r"\[\+\] AI Trainer authenticated: AI_Node_1 @ \('127\.0\.0\.1', \d+\)", log)
    assert "AI AI_Node_1 joined: specialization=networking, capabilities=[]" in log
    assert "Pattern p0 shared by AI_Node_1" in log
    assert "Demo tokens are active" in log
    assert "Dashboard on http://127.0.0.1:" in log


async def test_port_in_use_is_a_clear_error(hub_process: HubProcess, tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "kernal.py"),
        "hub",
        "--port",
        str(hub_process.port),
        "--dashboard-port",
        "0",
        "--db",
        str(tmp_path / "other.db"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"cannot listen" in err and b"Traceback" not in err


async def _run_launcher(*args: str, cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "kernal.py"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )


async def test_trainer_command_against_hub_process(hub_process: HubProcess, tmp_path: Path) -> None:
    trainer = await _run_launcher(
        "trainer",
        "AI_Node_1",
        "networking",
        "secret1",
        "--hub",
        f"127.0.0.1:{hub_process.port}",
        "--speed",
        "50",
        "--duration",
        "60",
        cwd=tmp_path,
    )
    out, err = await asyncio.wait_for(trainer.communicate(), 60)
    assert trainer.returncode == 0, err.decode()
    results = json.loads(out)
    assert (results["patterns_shared"], results["components_shared"]) == (3, 2)
    log = err.decode()
    assert f"[AI_Node_1] Connected to hub at 127.0.0.1:{hub_process.port}" in log
    assert "[AI_Node_1] Shared pattern AI_Node_1_pattern_" in log
    assert "[AI_Node_1] Shared component AI_Node_1_networking_module_" in log


async def test_trainer_with_wrong_token_exits_with_the_reason(
    hub_process: HubProcess, tmp_path: Path
) -> None:
    trainer = await _run_launcher(
        "trainer",
        "AI_Node_1",
        "networking",
        "nope",
        "--hub",
        f"127.0.0.1:{hub_process.port}",
        cwd=tmp_path,
    )
    _, err = await asyncio.wait_for(trainer.communicate(), 30)
    assert trainer.returncode == 2
    assert b"invalid token" in err and b"Traceback" not in err


@pytest.mark.parametrize("command", ["trainer", "harness"])
async def test_ctrl_c_stops_trainer_and_harness_cleanly(
    hub_process: HubProcess, tmp_path: Path, command: str
) -> None:
    args = (
        ["trainer", "AI_Node_2", "graphics", "secret2", "--hub", f"127.0.0.1:{hub_process.port}"]
        if command == "trainer"
        else ["harness", "basic"]
    )
    proc = await _run_launcher(*args, cwd=tmp_path)
    await asyncio.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err.decode()
    assert b"Traceback" not in err


async def test_log_json_emits_one_object_per_line(tmp_path: Path) -> None:
    proc = await _run_launcher(
        "hub",
        "--port",
        "0",
        "--dashboard-port",
        "-1",
        "--db",
        str(tmp_path / "h.db"),
        "--log-json",
        cwd=tmp_path,
    )
    assert proc.stderr is not None
    lines = []
    while not any("Hub listening" in line.get("message", "") for line in lines):
        raw = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert raw, "hub exited"
        lines.append(json.loads(raw))
    proc.send_signal(signal.SIGINT)
    await proc.wait()
    assert all({"ts", "level", "logger", "message"} <= set(line) for line in lines)


async def test_limits_set_on_the_command_line_hold(tmp_path: Path) -> None:
    # --limit reaches the hub's own rules: one connection per address, and a FEEDBACK burst
    # of 1 (the second of two FEEDBACK is told to slow down).
    limits = ["max-connections-per-address=1", "rate_feedback=1", "rate_feedback_burst=1"]
    hub = await start_hub_process(tmp_path, *(f"--limit={limit}" for limit in limits))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", hub.port)
        writer.write(b'{"ai_id": "AI_Node_1", "token": "secret1"}\n')
        writer.write(b'{"type": "HELLO", "specialization": "networking"}\n')
        share = {"type": "OS_COMPONENT_SHARE", "component_id": "c", "component_data": {}}
        writer.write(json.dumps(share).encode() + b"\n")
        second_reader, second = await asyncio.open_connection("127.0.0.1", hub.port)
        refusal = json.loads(await asyncio.wait_for(second_reader.readline(), 10))
        assert refusal["type"] == "ERROR" and "too many connections" in refusal["error"]
        second.close()
        # Its own component: refused (forbidden), but each FEEDBACK is paced before any check.
        feedback = {"type": "FEEDBACK", "kind": "component", "id": "c", "score": 1.0}
        writer.write((json.dumps(feedback).encode() + b"\n") * 2)
        seen: list[dict[str, object]] = []
        while not any(f.get("code") == "rate_limited" for f in seen):
            seen.append(json.loads(await asyncio.wait_for(reader.readline(), 10)))
        writer.close()
    finally:
        await stop_hub_process(hub)


def test_a_bad_limit_is_refused_with_what_to_write(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kernal.cli import app

    for bad, said in [
        ("rate_bytes", "expected NAME=VALUE"),
        ("no_such=1", "the limits are:"),
        ("max_connections=ten", "needs an integer"),
        ("abuse_seconds=x", "needs a number"),
        ("rate_bytes=-1", "0 or more"),
        ("presence_limit=0", "1 or more"),
    ]:
        result = CliRunner().invoke(
            app, ["hub", "--port", "0", "--db", str(tmp_path / "h.db"), "--limit", bad]
        )
        assert result.exit_code == 2, result.output
        assert said in result.output, result.output
    # Without --limit, KERNAL_LIMITS gives them, space-separated.
    result = CliRunner().invoke(
        app,
        ["hub", "--port", "0", "--db", str(tmp_path / "h.db")],
        env={"KERNAL_LIMITS": "rate_bytes=10 presence_limit=0"},
    )
    assert result.exit_code == 2 and "presence_limit must be 1 or more" in result.output


def test_ctrl_c_during_start_up_stops_a_trainer_started_with_sigint_ignored(
    tmp_path: Path,
) -> None:
    """A background job of a script, or a test runner's worker, starts its children with
    SIGINT ignored: a Ctrl+C during the trainer's start-up must still stop it."""
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "kernal.py"), "trainer", "AI_Node_1", "networking", "x"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    import time

    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err.decode()
    assert b"Traceback" not in err
