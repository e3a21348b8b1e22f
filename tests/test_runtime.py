"""The process helpers of kernal.runtime: the collector's settings while serving."""

from __future__ import annotations

import gc

import pytest

from kernal import runtime


def test_long_lived_freezes_what_exists_and_restores_the_collector() -> None:
    before = gc.get_threshold()
    built = [object() for _ in range(10)]  # what a hub or worker made while starting
    with runtime.long_lived():
        assert gc.get_freeze_count() >= len(built)
        assert gc.get_threshold()[0] == runtime.YOUNG_OBJECTS
        assert gc.get_threshold()[1:] == before[1:]
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_long_lived_restores_the_collector_when_serving_fails() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), runtime.long_lived():
        raise RuntimeError("the hub failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
