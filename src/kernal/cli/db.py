"""``kernal db status|migrate|copy``: the hub's database, looked after without a hub running.

A hub migrates its database itself when it starts; these commands are for operators: see where
a database stands, upgrade it ahead of a rollout, and move a hub from its SQLite file to
PostgreSQL (or between any two databases). See docs/deploy.md.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from kernal.cli.common import DbOption, fail, typer_app
from kernal.config import DEFAULT_DB

if TYPE_CHECKING:
    from sqlalchemy import Engine

db_app = typer_app("Inspect, upgrade and copy the hub's database.")


@db_app.command("status")
def db_status(db: DbOption = DEFAULT_DB) -> None:
    """Print the database's schema revision, this kernal's, and the rows in each table."""
    from kernal.storage import engine as sql
    from kernal.storage.copy import row_counts

    with _engine(db, must_exist=True) as engine, engine.connect() as conn:
        current = sql.current_revision(conn)
        pending = sql.pending_revisions(current)
        typer.echo(f"database: {_describe(engine)}")
        typer.echo(f"revision: {current or '(none)'}")
        typer.echo(f"head:     {sql.head_revision()}")
        if pending is None:
            typer.echo("state:    newer than this kernal: upgrade kernal before serving it")
            return
        if pending:
            typer.echo(
                f"state:    {len(pending)} migration(s) to run ({', '.join(pending)}): "
                "`kernal db migrate` or starting a hub runs them"
            )
            return
        typer.echo("state:    up to date")
        for count in row_counts(conn):
            typer.echo(f"  {count.table:<24}{count.rows:>10}")


@db_app.command("migrate")
def db_migrate(db: DbOption = DEFAULT_DB) -> None:
    """Upgrade the database to this kernal's schema, in place, in one transaction.

    A hub does the same when it starts; run this to upgrade ahead of a rollout (several hubs on
    one PostgreSQL database) or to check that an upgrade goes through. Safe to run twice."""
    from kernal.storage import engine as sql

    with _engine(db, must_exist=True) as engine:
        with engine.connect() as conn:
            before = sql.current_revision(conn)
        pending = sql.pending_revisions(before)
        if pending is None:
            raise fail(
                f"{_describe(engine)} is at revision {before}, which this kernal does not know "
                "(a newer kernal upgraded it): install that version instead"
            )
        if not pending:
            typer.echo(f"{_describe(engine)} is up to date at revision {before}")
            return
        try:
            sql.migrate(engine)
        except Exception as exc:
            raise fail(
                f"the upgrade of {_describe(engine)} failed and was rolled back: {exc}"
            ) from None
        with engine.connect() as conn:
            after = sql.current_revision(conn)
    typer.echo(f"{_describe(engine)}: upgraded {before or '(none)'} -> {after}")
    for revision in pending:
        typer.echo(f"  ran {revision}")


@db_app.command("copy")
def db_copy(
    source: Annotated[str, typer.Argument(help="SQLite file or database URL to copy from.")],
    destination: Annotated[str, typer.Argument(help="SQLite file or database URL to copy to.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace the rows a non-empty destination holds.")
    ] = False,
    batch: Annotated[int, typer.Option(min=1, help="Rows per insert.")] = 1000,
) -> None:
    """Copy every row of every table from SOURCE to DESTINATION, keeping ids.

    DESTINATION is created or upgraded to this kernal's schema first and must be empty unless
    --force. The rows move in one transaction: if it fails, none is written. Stop the
    hub on SOURCE first: rows it writes after the copy began are not copied."""
    import sqlalchemy as sa

    from kernal.storage.copy import CopyError, TableCount, copy_database

    def report(count: TableCount) -> None:
        typer.echo(f"  {count.table:<24}{count.rows:>10}")

    started = time.monotonic()
    with _engine(source, must_exist=True) as src, _engine(destination) as dst:
        if _identity(src) == _identity(dst):
            raise fail("SOURCE and DESTINATION are the same database: name two different ones")
        typer.secho(f"copying {_describe(src)} -> {_describe(dst)}", err=True)
        try:
            counts = copy_database(src, dst, force=force, batch_size=batch, on_table=report)
        except CopyError as exc:
            raise fail(str(exc)) from None
        except sa.exc.DBAPIError as exc:  # a lock held too long, the server gone, ...
            first_line = (str(exc.orig or exc).strip().splitlines() or ["?"])[0]
            raise fail(
                f"the copy failed and wrote no row to {_describe(dst)}: {first_line}. "
                "Check that no hub is using it, then copy again"
            ) from None
    total = sum(count.rows for count in counts)
    elapsed = time.monotonic() - started
    typer.secho(f"copied {total} rows in {len(counts)} tables in {elapsed:.1f} s", err=True)


@contextlib.contextmanager
def _engine(url_or_path: str, *, must_exist: bool = False) -> Iterator[Engine]:
    """An engine configured as the hub's store configures it, disposed on exit; a clear error
    (exit 2) for a bad target, a missing SQLite file (when ``must_exist``) or no server."""
    import sqlalchemy as sa

    from kernal.hub.server import describe_store_error
    from kernal.storage import engine as sql

    try:
        url, schema = sql.resolve_target(url_or_path, None)
    except ValueError as exc:
        raise fail(f"{url_or_path}: {exc}") from None
    if must_exist and url.get_backend_name() == "sqlite":
        assert url.database is not None
        if not Path(url.database).is_file():
            raise fail(f"no database at {url.database}: check the path (or --db / KERNAL_DB)")
    engine = sql.create_engine(url, schema)
    try:
        try:
            with engine.connect():
                pass
        except sa.exc.DBAPIError as exc:
            raise fail(describe_store_error(_describe(engine), exc)) from None
        yield engine
    finally:
        engine.dispose()


def _identity(engine: Engine) -> tuple[str, ...]:
    """What makes two engines the same database: a SQLite file's real path, or the server,
    database and ``search_path`` schema of PostgreSQL."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return ("sqlite", str(Path(url.database or "").resolve()))
    schema = engine.dialect.default_schema_name or ""
    return ("postgresql", str(url.host), str(url.port or 5432), str(url.database), schema)


def _describe(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
