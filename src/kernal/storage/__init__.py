"""Storage: the :class:`Store` interface, its records, and the SQL backend (SQLite, PostgreSQL)."""

from kernal.storage.base import (
    AiRecord,
    CollaborationRecord,
    CollaborationStatus,
    ComponentRecord,
    ConflictError,
    FeedbackResult,
    ItemKind,
    KnowledgeCounts,
    NotFoundError,
    PatternRecord,
    ScoreTally,
    ShareOutcome,
    StatsSnapshot,
    Store,
    StoreError,
    TokenInfo,
)
from kernal.storage.sql import SqlStore, database_url, open_store

__all__ = [
    "AiRecord",
    "CollaborationRecord",
    "CollaborationStatus",
    "ComponentRecord",
    "ConflictError",
    "FeedbackResult",
    "ItemKind",
    "KnowledgeCounts",
    "NotFoundError",
    "PatternRecord",
    "ScoreTally",
    "ShareOutcome",
    "SqlStore",
    "StatsSnapshot",
    "Store",
    "StoreError",
    "TokenInfo",
    "database_url",
    "open_store",
]
