"""``kernal report DB --out report.html``: a self-contained HTML report of a past run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kernal.cli.common import fail, open_store
from kernal.config import DEFAULT_DB


def report(
    db: Annotated[str, typer.Argument(help="The run's SQLite file or database URL.")] = DEFAULT_DB,
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path(
        "report.html"
    ),
    png: Annotated[
        bool, typer.Option("--png/--no-png", help="PNG charts beside it (needs matplotlib).")
    ] = True,
) -> None:
    """Charts and tables of a past run from its database: stats history, AIs, top patterns and
    components, collaborations by status over time. PNGs beside it when matplotlib is there."""
    import asyncio

    if "://" not in db and not Path(db).exists():
        raise fail(f"no database at {db}: give the run's hub_data.db (or a database URL)")

    async def build() -> list[Path]:
        from kernal.reports import load_run, write_report

        store = await open_store(db)
        try:
            data = await load_run(store)
        finally:
            await store.close()
        return write_report(data, out, source=store.describe(), png=png)

    for path in asyncio.run(build()):
        typer.echo(f"wrote {path}")
