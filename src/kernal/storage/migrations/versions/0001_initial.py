"""Initial schema: knowledge base, AIs, tokens, collaborations, feedback, stats.

Revision ID: 0001_initial
Revises:
Create Date: 2024-06-01

Self-contained on purpose (it does not import ``kernal.storage.schema``, which describes the
latest revision): a migration must keep creating what it created the day it was written.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _double() -> sa.Float[float]:
    # double precision on PostgreSQL (a plain Float would be a 4-byte real there).
    return sa.Float(precision=53)


def upgrade() -> None:
    op.create_table(
        "shared_patterns",
        sa.Column("pattern_id", sa.Text, primary_key=True),
        sa.Column("pattern_data", sa.Text, nullable=False),
        sa.Column("contributor", sa.Text, nullable=False),
        sa.Column("timestamp", _double(), nullable=False),
        sa.Column("usage_count", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
    op.create_table(
        "shared_components",
        sa.Column("component_id", sa.Text, primary_key=True),
        sa.Column("component_data", sa.Text, nullable=False),
        sa.Column("contributor", sa.Text, nullable=False),
        sa.Column("timestamp", _double(), nullable=False),
        sa.Column("quality_score", _double(), nullable=True),
        sa.Column("usage_count", sa.Integer, nullable=False, server_default=sa.text("0")),
    )
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
