"""Trainer reports say which models a trainer refused to merge, and why.

Revision ID: 0008_refused_merges
Revises: 0007_trainer_reports
Create Date: 2026-12-01

``trainer_reports.refused_merges``: a JSON object, peer -> {count, reason}, of the models of each
peer the trainer's gate refused, with the latest reason (the dashboard's "refused merges").
Reports stored before this revision said nothing of it: they get an empty object.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_refused_merges"
down_revision: str | None = "0007_trainer_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("trainer_reports") as batch:
        batch.add_column(sa.Column("refused_merges", sa.Text, nullable=False, server_default="{}"))


def downgrade() -> None:
    with op.batch_alter_table("trainer_reports") as batch:
        batch.drop_column("refused_merges")
