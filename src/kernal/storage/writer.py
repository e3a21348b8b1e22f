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
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

__all__ = ["Batchable", "WriteQueue", "runs_within"]

T = TypeVar("T")

LINGER_SECONDS = 0.002
"""How long a batch smaller than the load's usual batch waits for more writes (see
:meth:`WriteQueue._wait_for_more`): a fraction of one commit of many rows."""
USUAL_DECAY = 0.9  # per commit: how fast the usual batch size forgets a larger load

Outcome = tuple[bool, Any]  # (True, result) or (False, the exception the caller gets)


@dataclass(frozen=True, slots=True)
class Batchable:
    """A job the writer may run together with the jobs next to it that have the same ``key``:
    ``run_many(conn, payloads)`` does all of them at once (one statement for many rows) and
    returns one outcome per payload. An outcome that is an exception must have written nothing
    (the others are kept); if ``run_many`` itself raises, every job of the batch is rerun on
    its own."""

    key: Hashable
    payload: Any
    run_many: Callable[[Connection, list[Any]], list[Outcome]]
    many: bool = False
    """``payload`` is a list of payloads, done together as if submitted one by one: the job's
    result is the list of their outcomes (see :meth:`WriteQueue.submit_many`)."""

    @property
    def size(self) -> int:
        return len(self.payload) if self.many else 1


@dataclass(slots=True)
class _Job(Generic[T]):
    fn: Callable[[Connection], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    batch: Batchable | None = None
    size: int = 1  # writes it holds, counted against max_batch

    def resolve(self, ok: bool, value: Any) -> None:
        """Resolve the future (on its loop; its caller may have been cancelled)."""
        if self.future.done():
            return
        if ok:
            self.future.set_result(value)
        else:
            self.future.set_exception(value)


def _settle(jobs: list[_Job[Any]], outcomes: list[Outcome]) -> None:
    """Resolve the futures of ``jobs`` from the writer thread: one wake-up of each loop for
    the whole batch, not one per job."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Job[Any], Outcome]]] = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        by_loop.setdefault(job.loop, []).append((job, outcome))

    def resolve_all(pairs: list[tuple[_Job[Any], Outcome]]) -> None:
        for job, (ok, value) in pairs:
            job.resolve(ok, value)

    for loop, pairs in by_loop.items():
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
            loop.call_soon_threadsafe(resolve_all, pairs)


class WriteQueue:
    """Runs write jobs in one thread, at most ``max_batch`` per transaction.

    Lifecycle: :meth:`start` once, :meth:`submit` any number of times, :meth:`close` once (later
    calls are no-ops). :meth:`submit` and :meth:`close` must be called from event loop threads;
    the jobs run in the writer thread and must not touch the loop.
    """

    def __init__(
        self,
        *,
        max_batch: int = 1024,
        thread_name: str = "kernal-store-writer",
        linger: float = LINGER_SECONDS,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be positive")
        if linger < 0:
            raise ValueError("linger must not be negative")
        self.max_batch = max_batch
        self.linger = linger
        """Seconds a batch smaller than the load's usual batch may wait for more (0: never)."""
        self._usual = 0.0  # writes per batch lately, the larger ones weighing most
        self.lingering = 0
        """Writes the writer holds while it waits for more (see :meth:`_wait_for_more`)."""
        self.thread_name = thread_name
        self.batches_committed = 0
        """Write transactions committed so far (each holds one or more jobs)."""
        # Lists of jobs, one per turn of a submitting loop (None: stop after draining). Handing
        # over once per turn, not once per job, keeps the writer from waking (and fighting the
        # loop for the GIL) for every single write.
        self._jobs: queue.Queue[list[_Job[Any]] | None] = queue.Queue()
        self._outgoing: dict[asyncio.AbstractEventLoop, list[_Job[Any]]] = {}
        self._queued = 0  # submitted and not taken by the writer yet (approximate)
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
        """How many writes are queued and not yet taken by the writer (approximate; a job of
        :meth:`submit_many` counts its payloads)."""
        return self._queued

    async def submit(self, fn: Callable[[Connection], T], *, batch: Batchable | None = None) -> T:
        """Run ``fn`` in the writer thread; return its result once its transaction committed.
        With ``batch``, the writer may run it together with its neighbours instead (see
        :class:`Batchable`); ``fn`` must then do alone what ``batch`` does for it.

        Raises what ``fn`` raised (its changes undone), or the error of the commit (nothing of
        its batch stored), or :class:`RuntimeError` if the queue is not running. Cancelling the
        caller does not withdraw a job already submitted: it may still be committed.
        """
        future: asyncio.Future[T] = self._queue(fn, batch, 1)
        return await future

    async def submit_many(
        self,
        fn: Callable[[Connection], list[Outcome]],
        batch: Batchable,
    ) -> list[Outcome]:
        """Many writes of one kind as one job, with one future: ``batch.payload`` is their list
        (``batch.many`` set), and the writer runs them with their neighbours of the same key as
        if each had been submitted alone. Returns one outcome per payload, ``(True, result)``
        or ``(False, exception)``, once their transaction committed. ``fn`` does alone what
        ``batch`` does, each payload in its own savepoint (the writer's fallback when a
        neighbour fails). Raises as :meth:`submit` for the batch as a whole (commit failed,
        queue not running)."""
        if not batch.many:
            raise ValueError("submit_many needs a Batchable with many=True")
        if not batch.payload:
            return []
        future: asyncio.Future[list[Outcome]] = self._queue(fn, batch, len(batch.payload))
        return await future

    def _queue(self, fn: Callable[[Connection], T], batch: Batchable | None, size: int) -> Any:
        if self._thread is None or self._closed:
            # After close() the sentinel is queued: a job put behind it would never run.
            raise RuntimeError("the write queue is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        outgoing = self._outgoing.get(loop)
        if outgoing is None:
            outgoing = self._outgoing[loop] = []
            loop.call_soon(self._hand_over, loop)
        outgoing.append(_Job(fn, future, loop, batch, size))
        self._queued += size
        return future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """Give the writer what ``loop`` submitted during this turn, in order."""
        jobs = self._outgoing.pop(loop, None)
        if jobs:
            self._jobs.put(jobs)

    async def close(self) -> None:
        """Commit every job already submitted, then stop the writer thread. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            for loop in list(self._outgoing):
                self._hand_over(loop)  # submitted before close(): committed, not dropped
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join)

    def _run(self, connect: Callable[[], Connection]) -> None:
        waiting: list[_Job[Any]] = []  # taken from the queue, beyond the last batch's size
        stopping = False
        while waiting or not stopping:
            if not waiting:
                jobs = self._jobs.get()
                if jobs is None:
                    return
                waiting = jobs
            while _writes(waiting) < self.max_batch and not stopping:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                else:
                    waiting.extend(more)
            if not stopping and _writes(waiting) < min(self._usual, self.max_batch):
                stopping = self._wait_for_more(waiting)
            cut = _cut(waiting, self.max_batch)
            batch, waiting = waiting[:cut], waiting[cut:]
            writes = _writes(batch)
            self._queued -= writes
            # The usual batch follows a larger one at once and forgets it slowly: a connection
            # that stops sending costs a few lingering commits, not one per share.
            self._usual = max(float(writes), self._usual * USUAL_DECAY)
            self._commit_batch(connect, batch)

    def _wait_for_more(self, waiting: list[_Job[Any]]) -> bool:
        """Group commit sized by load: under load (batches of many writes lately) a smaller
        batch waits up to :attr:`linger` seconds for the writes that usually come with it,
        instead of paying a commit (an fsync, and the pages every commit rewrites) for a few.
        A light load never waits: its usual batch is the one write it has. True if the
        queue is closing."""
        deadline = time.monotonic() + self.linger
        try:
            while (held := _writes(waiting)) < min(self._usual, self.max_batch):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.lingering = held
                try:
                    more = self._jobs.get(timeout=remaining)
                except queue.Empty:
                    return False
                if more is None:
                    return True
                waiting.extend(more)
            return False
        finally:
            self.lingering = 0

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
        _settle(batch, results)

    @staticmethod
    def _attempt(
        connect: Callable[[], Connection], batch: list[_Job[Any]], *, isolate: bool
    ) -> list[Outcome]:
        results: list[Outcome] = []
        with connect() as conn, conn.begin():
            if isolate:
                for job in batch:
                    try:
                        with conn.begin_nested():
                            results.append((True, job.fn(conn)))
                    except Exception as exc:
                        results.append((False, exc))
                return results
            start = 0
            while start < len(batch):
                end = _run_end(batch, start)
                try:
                    first = batch[start].batch
                    if first is not None:
                        _run_together(conn, first, batch[start:end], results)
                    else:
                        results.append((True, batch[start].fn(conn)))
                except Exception as exc:
                    raise _JobFailed from exc
                start = end
        return results

    @staticmethod
    def _settle_all(batch: list[_Job[Any]], exc: Exception) -> None:
        _settle(batch, [(False, exc)] * len(batch))


def runs_within(sizes: Sequence[int], budget: int) -> list[slice]:
    """Cut items of ``sizes`` bytes, in order, into consecutive runs of at most ``budget`` bytes
    each (an item larger than ``budget`` is a run of its own): the slices, covering them all.

    A caller submits one run, awaits its commit, then the next: so one client's megabytes are
    committed a run at a time, and the other connections' small writes commit between its
    runs instead of waiting behind all of them (each commit is an fsync of what it holds)."""
    runs: list[slice] = []
    start = total = 0
    for n, size in enumerate(sizes):
        if n > start and total + size > budget:
            runs.append(slice(start, n))
            start, total = n, 0
        total += size
    if start < len(sizes):
        runs.append(slice(start, len(sizes)))
    return runs


def _writes(jobs: list[_Job[Any]]) -> int:
    return sum(job.size for job in jobs)


def _cut(jobs: list[_Job[Any]], max_batch: int) -> int:
    """How many of ``jobs`` (at least one) go in the next transaction: as many as hold at most
    ``max_batch`` writes."""
    total = 0
    for n, job in enumerate(jobs):
        total += job.size
        if total > max_batch:
            return max(n, 1)
    return len(jobs)


def _run_together(
    conn: Connection, first: Batchable, jobs: list[_Job[Any]], results: list[Outcome]
) -> None:
    """Run the batchable ``jobs`` (of ``first``'s key) in one ``run_many`` call; append one
    outcome per job (a ``many`` job's is ``(True, its payloads' outcomes)``)."""
    payloads: list[Any] = []
    for job in jobs:
        assert job.batch is not None
        if job.batch.many:
            payloads.extend(job.batch.payload)
        else:
            payloads.append(job.batch.payload)
    outcomes = first.run_many(conn, payloads)
    if len(outcomes) != len(payloads):
        raise RuntimeError(f"run_many returned {len(outcomes)} outcomes for {len(payloads)}")
    at = 0
    for job in jobs:
        assert job.batch is not None
        if job.batch.many:
            results.append((True, outcomes[at : at + job.size]))
        else:
            results.append(outcomes[at])
        at += job.size


def _run_end(batch: list[_Job[Any]], start: int) -> int:
    """End of the run of jobs from ``start`` that can be done in one call: the batchable jobs
    with the same key as ``batch[start]``'s, or just that job."""
    first = batch[start].batch
    end = start + 1
    if first is None:
        return end
    while end < len(batch) and (other := batch[end].batch) is not None and other.key == first.key:
        end += 1
    return end


class _JobFailed(Exception):
    """A job raised during an optimistic (savepoint-free) attempt; the batch must be isolated."""
