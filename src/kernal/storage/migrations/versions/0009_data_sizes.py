"""The size of each item's data, and listing indexes that never read the data.

Revision ID: 0009_data_sizes
Revises: 0008_refused_merges
Create Date: 2026-12-01

A page of the API lists items with their data only when it is short, and gives every item's
``data_size``. Measuring the size read the whole value of every row listed, and so did reading
any column stored after the data (SQLite follows a row's overflow pages to reach them): a page
of 500 components of 500 KB read 250 MB to send 100 KB.

* ``data_sizes`` holds the byte length (UTF-8) of each item's data as the hub stored it, one row
  per ``(kind, item_id)``, filled here from the rows already stored. A table beside the items',
  not a column in them: the prototype's tables keep their exact definition (as in 0004). An
  item without a row there (written by something other than the hub) is measured as before.
* ``ix_shared_patterns_timestamp`` and ``ix_shared_components_timestamp`` (0002) become
  ``ix_shared_patterns_listing`` and ``ix_shared_components_listing``: the same sort key, time
  then id, followed by every other column a listing shows but the data, so a listing reads
  the index and goes to the row only for the data it sends. The old ones are dropped: they
  are prefixes of the new ones, and SQLite would keep choosing them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_data_sizes"
down_revision: str | None = "0008_refused_merges"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (kind, table, id column, data column, the columns of its listing index): self-contained.
_ITEMS = [
    (
        "pattern",
        "shared_patterns",
        "pattern_id",
        "pattern_data",
        ["timestamp", "pattern_id", "contributor", "usage_count"],
    ),
    (
        "component",
        "shared_components",
        "component_id",
        "component_data",
        ["timestamp", "component_id", "contributor", "quality_score", "usage_count"],
    ),
]


def upgrade() -> None:
    op.create_table(
        "data_sizes",
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("item_id", sa.Text, primary_key=True),
        sa.Column("data_size", sa.Integer, nullable=False),
    )
    postgresql = op.get_bind().dialect.name == "postgresql"
    for kind, table, key, data, columns in _ITEMS:
        size = f"octet_length({data})" if postgresql else f"length(CAST({data} AS BLOB))"
        # An adopted prototype table may hold NULL ids or data: those rows get no size.
        op.execute(
            f"INSERT INTO data_sizes (kind, item_id, data_size) SELECT '{kind}', {key}, {size} "
            f"FROM {table} WHERE {key} IS NOT NULL AND {data} IS NOT NULL"
        )
        op.create_index(f"ix_{table}_listing", table, columns)
        op.drop_index(f"ix_{table}_timestamp", table_name=table)


def downgrade() -> None:
    for _kind, table, key, _data, _columns in reversed(_ITEMS):
        op.create_index(f"ix_{table}_timestamp", table, ["timestamp", key])
        op.drop_index(f"ix_{table}_listing", table_name=table)
    op.drop_table("data_sizes")
