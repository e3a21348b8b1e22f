"""``kernal harness`` as people run it in a terminal: a progress bar on stderr while it runs, and
Ctrl+C (or SIGTERM) writes the report so far (stdout and ``--out``) instead of nothing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("to_group", [True, False], ids=["ctrl-c", "sigterm"])
async def test_interrupting_writes_the_partial_report(tmp_path: Path, to_group: bool) -> None:
    out = tmp_path / "report.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "kernal.py"),
        "harness",
        "stress_test",
        "--engine",
        "simulated",
        "--trainers",
        "4",
        "--workers",
        "2",
        "--progress",  # stderr is a pipe here, not a terminal
        "--out",
        str(out),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=tmp_path,
        start_new_session=True,  # its own process group, as a terminal gives a command
    )
    assert proc.stderr is not None
    shown = b""
    while b"connected 4/4" not in shown:  # the bar, once the hub has every trainer
        chunk = await asyncio.wait_for(proc.stderr.read(4096), 60)
        assert chunk, f"harness exited early:\n{shown.decode(errors='replace')}"
        shown += chunk
    if to_group:  # Ctrl+C in a terminal: the whole group, hub and workers too, not just us
        os.killpg(proc.pid, signal.SIGINT)
    else:  # `kill PID`, a service manager stopping it
        proc.send_signal(signal.SIGTERM)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    log = (shown + stderr).decode(errors="replace")
    assert proc.returncode == 130, log
    assert "Traceback" not in log
    assert "scenario s" in log  # the bar's scenario time

    report = json.loads(stdout)  # stdout is the report alone, the bar went to stderr
    assert report == json.loads(out.read_text())
    assert report["interrupted"] is True
    assert report["duration"] < report["scenario_duration"]  # at speed 1: long before its end
    assert report["summary"]["trainers"] == 4
    assert report["summary"]["never_connected"] == 0
    # The hub and the workers ignored the group's SIGINT and wound down when told to.
    assert report["final_stats"]["connected_ais"] == 4
    for entry in report["trainers"].values():
        results = entry["results"]
        assert results["connected"]
        assert not entry["success"]
        assert results["error"].startswith("shared "), results["error"]
