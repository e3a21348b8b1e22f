"""Initial schema: knowledge base, AIs, tokens, collaborations, feedback, stats.

Revision ID: 0001_initial
Revises:
Create Date: 2024-06-01

Self-contained on purpose (it does not import ``kernal.storage.schema``, which describes the
latest revision): a migration must keep creating what it created the day it was written.

Adopting a prototype database. The single-file prototype created ``hub_data.db`` with
``CREATE TABLE IF NOT EXISTS shared_patterns (...)`` and ``shared_components (...)`` (same table
and column names as here, but every column but the key nullable, ``timestamp REAL``, and
``usage_count INTEGER DEFAULT 0``), and no ``alembic_version``. When one of these two tables
already exists, this revision leaves it exactly as it is, rows and definition, and creates only
what is missing. Why adopt in place rather than rebuild it into the definition below:

* nothing can be lost or altered: a rebuild would have to invent values for the NULLs its
  ``NOT NULL`` columns refuse (or drop those rows), and users' own queries keep working;
* it is instant and needs no extra disk space, whatever the size of the file;
* the store must tolerate those rows anyway (``kernal.storage.rows`` reads NULLs and non-JSON
  data without failing, feedback counts a NULL ``usage_count`` as 0), so the stricter
  definition would buy nothing the code relies on.

The price: on an adopted file these two tables keep their looser constraints (the hub never
writes NULLs into them, so only prototype-era rows can hold any). An existing table is adopted
only if it has every column the hub uses and no other ``NOT NULL`` column without a default
(the hub's inserts would fail on it); otherwise the upgrade stops with an explanation. The
adoption is not recorded: downgrading to base drops an adopted table like a created one.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _double() -> sa.Float[float]:
    # double precision on PostgreSQL (a plain Float would be a 4-byte real there).
    return sa.Float(precision=53)


# The columns the hub reads and writes in the tables the prototype may have created.
_LEGACY_COLUMNS = {
    "shared_patterns": {"pattern_id", "pattern_data", "contributor", "timestamp", "usage_count"},
    "shared_components": {
        "component_id",
        "component_data",
        "contributor",
        "timestamp",
        "quality_score",
        "usage_count",
    },
}


def _adopt(table: str) -> bool:
    """Whether ``table`` exists already and is kept as it is (see the module docstring).

    Raises :class:`RuntimeError` if it exists but the hub could not use it."""
    if context.is_offline_mode():  # generating SQL: there is no database to look at
        return False
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table(table):
        return False
    columns = inspector.get_columns(table)
    missing = _LEGACY_COLUMNS[table] - {column["name"] for column in columns}
    blocking = [
        column["name"]
        for column in columns
        if column["name"] not in _LEGACY_COLUMNS[table]
        and not column["nullable"]
        and column.get("default") is None
        and not column.get("autoincrement", False)
    ]
    problems = []
    if missing:
        problems.append(f"it lacks the columns {sorted(missing)}")
    if blocking:
        problems.append(f"its NOT NULL columns {blocking} have no default")
    if problems:
        raise RuntimeError(
            f"cannot adopt the existing table {table!r}: {' and '.join(problems)};"
            " rename that table or move the database aside"
        )
    return True


def upgrade() -> None:
    if not _adopt("shared_patterns"):
        _create_shared_patterns()
    if not _adopt("shared_components"):
        _create_shared_components()
    _create_the_rest()


def _create_shared_patterns() -> None:
    op.create_table(
        "shared_patterns",
        sa.Column("pattern_id", sa.Text, primary_key=True),
        sa.Column("pattern_data", sa.Text, nullable=False),
        sa.Column("contributor", sa.Text, nullable=False),
        sa.Column("timestamp", _double(), nullable=False),
        sa.Column("usage_count", sa.Integer, nullable=False, server_default=sa.text("0")),
    )


def _create_shared_components() -> None:
    op.create_table(
        "shared_components",
        sa.Column("component_id", sa.Text, primary_key=True),
        sa.Column("component_data", sa.Text, nullable=False),
        sa.Column("contributor", sa.Text, nullable=False),
        sa.Column("timestamp", _double(), nullable=False),
        sa.Column("quality_score", _double(), nullable=True),
        sa.Column("usage_count", sa.Integer, nullable=False, server_default=sa.text("0")),
    )


def _create_the_rest() -> None:
    op.create_table(
        "ais",
        sa.Column("ai_id", sa.Text, primary_key=True),
        sa.Column("specialization", sa.Text, nullable=False),
        sa.Column("capabilities", sa.Text, nullable=False),
        sa.Column("first_seen", _double(), nullable=False),
        sa.Column("last_seen", _double(), nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("ai_id", sa.Text, primary_key=True),
        sa.Column("token_hash", sa.Text, nullable=False),
        sa.Column("created_at", _double(), nullable=False),
    )
    op.create_table(
        "collaborations",
        sa.Column("collaboration_id", sa.Text, primary_key=True),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("requester", sa.Text, nullable=False),
        sa.Column("acceptor", sa.Text, nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("progress", _double(), nullable=False, server_default=sa.text("0")),
        sa.Column("started_at", _double(), nullable=False),
        sa.Column("ended_at", _double(), nullable=True),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
    )
    op.create_index("ix_collaborations_status", "collaborations", ["status"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("item_id", sa.Text, nullable=False),
        sa.Column("ai_id", sa.Text, nullable=False),
        sa.Column("score", _double(), nullable=True),
        sa.Column("timestamp", _double(), nullable=False),
    )
    op.create_index("ix_feedback_kind_item", "feedback", ["kind", "item_id"])
    op.create_table(
        "stats_snapshots",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("timestamp", _double(), nullable=False),
        sa.Column("connected_ais", sa.Integer, nullable=False),
        sa.Column("shared_patterns", sa.Integer, nullable=False),
        sa.Column("shared_components", sa.Integer, nullable=False),
        sa.Column("active_collaborations", sa.Integer, nullable=False),
    )
    op.create_index("ix_stats_snapshots_timestamp", "stats_snapshots", ["timestamp"])


def downgrade() -> None:
    op.drop_index("ix_stats_snapshots_timestamp", table_name="stats_snapshots")
    op.drop_table("stats_snapshots")
    op.drop_index("ix_feedback_kind_item", table_name="feedback")
    op.drop_table("feedback")
    op.drop_index("ix_collaborations_status", table_name="collaborations")
    op.drop_table("collaborations")
    op.drop_table("tokens")
    op.drop_table("ais")
    op.drop_table("shared_components")
    op.drop_table("shared_patterns")
