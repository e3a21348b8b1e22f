"""The single writer of a store: a thread that group-commits the write jobs of an event loop.

A job is a function taking a :class:`~sqlalchemy.Connection`. :meth:`WriteQueue.submit` queues
it and waits; the writer thread takes every job queued (up to ``max_batch``) into ONE
transaction, runs each job in its own SAVEPOINT so that a job that raises undoes only its own
changes and gets its own exception, commits once, and only then resolves the waiting callers: a
submit returns exactly when its change is durable (group commit: one fsync for many writes). If
BEGIN or COMMIT fails, every job of the batch gets that error and nothing of the batch is stored.

Having one writer is also what makes the jobs' check-then-write logic race-free within a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

__all__ = ["WriteQueue"]

T = TypeVar("T")


@dataclass(slots=True)
class _Job(Generic[T]):
    fn: Callable[[Connection], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop

    def settle(self, ok: bool, value: Any) -> None:
        """Resolve the future from the writer thread (its caller may have been cancelled)."""

        def resolve() -> None:
            if self.future.done():
                return
            if ok:
                self.future.set_result(value)
            else:
                self.future.set_exception(value)

        with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(resolve)


class WriteQueue:
    """Runs write jobs in one thread, at most ``max_batch`` per transaction.

    Lifecycle: :meth:`start` once, :meth:`submit` any number of times, :meth:`close` once (later
    calls are no-ops). :meth:`submit` and :meth:`close` must be called from event loop threads;
    the jobs run in the writer thread and must not touch the loop.
    """

    def __init__(self, *, max_batch: int = 256, thread_name: str = "kernal-store-writer") -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be positive")
        self.max_batch = max_batch
        self.thread_name = thread_name
        self.batches_committed = 0
        """Write transactions committed so far (each holds one or more jobs)."""
        self._jobs: queue.Queue[_Job[Any] | None] = queue.Queue()  # None: stop after draining
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self, connect: Callable[[], Connection]) -> None:
        """Start the writer thread. ``connect`` opens the connection of each batch (see
        :func:`kernal.storage.engine.connect_for_writing`)."""
        if self._thread is not None or self._closed:
            raise RuntimeError("the write queue was already started or closed")
        # Daemon: a hub that exits without close() must not hang on this thread; writes that
        # were not acknowledged may then be lost, acknowledged ones are committed.
        self._thread = threading.Thread(
            target=self._run, args=(connect,), name=self.thread_name, daemon=True
        )
        self._thread.start()

    def pending(self) -> int:
        """How many jobs are queued and not yet taken by the writer (approximate)."""
        return self._jobs.qsize()

    async def submit(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in the writer thread; return its result once its transaction committed.

        Raises what ``fn`` raised (its changes undone), or the error of the commit (nothing of
        its batch stored), or :class:`RuntimeError` if the queue is not running. Cancelling the
        caller does not withdraw a job already submitted: it may still be committed.
        """
        if self._thread is None or self._closed:
            # After close() the sentinel is queued: a job put behind it would never run.
            raise RuntimeError("the write queue is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(fn, future, loop))
        return await future

    async def close(self) -> None:
        """Commit every job already submitted, then stop the writer thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join)

    def _run(self, connect: Callable[[], Connection]) -> None:
        stopping = False
        while not stopping:
            job = self._jobs.get()
            if job is None:
                return
            batch = [job]
            while len(batch) < self.max_batch:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            self._commit_batch(connect, batch)

    def _commit_batch(self, connect: Callable[[], Connection], batch: list[_Job[Any]]) -> None:
        # Optimistic first: one transaction, no savepoints (they cost two statements per job).
        # If a job raises, roll it all back and run the batch again with a savepoint per job,
        # so the failing job fails alone. Jobs only touch the database, so a rerun after the
        # rollback sees exactly what the first run saw.
        try:
            results = self._attempt(connect, batch, isolate=False)
        except _JobFailed:
            try:
                results = self._attempt(connect, batch, isolate=True)
            except Exception as exc:
                self._settle_all(batch, exc)
                return
        except Exception as exc:  # BEGIN or COMMIT failed: nothing of the batch is stored
            self._settle_all(batch, exc)
            return
        self.batches_committed += 1
        # Only now, after COMMIT: a caller must never see a result that could still be lost.
        for job, (ok, value) in zip(batch, results, strict=True):
            job.settle(ok, value)

    @staticmethod
    def _attempt(
        connect: Callable[[], Connection], batch: list[_Job[Any]], *, isolate: bool
    ) -> list[tuple[bool, Any]]:
        results: list[tuple[bool, Any]] = []
        with connect() as conn, conn.begin():
            for job in batch:
                if not isolate:
                    try:
                        results.append((True, job.fn(conn)))
                    except Exception as exc:
                        raise _JobFailed from exc
                    continue
                try:
                    with conn.begin_nested():
                        results.append((True, job.fn(conn)))
                except Exception as exc:
                    results.append((False, exc))
        return results

    @staticmethod
    def _settle_all(batch: list[_Job[Any]], exc: Exception) -> None:
        for job in batch:
            job.settle(False, exc)


class _JobFailed(Exception):
    """A job raised during an optimistic (savepoint-free) attempt; the batch must be isolated."""
