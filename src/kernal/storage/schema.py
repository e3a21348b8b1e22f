"""The SQL schema of the hub, as SQLAlchemy Core tables (no ORM).

This module describes the schema at the latest migration; it never creates anything. The tables
are created only by the Alembic migrations in ``kernal/storage/migrations`` and
``tests/storage/test_migrations.py`` checks that the two agree on SQLite and PostgreSQL.

Conventions, identical on every backend:

* JSON values are stored as ``TEXT`` (compact ``json.dumps``), so that the ``sqlite3`` CLI shows
  them readably and both backends behave the same.
* Times are Unix seconds in a double-precision float (``Float(53)``: ``FLOAT``/``REAL`` on SQLite,
  ``double precision`` on PostgreSQL, which keeps sub-millisecond precision of current times).

``shared_patterns`` and ``shared_components`` are queried by users directly, so their table and
column names are part of the public interface and must not change. On a database adopted from
the single-file prototype these two tables keep the prototype's definition (nullable columns,
see ``migrations/versions/0001_initial.py``); the hub reads such rows leniently
(:mod:`kernal.storage.rows`).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()


def _double() -> sa.Float[float]:
    """A double-precision float: times (Unix seconds), scores, progress."""
    return sa.Float(precision=53)


def _count() -> sa.Column[int]:
    return sa.Column("usage_count", sa.Integer, nullable=False, server_default=sa.text("0"))


shared_patterns = sa.Table(
    "shared_patterns",
    metadata,
    sa.Column("pattern_id", sa.Text, primary_key=True),
    sa.Column("pattern_data", sa.Text, nullable=False),  # JSON object
    sa.Column("contributor", sa.Text, nullable=False),
    sa.Column("timestamp", _double(), nullable=False),
    _count(),
    # Newest first (recent_patterns): the whole ORDER BY, so no sort step; then every column a
    # listing shows but the data, so a listing reads the row only for data it sends (0008).
    sa.Index("ix_shared_patterns_listing", "timestamp", "pattern_id", "contributor", "usage_count"),
)

shared_components = sa.Table(
    "shared_components",
    metadata,
    sa.Column("component_id", sa.Text, primary_key=True),
    sa.Column("component_data", sa.Text, nullable=False),  # JSON object
    sa.Column("contributor", sa.Text, nullable=False),
    sa.Column("timestamp", _double(), nullable=False),
    # The author's claim until scored feedback arrives, then the mean of the feedback scores.
    sa.Column("quality_score", _double(), nullable=True),
    _count(),
    sa.Index(
        "ix_shared_components_listing",
        "timestamp",
        "component_id",
        "contributor",
        "quality_score",
        "usage_count",
    ),
)

# The byte length (UTF-8) of each item's data as the hub stored it, so that a listing knows it
# without reading the data (0008). ``kind``: "pattern" or "component". A table beside the
# items', not a column: the prototype's tables keep their definition. No row: measure the data.
data_sizes = sa.Table(
    "data_sizes",
    metadata,
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("item_id", sa.Text, primary_key=True),
    sa.Column("data_size", sa.Integer, nullable=False),
)

ais = sa.Table(
    "ais",
    metadata,
    sa.Column("ai_id", sa.Text, primary_key=True),
    sa.Column("specialization", sa.Text, nullable=False),
    sa.Column("capabilities", sa.Text, nullable=False),  # JSON list of strings
    sa.Column("first_seen", _double(), nullable=False),
    sa.Column("last_seen", _double(), nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("ai_id", sa.Text, primary_key=True),
    sa.Column("token_hash", sa.Text, nullable=False),
    sa.Column("created_at", _double(), nullable=False),  # when this token was set
    sa.Column("expires_at", _double(), nullable=True),  # NULL: never
    # "cli" (kernal token) or "file" (the hub's tokens file, which owns the rows it wrote).
    sa.Column("source", sa.Text, nullable=False, server_default=sa.text("'cli'")),
)

# The last change of each AI's token, numbered across all AIs, so a running hub finds the
# changes other processes (``kernal token``) made with one indexed range read, and evicts the
# sessions whose token was revoked or replaced. One row per AI: it never grows past the tokens.
token_changes = sa.Table(
    "token_changes",
    metadata,
    sa.Column("ai_id", sa.Text, primary_key=True),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("action", sa.Text, nullable=False),  # TokenAction value
    sa.Column("changed_at", _double(), nullable=False),
    sa.Index("ix_token_changes_seq", "seq"),
)

collaborations = sa.Table(
    "collaborations",
    metadata,
    sa.Column("collaboration_id", sa.Text, primary_key=True),
    sa.Column("request_id", sa.Text, nullable=False),
    sa.Column("requester", sa.Text, nullable=False),
    sa.Column("acceptor", sa.Text, nullable=False),
    sa.Column("request", sa.Text, nullable=False),  # JSON object
    sa.Column("status", sa.Text, nullable=False),  # CollaborationStatus value
    sa.Column("progress", _double(), nullable=False, server_default=sa.text("0")),
    sa.Column("started_at", _double(), nullable=False),
    sa.Column("ended_at", _double(), nullable=True),
    sa.Column("outcome", sa.Text, nullable=True),  # JSON value, NULL when none
    sa.Column("reason", sa.Text, nullable=True),
    # Newest first (list_collaborations), all or of one status: the whole ORDER BY, no sort step.
    sa.Index("ix_collaborations_started_at", "started_at", "collaboration_id"),
    sa.Index("ix_collaborations_status_started_at", "status", "started_at", "collaboration_id"),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.Text, nullable=False),  # ItemKind value
    sa.Column("item_id", sa.Text, nullable=False),
    sa.Column("ai_id", sa.Text, nullable=False),
    sa.Column("score", _double(), nullable=True),
    sa.Column("timestamp", _double(), nullable=False),
    sa.Index("ix_feedback_kind_item", "kind", "item_id"),
)

# Components shared with one AI only: kept beside the prototype's table, which stays as it was.
component_recipients = sa.Table(
    "component_recipients",
    metadata,
    sa.Column("component_id", sa.Text, primary_key=True),
    sa.Column("recipient", sa.Text, nullable=False),
)

# The vote that counts: one per rater per item, replaced by the rater's next rating FEEDBACK
# (``feedback`` above stays the log of every frame, with its score; the usefulness is kept
# here only: the log's columns are those of 0001). ``contributor`` is the item's, copied at
# the first vote (ids never change owner), so the hub rebuilds standings without a join.
feedback_votes = sa.Table(
    "feedback_votes",
    metadata,
    sa.Column("kind", sa.Text, primary_key=True),  # ItemKind value
    sa.Column("item_id", sa.Text, primary_key=True),
    sa.Column("rater", sa.Text, primary_key=True),
    sa.Column("contributor", sa.Text, nullable=False),  # "" for an adopted row without one
    sa.Column("score", _double(), nullable=True),
    sa.Column("usefulness", _double(), nullable=True),
    sa.Column("timestamp", _double(), nullable=False),
)

stats_snapshots = sa.Table(
    "stats_snapshots",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("timestamp", _double(), nullable=False),
    sa.Column("connected_ais", sa.Integer, nullable=False),
    sa.Column("shared_patterns", sa.Integer, nullable=False),
    sa.Column("shared_components", sa.Integer, nullable=False),
    sa.Column("active_collaborations", sa.Integer, nullable=False),
    sa.Index("ix_stats_snapshots_timestamp", "timestamp"),
)

# What each trainer measured of itself (TRAINER_REPORT): a time series per trainer, the newest
# TRAINER_REPORTS_KEPT of each kept (older ones are deleted as new ones arrive). ``trust`` and
# ``rejected`` are JSON objects keyed by peer id.
trainer_reports = sa.Table(
    "trainer_reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("ai_id", sa.Text, nullable=False),
    sa.Column("timestamp", _double(), nullable=False),
    sa.Column("accuracy", _double(), nullable=False),
    sa.Column("local_only_accuracy", _double(), nullable=True),
    sa.Column("centralized_baseline", _double(), nullable=True),
    sa.Column("merges_kept", sa.Integer, nullable=False),
    sa.Column("merges_rejected", sa.Integer, nullable=False),
    sa.Column("trust", sa.Text, nullable=False),  # JSON object: peer -> reputation
    sa.Column("rejected", sa.Text, nullable=False),  # JSON object: peer -> {count, reason}
    sa.Column("final", sa.Boolean, nullable=False),
    # JSON object: peer -> {count, reason} of the models refused (revision 0008)
    sa.Column("refused_merges", sa.Text, nullable=False, server_default="{}"),
    # One trainer's series in order (and its newest): the whole ORDER BY, no sort step.
    sa.Index("ix_trainer_reports_ai_id_id", "ai_id", "id"),
    sa.Index("ix_trainer_reports_timestamp", "timestamp"),
)
