"""One vote per rater per item: ``feedback_votes``, and the end of ``contributor_scores``.

Revision ID: 0005_feedback_votes
Revises: 0004_component_recipient
Create Date: 2026-12-01

Every FEEDBACK counted: one AI sending ``score: 0`` a thousand times drove another's standing
from 0.5 to 0.001, and a component's quality to 0. ``feedback_votes`` keeps the vote that
counts, one row per (kind, item, rater), replaced by the rater's next rating; ``feedback``
stays the log of every frame. The hub now computes standings in memory from these votes and
the completed collaborations, so the running tally ``contributor_scores`` (0003) is dropped.

The upgrade makes each rater's vote on an item from its logged feedback: its latest score
(by log order), the time of its latest feedback, and the item's contributor ("" when unknown).
Items' ``usage_count`` and ``quality_score`` are left as they were: they are recomputed from
the votes at the item's next feedback. The downgrade drops the votes and rebuilds the tally
from the log exactly as 0003 did (the log was kept for that). Self-contained, like every
migration: the kinds are spelled as stored in ``feedback.kind``.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_feedback_votes"
down_revision: str | None = "0004_component_recipient"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_VOTES = """
INSERT INTO feedback_votes (kind, item_id, rater, contributor, score, usefulness, timestamp)
SELECT f.kind, f.item_id, f.ai_id,
    COALESCE(CASE f.kind
        WHEN 'pattern' THEN
            (SELECT p.contributor FROM shared_patterns p WHERE p.pattern_id = f.item_id)
        WHEN 'component' THEN
            (SELECT c.contributor FROM shared_components c WHERE c.component_id = f.item_id)
    END, ''),
    (SELECT s.score FROM feedback s
        WHERE s.kind = f.kind AND s.item_id = f.item_id AND s.ai_id = f.ai_id
          AND s.score IS NOT NULL
        ORDER BY s.id DESC LIMIT 1),
    NULL,
    MAX(f.timestamp)
FROM feedback f
GROUP BY f.kind, f.item_id, f.ai_id
"""

# The downgrade: 0003's tally, from the log.
_SCORED = """
    SELECT item.contributor AS contributor, f.score AS score
    FROM feedback f JOIN {table} item ON f.item_id = item.{key}
    WHERE f.kind = '{kind}' AND f.score IS NOT NULL AND item.contributor IS NOT NULL
      AND f.ai_id <> item.contributor
"""

_TALLY = f"""
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
        "feedback_votes",
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("item_id", sa.Text, primary_key=True),
        sa.Column("rater", sa.Text, primary_key=True),
        sa.Column("contributor", sa.Text, nullable=False),
        sa.Column("score", sa.Float(precision=53), nullable=True),
        sa.Column("usefulness", sa.Float(precision=53), nullable=True),
        sa.Column("timestamp", sa.Float(precision=53), nullable=False),
    )
    op.execute(_VOTES)
    op.drop_table("contributor_scores")


def downgrade() -> None:
    op.create_table(
        "contributor_scores",
        sa.Column("contributor", sa.Text, primary_key=True),
        sa.Column("score_total", sa.Float(precision=53), nullable=False),
        sa.Column("score_count", sa.Integer, nullable=False),
    )
    op.execute(_TALLY)
    op.drop_table("feedback_votes")
