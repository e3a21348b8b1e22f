"""What every ``kernal`` command shares: option types, running until Ctrl+C, clear errors."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from kernal.storage import Store

T = TypeVar("T")

DbOption = Annotated[
    str, typer.Option("--db", envvar="KERNAL_DB", help="SQLite file or database URL.")
]
SpeedOption = Annotated[
    float, typer.Option("--speed", min=0.001, help="Run time-based behaviour K times faster.")
]
LogJsonOption = Annotated[bool, typer.Option("--log-json", help="Log JSON lines instead of text.")]
LogLevelOption = Annotated[str, typer.Option("--log-level", help="DEBUG, INFO, WARNING...")]
LoopOption = Annotated[
    str, typer.Option("--loop", help="Event loop: auto (uvloop if installed), uvloop, asyncio.")
]
EngineOption = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        "-o",
        metavar="KEY=VALUE",
        help="An option of the engine (repeatable); VALUE is JSON or text.",
    ),
]


def typer_app(help_text: str) -> typer.Typer:
    """A (sub)command group with the project's settings."""
    return typer.Typer(
        help=help_text,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # Plain help: typer's rich panels print a stray "<bool>" after every flag with this click.
        rich_markup_mode=None,
    )


def fail(message: str) -> typer.Exit:
    """Print ``error: message`` in red on stderr; raise the returned exit (status 2)."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def run_until_interrupted(main: Coroutine[Any, Any, T], *, loop: str = "auto") -> T:
    """Run ``main`` (on uvloop when installed, see :mod:`kernal.runtime`); Ctrl+C or SIGTERM
    cancel it (its ``finally`` blocks clean up) and exit 130."""
    from kernal import runtime

    async def runner() -> T:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        return await main

    try:
        return runtime.run(runner(), loop=loop)
    except (asyncio.CancelledError, KeyboardInterrupt):
        logging.getLogger("kernal").info("Interrupted; shut down cleanly")
        raise typer.Exit(130) from None


async def open_store(db: str) -> Store:
    """The opened store for a command that reads or writes one, or a clear error."""
    from kernal.hub.server import describe_store_error
    from kernal.serve import build_store

    store = build_store(db)
    try:
        await store.open()
    except Exception as exc:
        raise fail(describe_store_error(store.describe(), exc)) from None
    return store


def engine_options(
    engine: str, flags: Mapping[str, Any], pairs: list[str] | None
) -> dict[str, Any]:
    """The engine's options from its named flags (those given) and ``--option KEY=VALUE``
    pairs, checked by the engine's own options model, so a mistake fails before anything
    connects. Returns them as given (JSON-ready, for the trainer to parse again)."""
    from kernal.engines.base import load_engine

    options = {
        key: str(value) if isinstance(value, Path) else value for key, value in flags.items()
    }
    options = {key: value for key, value in options.items() if value is not None}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option {pair!r}: expected KEY=VALUE")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        options[key.strip().replace("-", "_")] = value
    load_engine(engine).parse_options(options)
    return options
