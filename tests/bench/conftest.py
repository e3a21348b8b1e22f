"""The bench pins itself and its servers to cores; run from the tests, it must leave the
pytest process as it found it, or every test after it (and every hub, trainer and browser
they start) would share one core."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def cores_left_as_they_were() -> Iterator[None]:
    before = os.sched_getaffinity(0)
    yield
    after = os.sched_getaffinity(0)
    os.sched_setaffinity(0, before)  # so one leak fails one test, not the suite's speed
    assert after == before, f"the bench left this process pinned to {sorted(after)}"
