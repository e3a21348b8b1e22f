"""The size of each item's data, kept beside the items (``data_sizes``, migration 0008), and the
listing query that uses it.

A listing shows an item's data only when it is short, and every item's ``data_size``. With the
size stored, and every other listed column in the items' listing index, SQLite reads a row
only for the data it sends: a page of 500 components of 500 KB costs about a millisecond of
reading instead of 250 MB (SQLite follows a row's overflow pages to reach any column after a
long value, and measures a TEXT value by reading it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection

from kernal.storage import bulk
from kernal.storage import schema as t
from kernal.storage.records import ItemKind

if TYPE_CHECKING:
    from kernal.storage.rows import ItemTable


def data_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (its length for ASCII text: nothing is copied to count)."""
    return len(text) if text.isascii() else len(text.encode())


def record(conn: Connection, kind: ItemKind, items: Iterable[tuple[str, str]]) -> None:
    """Write the sizes of items just inserted, given as ``(item id, data text)``; a size left by
    an item of the same id deleted behind the hub's back is replaced."""
    rows = [(kind.value, item_id, data_size(text)) for item_id, text in items]
    if not rows:
        return
    # Plain SQL, run by the driver: through SQLAlchemy's upsert construct this second statement
    # of every share's commit cost about 0.7 ms of CPU, more than the share's own insert.
    bulk.insert_many(
        conn,
        "data_sizes",
        ("kind", "item_id", "data_size"),
        rows,
        suffix="ON CONFLICT (kind, item_id) DO UPDATE SET data_size = excluded.data_size",
    )


def byte_length(column: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[int]:
    """Bytes of a text column's UTF-8 value, 0 for NULL, measured from the value (for items
    without a stored size). SQLite's length() of TEXT counts characters, decoding the whole
    value; of the same value as a BLOB it is a byte count, more than twice as fast (SQLite 3.40
    has no octet_length)."""
    if dialect == "postgresql":
        measured: sa.ColumnElement[int] = sa.func.octet_length(column)
    else:
        measured = sa.func.length(sa.cast(column, sa.LargeBinary))
    return sa.func.coalesce(measured, 0)


def listing(spec: ItemTable[Any], dialect: str, max_data: int) -> sa.Select[Any]:
    """SELECT every column of ``spec``'s items, the data only where its size is at most
    ``max_data`` (NULL otherwise), and the size as ``data_size``; no WHERE, no ORDER BY."""
    table = spec.table
    data = table.c[spec.data_column]
    s = t.data_sizes.c
    joined = table.outerjoin(
        t.data_sizes, sa.and_(s.kind == spec.kind.value, s.item_id == spec.key)
    )
    # COALESCE stops at the stored size: the data is measured only when there is none.
    size = sa.func.coalesce(s.data_size, byte_length(data, dialect))
    shown = sa.case((size <= max(max_data, 0), data), else_=sa.null())
    others = [column for column in table.c if column.name != spec.data_column]
    return sa.select(*others, shown.label(spec.data_column), size.label("data_size")).select_from(
        joined
    )
