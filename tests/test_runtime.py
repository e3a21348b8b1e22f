"""kernal.runtime's process helpers: the collector while serving, one BLAS thread."""

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


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [int(lib["num_threads"]) for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_one_blas_thread_inside_the_block_and_restored_after() -> None:
    import numpy  # noqa: F401  (numpy's BLAS is loaded, as in any trainer)

    before = _blas_threads()
    assert before  # numpy brings a BLAS that threadpoolctl sees
    with runtime.one_blas_thread():
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before


def test_every_process_served_by_runtime_run_has_one_blas_thread() -> None:
    async def inside() -> list[int]:
        return _blas_threads()

    assert set(runtime.run(inside())) == {1}
