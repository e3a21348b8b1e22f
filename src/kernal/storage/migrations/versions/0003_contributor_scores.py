"""Each contributor's received scores, kept as a running tally.

Revision ID: 0003_contributor_scores
Revises: 0002_timestamp_indexes
Create Date: 2025-12-01

``received_scores`` summed every scored feedback on a contributor's items on each call, and
FEEDBACK now reports the contributor's tally from inside the single writer's transaction: a
cost growing with the whole feedback history, paid by every write batched with it.
``contributor_scores`` holds the result instead (sum and count of the scores others gave the
contributor's items; self-ratings, unscored feedback and items without a contributor do not
count), updated by the store in each feedback's transaction, so reading it is one key lookup.

The upgrade fills it from the feedback already stored, with exactly the rules above; the
downgrade drops it (nothing else depends on it). Self-contained, like every migration: the
kinds are spelled as stored in ``feedback.kind``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_contributor_scores"
down_revision: str | None = "0002_timestamp_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SCORED = """
    SELECT item.contributor AS contributor, f.score AS score
    FROM feedback f JOIN {table} item ON f.item_id = item.{key}
    WHERE f.kind = '{kind}' AND f.score IS NOT NULL AND item.contributor IS NOT NULL
      AND f.ai_id <> item.contributor
"""

_BACKFILL = f"""
INSERT INTO contributor_scores (contributor, score_total, score_count)
SELECT contributor, SUM(score), COUNT(score) FROM (
{_SCORED.format(table="shared_patterns", key="pattern_id", kind="pattern")}
    UNION ALL
{_SCORED.format(table="shared_components", key="component_id", kind="component")}
) AS scored
GROUP BY contributor
"""


def upgrade() -> None:
    op.create_table(
        "contributor_scores",
        sa.Column("contributor", sa.Text, primary_key=True),
        sa.Column("score_total", sa.Float(precision=53), nullable=False),
        sa.Column("score_count", sa.Integer, nullable=False),
    )
    op.execute(_BACKFILL)


def downgrade() -> None:
    op.drop_table("contributor_scores")
