"""The ``kernal`` command: hub, demo, trainer, harness, token and database management,
new-trainer, mcp, report."""

from __future__ import annotations

import signal

# A process started with Ctrl+C ignored (a background job of a shell script, a test runner's
# worker) would ignore a SIGINT for all of its start-up, until the event loop installs its own
# handler, and then run on: a trainer was seen still running 30 s after one. Take Python's
# default now, before the slow imports, as the running command will anyway.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

from typing import Annotated

import typer

from kernal import __version__
from kernal.cli.common import typer_app
from kernal.cli.db import db_app
from kernal.cli.hub import demo, hub
from kernal.cli.mcp import mcp
from kernal.cli.new_trainer import new_trainer
from kernal.cli.report import report
from kernal.cli.tokens import token_app
from kernal.cli.trainers import harness, trainer

app = typer_app("kernal: a hub where AI trainers meet, share what they learn and collaborate.")
app.command()(hub)
app.command()(demo)
app.command()(trainer)
app.command()(harness)
app.add_typer(token_app, name="token")
app.add_typer(db_app, name="db")
app.command("new-trainer")(new_trainer)
app.command()(mcp)
app.command()(report)


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    try:
        app(prog_name="kernal")
    except KeyboardInterrupt:  # Ctrl+C before a command set up its own handling
        raise SystemExit(130) from None


__all__ = ["app", "main"]
