"""Trainer reports: the figures each trainer measured of itself (TRAINER_REPORT).

Revision ID: 0007_trainer_reports
Revises: 0006_token_lifecycle
Create Date: 2026-12-01

``trainer_reports`` is a time series per trainer (accuracy, baselines, merges kept and rejected,
the reputation it holds of each peer and the requests it refused), the newest few hundred of each
trainer kept. It starts empty: hubs before this revision never received such reports.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_trainer_reports"
down_revision: str | None = "0006_token_lifecycle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    double = sa.Float(precision=53)
    op.create_table(
        "trainer_reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ai_id", sa.Text, nullable=False),
        sa.Column("timestamp", double, nullable=False),
        sa.Column("accuracy", double, nullable=False),
        sa.Column("local_only_accuracy", double, nullable=True),
        sa.Column("centralized_baseline", double, nullable=True),
        sa.Column("merges_kept", sa.Integer, nullable=False),
        sa.Column("merges_rejected", sa.Integer, nullable=False),
        sa.Column("trust", sa.Text, nullable=False),
        sa.Column("rejected", sa.Text, nullable=False),
        sa.Column("final", sa.Boolean, nullable=False),
    )
    op.create_index("ix_trainer_reports_ai_id_id", "trainer_reports", ["ai_id", "id"])
    op.create_index("ix_trainer_reports_timestamp", "trainer_reports", ["timestamp"])


def downgrade() -> None:
    op.drop_index("ix_trainer_reports_timestamp", table_name="trainer_reports")
    op.drop_index("ix_trainer_reports_ai_id_id", table_name="trainer_reports")
    op.drop_table("trainer_reports")
