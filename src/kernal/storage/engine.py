"""Connecting to the hub's database: URLs, engines, per-connection settings, migrations.

Everything here is about *how* to talk to SQLite or PostgreSQL; what is stored lives in
:mod:`kernal.storage.schema` and :mod:`kernal.storage.rows`, and the store itself in
:mod:`kernal.storage.sql`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, event
from sqlalchemy.pool import ConnectionPoolEntry

__all__ = [
    "MIGRATIONS_DIR",
    "connect_for_writing",
    "create_engine",
    "current_revision",
    "database_url",
    "head_revision",
    "migrate",
    "pending_revisions",
    "resolve_target",
]

MIGRATIONS_DIR: Final = Path(__file__).with_name("migrations")
_SCHEMA_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_BEGIN_MODE: Final = "kernal_sqlite_begin"  # execution option read by _sqlite_begin
_PG_MIGRATION_LOCK: Final = 0x6B65726E616C  # "kernal": serialises concurrent migrators
_READ_POOL: Final = {"pool_size": 5, "max_overflow": 27}  # to_thread runs at most 32 readers


def database_url(url_or_path: str) -> str:
    """The SQLAlchemy URL for a URL or a plain SQLite file path.

    Anything containing ``://`` is a URL; ``postgresql://`` (and ``postgres://``) get the psycopg 3
    driver. Anything else is a path: ``hub_data.db`` becomes ``sqlite:///hub_data.db``.
    """
    scheme, sep, rest = url_or_path.partition("://")
    if not sep:
        return f"sqlite:///{Path(url_or_path).expanduser()}"
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url_or_path


def resolve_target(url_or_path: str, schema: str | None) -> tuple[sa.URL, str | None]:
    """Validate a store's target and return ``(url, schema)``.

    ``schema`` may also come as a ``?schema=`` query parameter of a PostgreSQL URL; it is moved
    out of the returned URL (the driver would reject it). Raises :class:`ValueError` for a
    schema on SQLite, an invalid or conflicting schema name, or an in-memory SQLite database
    (each pooled connection would see a different, empty database).
    """
    url = sa.make_url(database_url(url_or_path))
    query_schema = url.query.get("schema")
    if isinstance(query_schema, tuple):
        raise ValueError("schema is given more than once in the URL")
    if query_schema is not None:
        if schema is not None and schema != query_schema:
            raise ValueError(f"schema {schema!r} conflicts with ?schema={query_schema}")
        schema, url = query_schema, url.difference_update_query(["schema"])
    if schema is not None:
        if url.get_backend_name() != "postgresql":
            raise ValueError("schema= is supported on PostgreSQL only")
        # The name is interpolated into SET search_path: only plain identifiers get through.
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(f"invalid schema name {schema!r}")
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        raise ValueError("in-memory SQLite is not supported: give a file path")
    return url, schema


def create_engine(url: sa.URL, schema: str | None = None) -> Engine:
    """A new engine on ``url`` (as returned by :func:`resolve_target`), configured as the store
    uses it: SQLite in WAL mode with ``synchronous=FULL``, PostgreSQL with ``search_path`` set to
    ``schema`` when given. Creates the parent directory of a SQLite file."""
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False}, **_READ_POOL)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = sa.create_engine(url, pool_pre_ping=True, **_READ_POOL)
    if schema is not None:
        # insert=True: before the dialect's first-connect setup reads current_schema().
        event.listen(engine, "connect", _pg_search_path(schema), insert=True)
    return engine


def connect_for_writing(engine: Engine) -> Connection:
    """A new connection whose transactions take the write lock when they begin.

    On SQLite that is ``BEGIN IMMEDIATE``: a DEFERRED transaction that reads then writes fails at
    once with ``SQLITE_BUSY`` if another process committed in between, while IMMEDIATE waits up
    to ``busy_timeout`` for the lock. PostgreSQL ignores the option (row locks suffice there).
    """
    conn = engine.connect()
    conn.execution_options(**{_BEGIN_MODE: "IMMEDIATE"})
    return conn


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The revision of the newest migration: the schema of :mod:`kernal.storage.schema`."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    assert head is not None, "the migrations have a single head (a test checks it)"
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision the database on ``conn`` is at; None when no migration ever ran on it."""
    revision: str | None = MigrationContext.configure(conn).get_current_revision()
    return revision


def pending_revisions(current: str | None) -> list[str] | None:
    """The migrations an upgrade from ``current`` to head would run, oldest first; None when
    ``current`` is not one of this kernal's revisions (a newer kernal wrote the database)."""
    script = ScriptDirectory.from_config(_alembic_config())
    if current is not None and current not in {rev.revision for rev in script.walk_revisions()}:
        return None
    steps = script.iterate_revisions(head_revision(), current)
    return [rev.revision for rev in reversed(list(steps))]


def migrate(engine: Engine) -> None:
    """Bring the database to the latest migration, in one transaction on both backends.

    Concurrent callers are serialised (SQLite write lock, PostgreSQL advisory lock), so two
    processes opening the same new database do not both try to create it.
    """
    config = _alembic_config()
    with connect_for_writing(engine) as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def _sqlite_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
    # pysqlite's legacy transaction handling does not BEGIN before SAVEPOINT (so savepoints would
    # escape the transaction) nor before DDL: switch it off and emit BEGIN in _sqlite_begin.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=10000")  # first: the WAL switch may need the lock
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cursor.execute("PRAGMA synchronous=FULL")  # an acknowledged write survives power loss
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # DEFERRED unless the connection comes from connect_for_writing (see why there).
    mode = conn.get_execution_options().get(_BEGIN_MODE, "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def _pg_search_path(schema: str) -> Callable[[Any, ConnectionPoolEntry], None]:
    def set_search_path(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        autocommit = dbapi_conn.autocommit
        dbapi_conn.autocommit = True  # SET SESSION outside a transaction: survives rollbacks
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f'SET SESSION search_path TO "{schema}"')
        finally:
            cursor.close()
        dbapi_conn.autocommit = autocommit

    return set_search_path
