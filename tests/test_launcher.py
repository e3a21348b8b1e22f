"""The launcher's supervision on real child processes: the ring of output lines and its bounds,
the exit status, the token in the environment, SIGKILL for a child that ignores SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from kernal.launcher import LINE_CHARS, LOG_LINES, Launcher, LaunchRefused, LaunchSpec


class ScriptLauncher(Launcher):
    """A launcher whose child runs ``script`` (Python, or an argv) instead of a trainer: the
    same supervision."""

    def __init__(self, script: str | list[str], **kwargs: Any) -> None:
        super().__init__("127.0.0.1:1", **kwargs)
        self.argv = [sys.executable, "-c", script] if isinstance(script, str) else script

    def command_for(self, spec: LaunchSpec, workdir: Path) -> list[str]:
        return self.argv


async def test_the_ring_keeps_the_newest_lines_and_cuts_long_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KERNAL_ADMIN_TOKEN", "must-not-leak")
    script = (
        "import os\n"
        f"for i in range({LOG_LINES + 500}): print('line', i)\n"
        f"print('x' * {LINE_CHARS * 3})\n"
        "print('token', os.environ['KERNAL_TOKEN'] == 'sekrit',"
        " 'KERNAL_ADMIN_TOKEN' in os.environ)\n"
        "raise SystemExit(3)\n"
    )
    launcher = ScriptLauncher(script)
    launcher.reserve("AI_Script")
    launched = await launcher.launch(LaunchSpec("AI_Script", "networking"), "sekrit")
    await launched.done.wait()
    assert launched.watcher is not None
    await launched.watcher
    lines = list(launched.logs)
    assert len(lines) == LOG_LINES
    assert launched.lines_seen == LOG_LINES + 502
    assert "line 0" not in lines and lines[0].startswith("line ")
    long_line = lines[-3]
    assert long_line.startswith("x" * LINE_CHARS) and long_line.endswith("more characters)")
    assert lines[-2] == "token True False"
    assert lines[-1] == "[kernal] trainer exited by itself, exit code 3"
    assert launched.state == "exited" and launched.exit_code == 3
    assert launched.workdir is not None and not launched.workdir.exists()


async def test_a_child_that_ignores_sigterm_is_killed() -> None:
    # An ignored signal stays ignored across exec; "ready" says the trap is set.
    argv = ["sh", "-c", "trap '' TERM; echo ready; exec sleep 600"]
    launcher = ScriptLauncher(argv, grace=0.2)
    launcher.reserve("AI_Stubborn")
    launched = await launcher.launch(LaunchSpec("AI_Stubborn", "networking"), "t")
    while not launched.logs:  # noqa: ASYNC110 (the ring has no event to wait on)
        await asyncio.sleep(0.01)
    stopped = await launcher.stop("AI_Stubborn")
    assert stopped is launched
    assert launched.exit_code == -signal.SIGKILL
    assert launched.logs[-1] == f"[kernal] trainer stopped, exit code {-signal.SIGKILL}"
    assert launcher.get("AI_Stubborn") is None and "AI_Stubborn" not in launcher


async def test_reservations_hold_the_limit_and_the_id() -> None:
    launcher = ScriptLauncher("pass", limit=2)
    launcher.reserve("AI_A")
    with pytest.raises(LaunchRefused, match="already launched") as taken:
        launcher.reserve("AI_A")
    assert taken.value.conflict
    launcher.reserve("AI_B")
    with pytest.raises(LaunchRefused, match="--max-launched-trainers") as full:
        launcher.reserve("AI_C")
    assert not full.value.conflict
    launcher.release("AI_B")
    launcher.reserve("AI_C")
    assert "AI_A" in launcher and "AI_B" not in launcher


def test_the_command_puts_ids_after_a_double_dash_and_no_token(tmp_path: Path) -> None:
    launcher = Launcher("tls://127.0.0.1:6000", speed=50.0, ca="/etc/hub.pem")
    spec = LaunchSpec(
        "-AI_Dash",
        'net "x"',
        engine="learning",
        options={"split": "iid", "shard_size": 400},
        capabilities=["a", 'b"c'],
        seed=3,
    )
    argv = launcher.command_for(spec, tmp_path)
    assert argv[:4] == [sys.executable, "-m", "kernal", "trainer"]
    assert argv[-3:] == ["--", "-AI_Dash", 'net "x"']
    at = argv.index("--option")
    assert argv[at : at + 2] == ["--option", 'split="iid"']
    assert "shard_size=400" in argv and "--ca" in argv and "/etc/hub.pem" in argv
    caps = (tmp_path / "capabilities.toml").read_text()
    assert tomllib.loads(caps) == {"capabilities": {'net "x"': ["a", 'b"c']}}
