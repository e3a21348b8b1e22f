"""The harness's measure of whether the machine kept up with ``--speed``: how late a trainer
process' event loop wakes up, and the warning when that costs trainers scenario time."""

from __future__ import annotations

import asyncio
import time

from kernal.harness.lag import LagMeter, fell_behind, lag_figures


async def test_a_blocked_loop_is_measured_late() -> None:
    meter = LagMeter(tick=0.01)
    meter.start()
    await asyncio.sleep(0.05)  # a few prompt wake-ups first
    time.sleep(0.3)  # the loop is busy: nothing wakes up meanwhile  # noqa: ASYNC251
    await asyncio.sleep(0.05)
    await meter.stop()
    figures = meter.figures()
    assert figures["samples"] >= 3
    assert figures["max"] >= 0.25  # the wake-up due during the block came when it ended
    assert figures["p50"] < 0.25  # the others did not
    assert figures["samples"] == len(meter.lateness)


def test_figures_of_no_wake_ups_are_zero() -> None:
    assert lag_figures([]) == {"samples": 0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    assert lag_figures([0.3, 0.1, 0.2])["p50"] == 0.2


def test_falling_behind_is_judged_in_scenario_seconds() -> None:
    late = {"samples": 100, "p50": 0.01, "p99": 1.5, "max": 2.5}
    prompt = {"samples": 100, "p50": 0.001, "p99": 0.004, "max": 0.02}
    warning = fell_behind([prompt, late], speed=5)  # 1.5 s is 7.5 scenario seconds at 5x
    assert warning is not None and "1.50 s late" in warning and "--speed 5" in warning
    assert fell_behind([late], speed=2) is None  # 3 scenario seconds: it kept up
    assert fell_behind([prompt], speed=2000) is None  # 8 scenario seconds, but only 4 ms
    assert fell_behind([], speed=5) is None
