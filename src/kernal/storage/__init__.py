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
    ShareOutcome,
    StatsSnapshot,
    Store,
    StoreError,
    TokenInfo,
)

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
    "ShareOutcome",
    "StatsSnapshot",
    "Store",
    "StoreError",
    "TokenInfo",
    "open_store",
]


def __getattr__(name: str) -> object:
    # Imported lazily so that `kernal.storage` stays cheap to import for the protocol-only users.
    if name == "open_store":
        from kernal.storage.sql import open_store

        return open_store
    raise AttributeError(name)
