"""The recipient of a component shared with one AI only, in a table of its own.

Revision ID: 0004_component_recipient
Revises: 0003_contributor_scores
Create Date: 2026-12-01

A component sent with ``to`` is meant for its recipient alone, but nothing stored said so, and
``STATE`` and the API showed it to everyone. ``component_recipients`` names the recipient of
each such component; components stored before are taken as shared with everyone, as they were
shown. A table beside ``shared_components``, not a column in it: the prototype's tables keep
their exact definition.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_component_recipient"
down_revision: str | None = "0003_contributor_scores"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "component_recipients",
        sa.Column("component_id", sa.Text, primary_key=True),
        sa.Column("recipient", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("component_recipients")
