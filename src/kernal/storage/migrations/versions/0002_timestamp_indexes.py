"""Indexes for the newest-first queries.

Revision ID: 0002_timestamp_indexes
Revises: 0001_initial
Create Date: 2024-06-15

``recent_patterns``/``recent_components`` (``ORDER BY timestamp DESC, <id> DESC LIMIT n``) and
``list_collaborations`` (``ORDER BY started_at DESC, collaboration_id DESC LIMIT n``, optionally
``WHERE status = ?``) sorted the whole table on every call, and the hub makes the first two on
every HELLO. Each new index holds the full sort key, time then id, so SQLite and PostgreSQL both
read the newest ``n`` rows straight off the end of the index, with no sort step.

For the status filter, ``ix_collaborations_status`` (``status``) is replaced by
``ix_collaborations_status_started_at`` (``status, started_at, collaboration_id``): with the old
one, listing the completed collaborations (most of the table) found them all and sorted them,
since SQLite without ``ANALYZE`` statistics always prefers the equality index. The new index
still serves every ``WHERE status = ?`` (active count, ``fail_active_collaborations``).

The feedback mean (``WHERE kind = ? AND item_id = ?``) is already served by
``ix_feedback_kind_item`` from 0001, and ``stats_history`` by ``ix_stats_snapshots_timestamp``.

Indexes only: the columns of ``shared_patterns``/``shared_components``, which users query
directly, are untouched, including on a database adopted from the prototype (see 0001).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002_timestamp_indexes"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (index, table, columns): self-contained, like every migration.
_INDEXES = [
    ("ix_shared_patterns_timestamp", "shared_patterns", ["timestamp", "pattern_id"]),
    ("ix_shared_components_timestamp", "shared_components", ["timestamp", "component_id"]),
    ("ix_collaborations_started_at", "collaborations", ["started_at", "collaboration_id"]),
    (
        "ix_collaborations_status_started_at",
        "collaborations",
        ["status", "started_at", "collaboration_id"],
    ),
]


def upgrade() -> None:
    for name, table, columns in _INDEXES:
        op.create_index(name, table, columns)
    # A prefix of ix_collaborations_status_started_at: redundant now.
    op.drop_index("ix_collaborations_status", table_name="collaborations")


def downgrade() -> None:
    op.create_index("ix_collaborations_status", "collaborations", ["status"])
    for name, table, _columns in reversed(_INDEXES):
        op.drop_index(name, table_name=table)
