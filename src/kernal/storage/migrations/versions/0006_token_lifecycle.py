"""Token lifecycle: expiry, where a token came from, and a numbered log of token changes.

Revision ID: 0006_token_lifecycle
Revises: 0005_feedback_votes
Create Date: 2026-12-01

``tokens`` gains ``expires_at`` (NULL: never, as every token stored before) and ``source``
(``cli`` for ``kernal token``, ``file`` for the hub's tokens file; tokens stored before came from
the CLI or the harness, so ``cli``). ``token_changes`` holds the last change of each AI's token
with a sequence number across all AIs: the hub reads the changes past the last one it saw every
couple of seconds and disconnects sessions whose token was revoked or replaced. It starts empty:
sessions live at upgrade time authenticated against the tokens as they are.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_token_lifecycle"
down_revision: str | None = "0005_feedback_votes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tokens", sa.Column("expires_at", sa.Float(precision=53), nullable=True))
    op.add_column(
        "tokens",
        sa.Column("source", sa.Text, nullable=False, server_default=sa.text("'cli'")),
    )
    op.create_table(
        "token_changes",
        sa.Column("ai_id", sa.Text, primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("changed_at", sa.Float(precision=53), nullable=False),
    )
    op.create_index("ix_token_changes_seq", "token_changes", ["seq"])


def downgrade() -> None:
    op.drop_index("ix_token_changes_seq", table_name="token_changes")
    op.drop_table("token_changes")
    # Batch mode: SQLite rebuilds the table (older SQLite versions cannot drop a column).
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("source")
        batch.drop_column("expires_at")
