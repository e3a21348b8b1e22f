"""The harness across processes: the hub in one, trainers in workers. A trainer that fails says
why, in its report and counted in the summary, whether the hub refused it, nothing listened,
or its worker died."""

from __future__ import annotations

import asyncio
import multiprocessing
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from kernal.config import TrainerSettings
from kernal.harness.crew import Member
from kernal.harness.processes import (
    Channel,
    ChannelClosed,
    Connection,
    LogForwarder,
    Process,
    reap,
    start_with,
)
from kernal.harness.report import summarize
from kernal.harness.runner import RunOptions, run_scenario
from kernal.harness.scenarios import SCENARIOS
from kernal.harness.workers import WorkerPool, deal, worker_main
from kernal.hub.server import Hub
from kernal.trainer.trainer import Trainer
from tests.conftest import HubFactory

SIMULATED = RunOptions(engine="simulated")


def _settings(ai_id: str, token: str) -> TrainerSettings:
    # Scenario time at real speed: a trainer stopped early has not shared everything yet.
    return TrainerSettings(
        ai_id=ai_id, specialization="networking", token=token, engine="simulated"
    )


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 60.0) -> None:
    """Poll ``check`` until it is true (the timeout only stops a broken test from hanging)."""
    deadline = time.monotonic() + timeout
    while not await _value(check()):
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _value(result: Awaitable[bool] | bool) -> bool:
    return result if isinstance(result, bool) else await result


async def test_trainers_in_worker_processes_report_each_trainer_and_a_summary() -> None:
    report = await run_scenario(
        SCENARIOS["stress_test"], speed=50, trainers=5, options=SIMULATED, workers=2
    )
    assert report["workers"] == 2
    assert report["summary"] == {
        "trainers": 5,
        "succeeded": 5,
        "failed": 0,
        "never_connected": 0,
        "errors": {},
    }
    assert list(report["trainers"]) == [f"AI_Stress_{n:03d}" for n in range(5)]  # specs' order
    for entry in report["trainers"].values():
        assert entry["success"]
        assert entry["results"]["connected"] and entry["results"]["patterns_shared"] == 3
    # Read from the hub process over HTTP, and its collaborations from the database.
    assert report["final_stats"]["connected_ais"] == 5
    assert report["final_stats"]["collaborations_completed"] >= 1
    # Each worker measured its loop over the whole run: 2.4 s at speed 50, 50 ms a wake-up.
    assert len(report["loop_lag"]) == 2
    for lag in report["loop_lag"]:
        assert lag["samples"] >= 10 and 0 <= lag["p50"] <= lag["p99"] <= lag["max"]


async def test_a_killed_worker_fails_its_trainers_with_the_reason() -> None:
    async def kill_worker_2() -> int:
        while True:
            for child in multiprocessing.active_children():
                if child.name == "kernal-harness-worker-2" and child.pid is not None:
                    child.kill()
                    return child.pid
            await asyncio.sleep(0.01)

    killer = asyncio.create_task(kill_worker_2())
    report = await run_scenario(
        SCENARIOS["stress_test"], speed=50, trainers=4, options=SIMULATED, workers=2
    )
    pid = await killer
    reason = f"worker 2 (pid {pid}) exited with code -9 before it reported"
    # Dealt round-robin: worker 2 had the second and fourth trainers.
    for n, entry in enumerate(report["trainers"].values()):
        if n % 2:
            assert not entry["success"]
            assert entry["results"]["error"] == reason
        else:
            assert entry["success"], entry["results"]
    summary = report["summary"]
    assert (summary["succeeded"], summary["failed"], summary["never_connected"]) == (2, 2, 2)
    assert summary["errors"] == {reason: 2}  # one line for identical failures


async def test_a_child_that_dies_before_reading_its_job_is_not_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A job far past a pipe's 64 KiB buffer, for a child that dies at once. multiprocessing
    itself blocks for good on such a child when the job travels with the process object: what
    a main module failing to import in every child did to a whole run."""
    job = [Member(_settings(f"AI_{n}", "t")) for n in range(5000)]
    with LogForwarder() as logs:  # its queue starts the resource tracker with a sound env
        monkeypatch.setenv("PYTHONHOME", "/nonexistent")  # the child cannot even start Python
        # In a daemon thread: were the parent blocked again, the test fails, not the suite.
        loop = asyncio.get_running_loop()
        started: asyncio.Future[tuple[Process, Connection]] = loop.create_future()

        def start() -> None:
            result = start_with(worker_main, job, logs, name="kernal-test-doomed")
            loop.call_soon_threadsafe(started.set_result, result)

        threading.Thread(target=start, daemon=True).start()
        process, conn = await asyncio.wait_for(started, 60)
        monkeypatch.delenv("PYTHONHOME")
        channel = Channel(conn)
        with pytest.raises(ChannelClosed):
            await asyncio.wait_for(channel.recv(), 60)
        await reap(process, 30)
        channel.close()
    assert process.exitcode not in (0, None)


async def test_a_refused_trainer_says_so_in_its_report(make_hub: HubFactory) -> None:
    hub = await make_hub(speed=100)  # demo tokens: AI_Node_N / secretN
    members = [
        Member(_settings("AI_Node_1", "wrong")),
        Member(_settings("AI_Node_2", "not this either")),
        Member(_settings("AI_Node_3", "secret3")),
    ]
    stop = asyncio.Event()
    with LogForwarder() as logs:
        pool = WorkerPool(deal(members, 1), logs)
        try:
            await pool.start(hub.address, stop)
            pool.begin(time.time())
            # Refused trainers are reported before the end; the third one is connected.
            await eventually(lambda: pool.failures() == 2)
            await eventually(lambda: _connected(hub, 1))
            reports = {r.ai_id: r for r in await pool.stop()}
        finally:
            await pool.close()
    refused = "auth refused: invalid token for <ai_id>"
    for ai_id in ("AI_Node_1", "AI_Node_2"):
        error = reports[ai_id].error or ""
        assert error.startswith(refused.replace("<ai_id>", ai_id)), error
    assert reports["AI_Node_1"].auth_error is not None
    assert reports["AI_Node_3"].connected and reports["AI_Node_3"].error is not None
    assert reports["AI_Node_3"].error.startswith("shared ")  # stopped before it shared it all
    summary = summarize(list(reports.values()))
    (grouped,) = [reason for reason in summary["errors"] if reason.startswith(refused)]
    assert summary["errors"][grouped] == 2
    assert (summary["failed"], summary["never_connected"]) == (3, 2)


async def test_a_trainer_with_no_hub_to_reach_says_why() -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = replace(_settings("AI_Node_1", "secret1"), hub_port=port)
    trainer = Trainer(settings)
    run = asyncio.create_task(trainer.run())
    await eventually(lambda: trainer.client.last_error is not None)  # it retries, with backoff
    trainer.stop()
    report = await run
    assert not report.connected and not report.succeeded
    assert report.error is not None
    assert report.error.startswith("never connected: connect: [Errno 111]"), report.error
    assert report.results()["error"] == report.error


async def _connected(hub: Hub, count: int) -> bool:
    return (await hub.status()).connected_ais == count
