"""What the harness's child processes (the hub, the trainer workers) have in common: how they are
started, how they talk to the parent, where their logs go.

Children are started with the ``spawn`` context (a fresh interpreter: no inherited event loop,
threads or sockets). They ignore SIGINT: Ctrl+C in a terminal reaches the whole process group,
and the parent, not each child on its own, decides how a run stops. A child also stops when
its pipe to the parent closes, so a parent that was killed leaves nothing running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import logging.handlers
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import multiprocessing.queues
import os
import resource
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

CONTEXT = multiprocessing.get_context("spawn")
Process = multiprocessing.context.SpawnProcess
Connection = multiprocessing.connection.Connection
LogQueue = multiprocessing.queues.Queue  # of logging.LogRecord


def pipe() -> tuple[Connection, Connection]:
    """Both ends of a duplex pipe: one for the parent, one to hand to a child."""
    return CONTEXT.Pipe(duplex=True)


class ChannelClosed(Exception):
    """The process at the other end of a :class:`Channel` is gone (it exited or was killed)."""


class Channel:
    """Messages over a ``multiprocessing`` pipe, awaited in an event loop. The pipe is watched
    with ``add_reader``, so waiting costs no thread and can be cancelled."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        self._closed = False
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(conn.fileno(), self._readable)
        # uvloop makes a watched fd non-blocking; the pipe's whole-message reads and writes
        # need it blocking (a large send would fail half-way with EAGAIN).
        os.set_blocking(conn.fileno(), True)

    def _readable(self) -> None:
        # Messages are read whole (length-prefixed), so one readable event is one message; a
        # pipe holding more stays readable and calls us again.
        try:
            self._inbox.put_nowait(self._conn.recv())
        except (EOFError, OSError):
            self._stop_reading()
            self._inbox.put_nowait(_EOF)

    def _stop_reading(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self._conn.fileno())

    async def recv(self) -> Any:
        """The next message; raises :class:`ChannelClosed` once the other end has closed."""
        message = await self._inbox.get()
        if message is _EOF:
            self._inbox.put_nowait(_EOF)  # every later recv() fails the same way
            raise ChannelClosed("the pipe closed")
        return message

    def send(self, message: Any) -> None:
        """Send ``message`` (picklable). A peer that is gone is ignored (it has nothing to
        hear); the caller learns of it from :meth:`recv`."""
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._conn.send(message)

    def close(self) -> None:
        self._stop_reading()
        self._conn.close()


_EOF = object()


def raise_open_files_limit() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: every trainer and every hub connection is a
    socket, and the common soft default (1024) is below what a stress test opens."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


@contextlib.contextmanager
def children_ignore_sigint() -> Iterator[None]:
    """While starting children: SIGINT ignored, a disposition they inherit (and that Python
    keeps at startup), so a Ctrl+C while they import cannot kill them with a traceback. The
    parent's own handler is put back at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def start_child(target: Any, *args: Any, name: str) -> Process:
    """Start ``target(*args)`` in a spawned daemon process (so it cannot outlive a parent that
    exits normally) that ignores SIGINT."""
    process = CONTEXT.Process(target=target, args=args, name=name, daemon=True)
    with children_ignore_sigint():
        process.start()
    return process


def spawn(
    main: Callable[[Any, Connection], None], arg: Any, logs: LogForwarder, *, name: str
) -> tuple[Process, Channel]:
    """Start ``main(arg, conn)`` in a harness child (:func:`start_child`, set up by
    :func:`child_setup` to send its logs to ``logs``), ``conn`` its end of a new pipe; return
    the process and the parent's end as a :class:`Channel` (so: call it in the event loop)."""
    process, parent = start_with(main, arg, logs, name=name)
    return process, Channel(parent)


def start_with(
    main: Callable[[Any, Connection], None], arg: Any, logs: LogForwarder, *, name: str
) -> tuple[Process, Connection]:
    """:func:`spawn` without the :class:`Channel`: the process and the parent's end of the pipe.

    ``arg`` (a worker's trainers: a megabyte for 500) goes over that pipe, not with the
    process object. multiprocessing writes the process object to the child while it still
    holds the pipe's other end itself, so past the pipe's 64 KiB buffer a child that dies
    before reading it all (a main module that fails to import) left the parent blocked in
    ``Process.start`` for good: a harness that never ended. Here the parent holds only its own
    end, so such a write fails with a broken pipe and the child's exit is reported."""
    parent, child = pipe()
    process = start_child(_child_main, main, child, logs.queue, logs.level, name=name)
    child.close()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        parent.send(arg)  # the child gone: its Channel sees the end of the pipe
    return process, parent


def _child_main(
    main: Callable[[Any, Connection], None],
    conn: Connection,
    queue: LogQueue[logging.LogRecord],
    level: int,
) -> None:
    child_setup(queue, level)
    main(conn.recv(), conn)


async def reap(process: Process, timeout: float) -> None:
    """Wait up to ``timeout`` real seconds for ``process`` to exit, then kill it."""
    await asyncio.to_thread(process.join, timeout)
    if process.is_alive():
        process.kill()
        await asyncio.to_thread(process.join, 5)


class LogForwarder:
    """Children's log records, handled by this process's logging as if they were its own: one
    stream, formatted once (``--log-json`` included), and kept above the progress bar."""

    def __init__(self) -> None:
        self.queue: LogQueue[logging.LogRecord] = CONTEXT.Queue()
        self.level = logging.getLogger().getEffectiveLevel()
        self._listener = logging.handlers.QueueListener(self.queue, _ToLocalLoggers())

    def __enter__(self) -> LogForwarder:
        self._listener.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.stop()  # handles what is queued, then stops
        self.queue.close()
        self.queue.join_thread()


class _ToLocalLoggers(logging.Handler):
    """A QueueListener handler: each record goes to the logger of its name here."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger(record.name).handle(record)


def forward_logs(queue: LogQueue[logging.LogRecord], level: int) -> None:
    """In a child: every log record at ``level`` or above goes to the parent through ``queue``."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(logging.handlers.QueueHandler(queue))
    root.setLevel(level)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def child_setup(queue: LogQueue[logging.LogRecord], level: int) -> None:
    """What every harness child does first."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_open_files_limit()
    forward_logs(queue, level)
