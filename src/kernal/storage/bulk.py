"""Many rows in few statements: the INSERTs of the store's write jobs that carry a run of shares.

On SQLite, ``executemany`` steps its statement once per row, and Python's driver lets go of the
GIL around every step: with the event loop busy in the same process, each row then waits for the
loop to hand the GIL back (a context switch or two a row, and the commit it belongs to waits for
all of them). One multi-row ``INSERT ... VALUES (...), (...)`` steps once for the lot (up to
:data:`MAX_ROWS` rows a statement). SQLite prepares such a statement in about 0.1 us a row, so
a statement of exactly the run's length costs less than cutting the run into cached sizes.

PostgreSQL keeps ``executemany`` (psycopg pipelines it: one round trip for the lot).

:func:`select_in` is the lookup that goes with such a run (which of these ids are taken), as
plain SQL too: built by SQLAlchemy, its expanding ``IN`` cost the writer about as much as the
insert (py-spy, a batch of 160 shares: 13% of the batch each).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

__all__ = ["MAX_ROWS", "insert_many", "select_in"]

MAX_ROWS = 1024
"""Rows of one multi-row statement: the store's largest batch (SQLite allows 32,766 parameters
in one statement)."""


def insert_many(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    *,
    suffix: str = "",
) -> None:
    """``INSERT INTO table (columns) VALUES ... suffix`` for every row of ``rows`` (tuples in
    the order of ``columns``, of values the driver takes as they are): on SQLite in multi-row
    statements, elsewhere in one ``executemany``. ``suffix``: e.g. an ``ON CONFLICT`` clause.
    ``table``, ``columns`` and ``suffix`` are SQL as written, never user input."""
    if not rows:
        return
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    if conn.dialect.name != "sqlite":
        conn.exec_driver_sql(_statement(table, columns, suffix, mark, 1), list(rows))
        return
    start = 0
    while start < len(rows):
        n = min(MAX_ROWS, len(rows) - start)
        flat = tuple(value for row in rows[start : start + n] for value in row)
        conn.exec_driver_sql(_statement(table, columns, suffix, mark, n), flat)
        start += n


def select_in(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    key: str,
    values: Sequence[Any],
) -> list[tuple[Any, ...]]:
    """The rows (``columns``, in order) of ``table`` whose ``key`` is one of ``values``: on
    SQLite ``IN (?, ...)`` of up to :data:`MAX_ROWS` values a statement, on PostgreSQL one
    ``= ANY(%s)`` of an array. ``table``, ``columns`` and ``key`` are SQL as written, never user
    input."""
    head = f"SELECT {', '.join(columns)} FROM {table} WHERE {key}"
    if not values:
        return []
    if conn.dialect.name != "sqlite":
        return [tuple(row) for row in conn.exec_driver_sql(head + " = ANY(%s)", (list(values),))]
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(values), MAX_ROWS):
        part = tuple(values[start : start + MAX_ROWS])
        sql = f"{head} IN ({', '.join(['?'] * len(part))})"
        found += [tuple(row) for row in conn.exec_driver_sql(sql, part)]
    return found


def _statement(table: str, columns: Sequence[str], suffix: str, mark: str, n: int) -> str:
    key = (table, tuple(columns), suffix, mark)
    parts = _PARTS.get(key)
    if parts is None:
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        parts = _PARTS[key] = (head, "(" + ", ".join([mark] * len(columns)) + ")")
    head, one = parts
    sql = head + ", ".join([one] * n)
    return sql + " " + suffix if suffix else sql


# Per (table, columns, suffix, parameter mark): the statement's head and one row's marks.
_PARTS: dict[tuple[str, tuple[str, ...], str, str], tuple[str, str]] = {}
