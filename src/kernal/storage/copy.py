"""Moving a hub's database: every row of every table from one database to another.

The tables are those of :data:`kernal.storage.schema.metadata`, discovered from it rather than
listed here, so a table added by a future migration is copied without touching this module.
Both sides must be at the schema of this kernal (the head migration): the source is read with
that schema, and the destination is migrated to it before anything is written.

The copy is one transaction on the destination (a failure writes no row; the schema, created
or upgraded first by the migrations, stays) and one read transaction on the source (a
consistent snapshot; writes made after it began are not copied).
Rows move in batches of ``batch_size``, keeping their keys, so ids that other rows or users
refer to stay valid; on PostgreSQL the sequences behind integer ids are moved past the copied
ones so that the next insert does not collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from kernal.storage import engine as db
from kernal.storage.schema import metadata

__all__ = [
    "DEFAULT_BATCH",
    "CopyError",
    "TableCount",
    "copy_database",
    "row_counts",
]

DEFAULT_BATCH: Final = 1000


class CopyError(Exception):
    """A copy that cannot be done as asked; the message says why and what to do."""


@dataclass(frozen=True)
class TableCount:
    """How many rows one table holds (or received)."""

    table: str
    rows: int


def tables() -> list[sa.Table]:
    """The hub's tables, parents before children (the order rows can be inserted in)."""
    return list(metadata.sorted_tables)


def row_counts(conn: Connection) -> list[TableCount]:
    """The rows of each of the hub's tables, in :func:`tables` order."""
    return [
        TableCount(table.name, conn.execute(sa.select(sa.func.count()).select_from(table)).one()[0])
        for table in tables()
    ]


def copy_database(
    source: Engine,
    destination: Engine,
    *,
    force: bool = False,
    batch_size: int = DEFAULT_BATCH,
    on_table: Callable[[TableCount], None] | None = None,
) -> list[TableCount]:
    """Copy every row of every table of ``source`` into ``destination``; return the counts.

    ``destination`` is first migrated to the head revision (created if new). It must hold no
    rows in the hub's tables unless ``force``, which deletes them in the copy's transaction.
    ``on_table`` is called as each table is done. Raises :class:`CopyError` for a source that is
    not at this kernal's schema, a non-empty destination without ``force``, or rows the
    destination refuses (then no row is written, nor deleted by ``force``).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    _check_source(source)
    _check_destination(destination)
    db.migrate(destination)
    copied: list[TableCount] = []
    with source.connect() as src, db.connect_for_writing(destination) as dst:
        if src.dialect.name == "postgresql":
            # One snapshot for every table: rows written meanwhile are all in or all out.
            # (SQLite's read transaction is such a snapshot already, in WAL mode.)
            src.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with src.begin(), dst.begin():
            _clear_or_refuse(dst, force=force)
            for table in tables():
                count = TableCount(table.name, _copy_table(src, dst, table, batch_size))
                copied.append(count)
                if on_table is not None:
                    on_table(count)
            if dst.dialect.name == "postgresql":
                _advance_sequences(dst)
    return copied


def _check_source(source: Engine) -> None:
    head = db.head_revision()
    with source.connect() as conn:
        current = db.current_revision(conn)
        known = set(sa.inspect(conn).get_table_names())
    if current == head:
        return
    if current is None and not known & {table.name for table in tables()}:
        raise CopyError("the source holds no hub tables: check SRC (a hub creates them at start)")
    raise CopyError(
        f"the source is at schema revision {current or '(none: a prototype database)'}, this "
        f"kernal's is {head}: upgrade it first with `kernal db migrate --db SRC`, then copy"
    )


def _check_destination(destination: Engine) -> None:
    with destination.connect() as conn:
        current = db.current_revision(conn)
    if db.pending_revisions(current) is None:
        raise CopyError(
            f"the destination is at schema revision {current}, which this kernal does not know "
            "(a newer kernal upgraded it): copy with that version, or into another database"
        )


def _clear_or_refuse(dst: Connection, *, force: bool) -> None:
    filled = [count for count in row_counts(dst) if count.rows]
    if not filled:
        return
    if not force:
        listed = ", ".join(f"{count.table}: {count.rows} rows" for count in filled)
        raise CopyError(
            f"the destination already holds data ({listed}): copy into an empty database, "
            "or pass --force to replace its rows"
        )
    for table in reversed(tables()):  # children first, should a foreign key ever appear
        dst.execute(table.delete())


def _copy_table(src: Connection, dst: Connection, table: sa.Table, batch_size: int) -> int:
    copied = 0
    for batch in _batches(src, table, batch_size):
        try:
            dst.execute(table.insert(), batch)
        except sa.exc.DBAPIError as exc:
            raise CopyError(
                f"the destination refused a row of {table.name} (after {copied} copied): "
                f"{_first_line(exc)}. Nothing was written; fix or delete that row in the "
                "source and copy again"
            ) from exc
        copied += len(batch)
    return copied


def _batches(src: Connection, table: sa.Table, batch_size: int) -> Iterator[list[dict[str, Any]]]:
    # Key order: deterministic, and each batch is a range of the primary key's index.
    query = sa.select(table).order_by(*table.primary_key.columns)
    result = src.execution_options(yield_per=batch_size).execute(query)
    for partition in result.mappings().partitions():
        yield [dict(row) for row in partition]


def _advance_sequences(dst: Connection) -> None:
    # Explicit ids do not move a SERIAL's sequence: without this, the hub's next insert would
    # reuse id 1 and fail. (SQLite moves its counters itself.)
    for table in tables():
        column = table.autoincrement_column
        if column is None:
            continue
        dst.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence(:table, :column), "
                f"COALESCE((SELECT MAX({_quoted(dst, column.name)}) "
                f"FROM {_quoted(dst, table.name)}), 0) + 1, false)"
            ),
            {"table": table.name, "column": column.name},
        )


def _quoted(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _first_line(exc: sa.exc.DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
