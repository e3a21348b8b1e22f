"""Storage: the :class:`Store` interface, its records, and the SQL backend (SQLite, PostgreSQL)."""

from kernal.storage import base
from kernal.storage.base import *  # noqa: F403  (the interface: base.__all__)
from kernal.storage.records import *  # noqa: F403  (its records, which base re-exports)
from kernal.storage.sql import SqlStore, database_url, open_store

__all__ = ["SqlStore", "database_url", "open_store"]
__all__ += base.__all__
