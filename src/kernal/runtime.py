"""The process a hub or trainer runs in: its event loop, its tasks and its open-file limit."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import resource
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

log = logging.getLogger("kernal")
T = TypeVar("T")

WANTED_OPEN_FILES = 65_536  # a connection per trainer, 10,000 trainers and room to spare

YOUNG_OBJECTS = 50_000
"""The collector's first threshold while :func:`long_lived` is in force (Python's default:
700)."""


def loop_factory(name: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop to run on: ``uvloop`` (faster transports and callbacks) when installed
    and ``name`` is ``auto`` or ``uvloop``; asyncio's own for ``asyncio``. Raises ValueError
    for ``uvloop`` when it is not installed, or an unknown name."""
    if name not in ("auto", "uvloop", "asyncio"):
        raise ValueError(f"unknown event loop {name!r}: expected auto, uvloop or asyncio")
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            raise ValueError(
                "--loop uvloop: uvloop is not installed (pip install uvloop)"
            ) from None
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run(main: Coroutine[Any, Any, T], *, loop: str = "auto") -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks, with :func:`one_blas_thread`
    in force."""
    with one_blas_thread(), asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(main)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Let numpy's BLAS (OpenBLAS, MKL) use one thread in this process until the block ends.

    A trainer's matrices are small (an MLP's stamped trigger scan: about 3,000 x 40 x 64), and
    a process runs many trainers, training in threads beside an event loop. BLAS's own threads
    then cost more in waking and spinning than they save, on cores the other trainers and the
    loop need. Measured on `kernal harness learning --speed 50 --data waves` (MLP, 2 cores):
    33.6 s of user CPU with OpenBLAS's default threads, 28.9 s with one; collaborations per
    trainer 23.6 -> 46.8, and the loop no longer fell behind the clock. Restored when the
    block ends."""
    import numpy  # noqa: F401  (threadpoolctl limits the BLAS libraries loaded so far)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """Tune the garbage collector for a process that has finished starting and now serves (a
    hub, or a worker's hundreds of trainers), until the block ends.

    Everything made so far (modules, models, a schema, trainers and their data) lives as long
    as the process: frozen out of the collector's sight, a full collection walks only what
    serving makes, instead of hundreds of thousands of objects that never die. And a young
    generation large enough that what is in flight (shares until their commit, frames until
    they are handled) does not set off a collection every few hundred allocations: those die by
    reference count. Measured on 1,000 simulated trainers in two workers (`kernal harness
    stress_test --engine simulated --trainers 1000 --speed 5`), the workers' collections took
    7.4 and 9.0 s of a 34 s run with Python's defaults, 1.8 and 1.5 s with these, and the
    trainers' loop lag p99 fell from 0.65 s to 0.2 s. Undone when the block ends: a caller in
    the same process (a test) keeps its own."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(YOUNG_OBJECTS, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def raise_open_file_limit(wanted: int = WANTED_OPEN_FILES) -> int:
    """Raise this process' soft limit of open files towards ``wanted`` (as far as the hard
    limit allows); returns the limit in force. Logs when it stays below ``wanted``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("Could not raise the open-file limit from %d: %s", soft, exc)
    if soft < wanted:
        log.info(
            "Open-file limit %d: at most about %d connections (raise it with `ulimit -n`)",
            soft,
            soft - 64,
        )
    return soft


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (None: nothing to do) and wait until it has finished; its
    ``CancelledError`` ends here, any other exception it ends with is raised."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
