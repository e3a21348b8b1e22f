"""What ``kernal harness`` shows on stderr while a scenario runs: the dashboard's address if
asked, and a progress bar (scenario time, trainers connected, failures) for runs long enough
to need one. stdout stays the report's alone."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

MIN_SECONDS = 3.0  # real seconds: a shorter run is over before a bar would tell anything


class ProgressDisplay:
    """A :class:`~kernal.harness.runner.Watcher` for the command line. ``bar``: True shows the
    bar even when stderr is not a terminal, False never, None when stderr is a terminal; either
    way only for a run expected to take over :data:`MIN_SECONDS`. ``dashboard``: print the
    dashboard's URL when the run starts."""

    def __init__(self, *, bar: bool | None = None, dashboard: bool = False) -> None:
        self._bar = bar
        self._dashboard = dashboard
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._redirected: list[tuple[logging.StreamHandler[TextIO], TextIO]] = []

    def begin(
        self, *, scenario: str, duration: float, speed: float, trainers: int, dashboard: str | None
    ) -> bool:
        if self._dashboard and dashboard is not None:
            print(f"Dashboard: {dashboard}", file=sys.stderr, flush=True)
        wanted = self._bar if self._bar is not None else sys.stderr.isatty()
        if not wanted or duration / speed <= MIN_SECONDS:
            return False
        console = Console(stderr=True, force_terminal=True if self._bar else None)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:.0f}/{task.total:.0f} scenario s"),
            TextColumn("connected {task.fields[connected]}/{task.fields[trainers]}"),
            TextColumn("failed {task.fields[failed]}"),
            TimeElapsedColumn(),
            console=console,
            refresh_per_second=4,
            redirect_stdout=False,  # the report's
        )
        self._task = self._progress.add_task(
            scenario, total=duration, connected="-", trainers=trainers, failed=0
        )
        before = sys.stderr
        self._progress.start()
        # Log lines go above the bar (rich's stderr proxy) rather than through it.
        if sys.stderr is not before:
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is before:
                    self._redirected.append((handler, before))
                    handler.setStream(sys.stderr)
        return True

    def advance(self, *, scenario_seconds: float, connected: int | None, failed: int) -> None:
        if self._progress is None or self._task is None:
            return
        self._progress.update(
            self._task,
            completed=scenario_seconds,
            connected="-" if connected is None else connected,
            failed=failed,
        )

    def end(self) -> None:
        if self._progress is None:
            return
        self._progress.stop()
        self._progress = None
        for handler, stream in self._redirected:
            handler.setStream(stream)
        self._redirected.clear()
