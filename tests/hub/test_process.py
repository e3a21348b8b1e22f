"""The hub as users run it: a separate process. An ACKed share survives SIGKILL; Ctrl+C shuts
down cleanly with no traceback and an intact database."""

from __future__ import annotations

import asyncio
import json
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


@pytest.fixture
async def hub_process(tmp_path: Path) -> AsyncIterator[HubProcess]:
    db = tmp_path / "hub_data.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "kernal.py"),
        "hub",
        "--port",
        "0",
        "--dashboard-port",
        "0",
        "--db",
        str(db),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
    )
    assert proc.stderr is not None
    log = bytearray()
    while not (match := LISTENING.search(log)):
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert line, f"hub exited early:\n{log.decode()}"
        log += line
    yield HubProcess(proc, int(match.group(2)), log)
    if proc.returncode is None:
        proc.kill()
        await proc.wait()


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
