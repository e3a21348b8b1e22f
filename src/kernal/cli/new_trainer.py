"""``kernal new-trainer PATH``: a personal, hackable trainer file that joins the shared hub."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Annotated

import typer

from kernal.cli.common import fail


def new_trainer(
    path: Annotated[Path, typer.Argument(help="Where to write it, e.g. ~/my_trainer.py.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a small, commented trainer file to edit: your engine, the reference trainer."""
    target = path.expanduser()
    if target.exists() and not force:
        raise fail(f"{target} exists; choose another path or add --force")
    template = files("kernal.templates").joinpath("my_trainer.py").read_text(encoding="utf-8")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(template, encoding="utf-8")
    target.chmod(0o755)
    typer.echo(f"wrote {target}: edit MyEngine, then run")
    typer.echo(f"  python3 {target} AI_Node_1 networking secret1 --hub 127.0.0.1:6000")
