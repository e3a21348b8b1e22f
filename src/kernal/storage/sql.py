"""The SQL implementation of :class:`~kernal.storage.base.Store`, for SQLite and PostgreSQL.

Concurrency model (one store per hub process, called from one event loop):

* One synchronous SQLAlchemy engine. Reads run in worker threads (``asyncio.to_thread``), each on
  a pooled connection.
* Every write goes through one writer thread. A write method submits a job (a function taking a
  :class:`~sqlalchemy.Connection`) and awaits its future. The writer takes every job queued (up to
  ``max_batch``) into ONE transaction, runs each job in its own SAVEPOINT so that a job that
  raises undoes only its own changes and gets its own exception, commits once, and only then
  resolves the futures: a write method returns exactly when its change is durable (group commit:
  one fsync for many writes). If the commit fails, every job of the batch gets that error.
* Check-then-write logic (id ownership, "is this collaboration active") is race-free because
  this process has only one writer. Another process (the ``kernal token`` CLI) may write the same
  SQLite file: the writer starts its transactions with ``BEGIN IMMEDIATE`` and waits on the lock
  (``busy_timeout``) instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Generic, Self, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, event
from sqlalchemy.pool import ConnectionPoolEntry

from kernal.storage import schema as t
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
    TokenInfo,
)

__all__ = ["MIGRATIONS_DIR", "SqlStore", "database_url", "open_store"]

T = TypeVar("T")

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


async def open_store(url_or_path: str) -> SqlStore:
    """Create a :class:`SqlStore` for a URL or path (see :func:`database_url`) and open it."""
    store = SqlStore(url_or_path)
    await store.open()
    return store


def _dumps(value: Any) -> str:
    # Compact, readable in the sqlite3 CLI, and strict JSON (no NaN) so any tool can parse it.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


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
    # IMMEDIATE for the writer: take the write lock up front, waiting busy_timeout for it. A
    # DEFERRED transaction that reads then writes fails at once with SQLITE_BUSY if another
    # process committed in between.
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


@dataclass(slots=True)
class _Job(Generic[T]):
    fn: Callable[[Connection], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop

    def settle(self, ok: bool, value: Any) -> None:
        """Resolve the future from the writer thread (its caller may have been cancelled)."""

        def resolve() -> None:
            if self.future.done():
                return
            if ok:
                self.future.set_result(value)
            else:
                self.future.set_exception(value)

        with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting any more
            self.loop.call_soon_threadsafe(resolve)


class SqlStore(Store):
    """A :class:`Store` on SQLite or PostgreSQL.

    ``url_or_path`` is anything :func:`database_url` accepts. ``schema`` (PostgreSQL only, also
    accepted as a ``?schema=`` URL query parameter) puts every table in that existing schema by
    setting ``search_path`` on each connection. ``max_batch`` caps the writes per transaction.
    """

    def __init__(self, url_or_path: str, *, schema: str | None = None, max_batch: int = 256):
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
            if not _SCHEMA_NAME.fullmatch(schema):
                raise ValueError(f"invalid schema name {schema!r}")
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            raise ValueError("in-memory SQLite is not supported: give a file path")
        if max_batch < 1:
            raise ValueError("max_batch must be positive")
        self.url = url
        self.schema = schema
        self.max_batch = max_batch
        self.batches_committed = 0
        """Write transactions committed so far (each holds one or more writes)."""
        self._engine: Engine | None = None
        self._jobs: queue.Queue[_Job[Any] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"SqlStore({self.url.render_as_string(hide_password=True)!r})"

    async def __aenter__(self) -> Self:
        if self._engine is None:
            await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ lifecycle

    def create_engine(self) -> Engine:
        """A new engine for this store's database, configured as the store uses it."""
        if self.url.get_backend_name() == "sqlite":
            assert self.url.database is not None
            Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(
                self.url, connect_args={"check_same_thread": False}, **_READ_POOL
            )
            event.listen(engine, "connect", _sqlite_connect)
            event.listen(engine, "begin", _sqlite_begin)
            return engine
        engine = sa.create_engine(self.url, pool_pre_ping=True, **_READ_POOL)
        if self.schema is not None:
            # insert=True: before the dialect's first-connect setup reads current_schema().
            event.listen(engine, "connect", _pg_search_path(self.schema), insert=True)
        return engine

    async def open(self) -> None:
        """Connect and run the migrations up to head. A store opens once."""
        if self._engine is not None or self._closed:
            raise RuntimeError(f"{self!r} was already opened")
        engine = self.create_engine()
        try:
            await asyncio.to_thread(self._migrate, engine)
        except BaseException:
            engine.dispose()
            raise
        self._engine = engine
        # Daemon: a hub that exits without close() must not hang on this thread; writes that
        # were not acknowledged may then be lost, acknowledged ones are committed.
        self._writer = threading.Thread(target=self._write_loop, name="kernal-store-writer")
        self._writer.daemon = True
        self._writer.start()

    @staticmethod
    def _migrate(engine: Engine) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with engine.connect() as conn:
            conn.execution_options(**{_BEGIN_MODE: "IMMEDIATE"})
            with conn.begin():  # the whole upgrade is one transaction on both backends
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
                config.attributes["connection"] = conn
                command.upgrade(config, "head")

    async def close(self) -> None:
        """Commit every write already submitted, stop the writer, release connections."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._writer.join)
        if self._engine is not None:
            self._engine.dispose()

    # ------------------------------------------------------------------ plumbing

    def _require_engine(self) -> Engine:
        if self._engine is None or self._closed:
            raise RuntimeError(f"{self!r} is not open")
        return self._engine

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        engine = self._require_engine()

        def run() -> T:
            with engine.connect() as conn:
                return fn(conn)

        return await asyncio.to_thread(run)

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in the writer thread; return its result once committed."""
        self._require_engine()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(fn, future, loop))
        return await future

    def _write_loop(self) -> None:
        stopping = False
        while not stopping:
            job = self._jobs.get()
            if job is None:
                return
            batch = [job]
            while len(batch) < self.max_batch:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            self._commit_batch(batch)

    def _commit_batch(self, batch: list[_Job[Any]]) -> None:
        engine = self._require_engine_unchecked()
        results: list[tuple[bool, Any]] = []
        try:
            with engine.connect() as conn:
                conn.execution_options(**{_BEGIN_MODE: "IMMEDIATE"})
                with conn.begin():
                    for job in batch:
                        try:
                            with conn.begin_nested():
                                results.append((True, job.fn(conn)))
                        except Exception as exc:
                            results.append((False, exc))
        except Exception as exc:  # BEGIN or COMMIT failed: nothing of the batch is stored
            for job in batch:
                job.settle(False, exc)
            return
        self.batches_committed += 1
        for job, (ok, value) in zip(batch, results, strict=True):
            job.settle(ok, value)

    def _require_engine_unchecked(self) -> Engine:
        # The writer keeps draining after close() started, so it does not check _closed.
        assert self._engine is not None
        return self._engine

    # ------------------------------------------------------------------ knowledge base

    async def add_pattern(self, record: PatternRecord) -> ShareOutcome:
        row = {
            "pattern_id": record.pattern_id,
            "pattern_data": _dumps(record.pattern_data),
            "contributor": record.contributor,
            "timestamp": record.timestamp,
            "usage_count": record.usage_count,
        }
        return await self._write(lambda conn: _share(conn, t.shared_patterns, row))

    async def add_component(
        self, record: ComponentRecord, *, completes_collaboration: str | None = None
    ) -> ShareOutcome:
        row = {
            "component_id": record.component_id,
            "component_data": _dumps(record.component_data),
            "contributor": record.contributor,
            "timestamp": record.timestamp,
            "quality_score": record.quality_score,
            "usage_count": record.usage_count,
        }
        cid = completes_collaboration

        def job(conn: Connection) -> ShareOutcome:
            if cid is not None:
                _require_active(conn, cid)
            outcome = _share(conn, t.shared_components, row)
            if cid is not None:
                _close_collaboration(
                    conn,
                    cid,
                    status=CollaborationStatus.COMPLETED,
                    ended_at=record.timestamp,
                    outcome=_dumps({"component_id": record.component_id}),
                )
            return outcome

        return await self._write(job)

    async def get_pattern(self, pattern_id: str) -> PatternRecord | None:
        query = sa.select(t.shared_patterns).where(t.shared_patterns.c.pattern_id == pattern_id)
        row = await self._read(lambda conn: conn.execute(query).first())
        return None if row is None else _pattern(row)

    async def get_component(self, component_id: str) -> ComponentRecord | None:
        c = t.shared_components.c
        query = sa.select(t.shared_components).where(c.component_id == component_id)
        row = await self._read(lambda conn: conn.execute(query).first())
        return None if row is None else _component(row)

    async def recent_patterns(self, limit: int) -> list[PatternRecord]:
        c = t.shared_patterns.c
        query = (
            sa.select(t.shared_patterns)
            .order_by(c.timestamp.desc(), c.pattern_id.desc())
            .limit(max(limit, 0))
        )
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [_pattern(row) for row in rows]

    async def recent_components(self, limit: int) -> list[ComponentRecord]:
        c = t.shared_components.c
        query = (
            sa.select(t.shared_components)
            .order_by(c.timestamp.desc(), c.component_id.desc())
            .limit(max(limit, 0))
        )
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [_component(row) for row in rows]

    async def counts(self) -> KnowledgeCounts:
        """Both counts, plus ``extra``: ``ais`` (ever seen) and ``active_collaborations``."""

        def count(table: sa.Table, *where: sa.ColumnElement[bool]) -> sa.ScalarSelect[int]:
            return sa.select(sa.func.count()).select_from(table).where(*where).scalar_subquery()

        active = t.collaborations.c.status == CollaborationStatus.ACTIVE.value
        # One statement: the four numbers come from the same snapshot.
        query = sa.select(
            count(t.shared_patterns),
            count(t.shared_components),
            count(t.ais),
            count(t.collaborations, active),
        )
        patterns, components, ais, collaborations = await self._read(
            lambda conn: conn.execute(query).one()
        )
        return KnowledgeCounts(
            shared_patterns=patterns,
            shared_components=components,
            extra={"ais": ais, "active_collaborations": collaborations},
        )

    async def record_feedback(
        self, kind: ItemKind, item_id: str, ai_id: str, score: float | None, timestamp: float
    ) -> FeedbackResult:
        kind = ItemKind(kind)
        table = t.shared_patterns if kind is ItemKind.PATTERN else t.shared_components
        key = table.c[f"{kind.value}_id"] == item_id

        def job(conn: Connection) -> FeedbackResult:
            bumped = conn.execute(
                table.update().where(key).values(usage_count=table.c.usage_count + 1)
            )
            if bumped.rowcount == 0:
                raise NotFoundError(f"no {kind.value} with id {item_id!r}")
            conn.execute(
                t.feedback.insert().values(
                    kind=kind.value, item_id=item_id, ai_id=ai_id, score=score, timestamp=timestamp
                )
            )
            if kind is ItemKind.PATTERN:
                usage = conn.scalar(sa.select(table.c.usage_count).where(key))
                return FeedbackResult(usage_count=usage or 0)
            if score is not None:
                f = t.feedback.c
                mean = (
                    sa.select(sa.func.avg(f.score))
                    .where(f.kind == kind.value, f.item_id == item_id, f.score.is_not(None))
                    .scalar_subquery()
                )
                conn.execute(table.update().where(key).values(quality_score=mean))
            row = conn.execute(
                sa.select(table.c.usage_count, table.c.quality_score).where(key)
            ).one()
            return FeedbackResult(usage_count=row.usage_count, quality_score=row.quality_score)

        return await self._write(job)

    # ------------------------------------------------------------------ AIs

    async def upsert_ai(
        self, ai_id: str, specialization: str, capabilities: list[str], timestamp: float
    ) -> None:
        profile = {
            "specialization": specialization,
            "capabilities": _dumps(capabilities),
            "last_seen": timestamp,
        }

        def job(conn: Connection) -> None:
            key = t.ais.c.ai_id == ai_id
            if conn.execute(t.ais.update().where(key).values(profile)).rowcount == 0:
                conn.execute(t.ais.insert().values(ai_id=ai_id, first_seen=timestamp, **profile))

        await self._write(job)

    async def touch_ai(self, ai_id: str, timestamp: float) -> None:
        statement = t.ais.update().where(t.ais.c.ai_id == ai_id).values(last_seen=timestamp)
        await self._write(lambda conn: conn.execute(statement))

    async def list_ais(self) -> list[AiRecord]:
        rows = await self._read(
            lambda conn: conn.execute(sa.select(t.ais).order_by(t.ais.c.ai_id)).all()
        )
        return [
            AiRecord(
                ai_id=row.ai_id,
                specialization=row.specialization,
                capabilities=json.loads(row.capabilities),
                first_seen=row.first_seen,
                last_seen=row.last_seen,
            )
            for row in rows
        ]

    # ------------------------------------------------------------------ collaborations

    async def create_collaboration(self, record: CollaborationRecord) -> None:
        """Raises :class:`ConflictError` if the id is taken."""
        row = {
            "collaboration_id": record.collaboration_id,
            "request_id": record.request_id,
            "requester": record.requester,
            "acceptor": record.acceptor,
            "request": _dumps(record.request),
            "status": CollaborationStatus(record.status).value,
            "progress": record.progress,
            "started_at": record.started_at,
            "ended_at": record.ended_at,
            "outcome": None if record.outcome is None else _dumps(record.outcome),
            "reason": record.reason,
        }

        def job(conn: Connection) -> None:
            c = t.collaborations.c
            exists = sa.select(c.collaboration_id).where(
                c.collaboration_id == row["collaboration_id"]
            )
            if conn.execute(exists).first() is not None:
                raise ConflictError(f"collaboration {record.collaboration_id!r} already exists")
            conn.execute(t.collaborations.insert().values(row))

        await self._write(job)

    async def set_collaboration_progress(self, collaboration_id: str, progress: float) -> None:
        c = t.collaborations.c
        statement = (
            t.collaborations.update()
            .where(c.collaboration_id == collaboration_id, _is_active())
            .values(progress=progress)
        )

        def job(conn: Connection) -> None:
            if conn.execute(statement).rowcount == 0:
                raise NotFoundError(f"no active collaboration {collaboration_id!r}")

        await self._write(job)

    async def end_collaboration(
        self,
        collaboration_id: str,
        status: CollaborationStatus,
        timestamp: float,
        *,
        outcome: Any = None,
        reason: str | None = None,
    ) -> CollaborationRecord:
        """Also sets ``progress`` to 100 when ``status`` is completed."""
        status = CollaborationStatus(status)
        if status is CollaborationStatus.ACTIVE:
            raise ValueError("a collaboration ends as completed or failed")
        encoded = None if outcome is None else _dumps(outcome)

        def job(conn: Connection) -> CollaborationRecord:
            _require_active(conn, collaboration_id)
            _close_collaboration(
                conn, collaboration_id, status, ended_at=timestamp, outcome=encoded, reason=reason
            )
            c = t.collaborations.c
            query = sa.select(t.collaborations).where(c.collaboration_id == collaboration_id)
            return _collaboration(conn.execute(query).one())

        return await self._write(job)

    async def get_collaboration(self, collaboration_id: str) -> CollaborationRecord | None:
        c = t.collaborations.c
        query = sa.select(t.collaborations).where(c.collaboration_id == collaboration_id)
        row = await self._read(lambda conn: conn.execute(query).first())
        return None if row is None else _collaboration(row)

    async def list_collaborations(
        self, status: CollaborationStatus | None = None, limit: int = 100
    ) -> list[CollaborationRecord]:
        c = t.collaborations.c
        query = sa.select(t.collaborations)
        if status is not None:
            query = query.where(c.status == CollaborationStatus(status).value)
        query = query.order_by(c.started_at.desc(), c.collaboration_id.desc()).limit(max(limit, 0))
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [_collaboration(row) for row in rows]

    async def fail_active_collaborations(self, timestamp: float, reason: str) -> int:
        statement = (
            t.collaborations.update()
            .where(_is_active())
            .values(status=CollaborationStatus.FAILED.value, ended_at=timestamp, reason=reason)
        )
        return await self._write(lambda conn: conn.execute(statement).rowcount)

    # ------------------------------------------------------------------ tokens

    async def set_token_hash(self, ai_id: str, token_hash: str, timestamp: float) -> None:
        values = {"token_hash": token_hash, "created_at": timestamp}

        def job(conn: Connection) -> None:
            key = t.tokens.c.ai_id == ai_id
            if conn.execute(t.tokens.update().where(key).values(values)).rowcount == 0:
                conn.execute(t.tokens.insert().values(ai_id=ai_id, **values))

        await self._write(job)

    async def get_token_hash(self, ai_id: str) -> str | None:
        query = sa.select(t.tokens.c.token_hash).where(t.tokens.c.ai_id == ai_id)
        return await self._read(lambda conn: conn.scalar(query))

    async def delete_token(self, ai_id: str) -> bool:
        statement = t.tokens.delete().where(t.tokens.c.ai_id == ai_id)
        return await self._write(lambda conn: conn.execute(statement).rowcount > 0)

    async def list_tokens(self) -> list[TokenInfo]:
        c = t.tokens.c
        query = sa.select(c.ai_id, c.created_at).order_by(c.ai_id)
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [TokenInfo(ai_id=row.ai_id, created_at=row.created_at) for row in rows]

    async def count_tokens(self) -> int:
        query = sa.select(sa.func.count()).select_from(t.tokens)
        return await self._read(lambda conn: conn.scalar(query) or 0)

    # ------------------------------------------------------------------ stats

    async def add_stats_snapshot(self, snapshot: StatsSnapshot) -> None:
        statement = t.stats_snapshots.insert().values(
            timestamp=snapshot.timestamp,
            connected_ais=snapshot.connected_ais,
            shared_patterns=snapshot.shared_patterns,
            shared_components=snapshot.shared_components,
            active_collaborations=snapshot.active_collaborations,
        )
        await self._write(lambda conn: conn.execute(statement))

    async def stats_history(self, since: float = 0.0, limit: int = 1000) -> list[StatsSnapshot]:
        c = t.stats_snapshots.c
        query = (
            sa.select(
                c.timestamp,
                c.connected_ais,
                c.shared_patterns,
                c.shared_components,
                c.active_collaborations,
            )
            .where(c.timestamp >= since)
            .order_by(c.timestamp.desc(), c.id.desc())
            .limit(max(limit, 0))
        )
        rows = await self._read(lambda conn: conn.execute(query).all())
        return [StatsSnapshot(**row._asdict()) for row in reversed(rows)]


# ---------------------------------------------------------------------- helpers of the jobs


def _share(conn: Connection, table: sa.Table, row: dict[str, Any]) -> ShareOutcome:
    """Insert a pattern or component unless its id is taken (DUPLICATE or ConflictError)."""
    kind = "pattern" if table is t.shared_patterns else "component"
    item_id = row[f"{kind}_id"]
    query = sa.select(table.c.contributor).where(table.c[f"{kind}_id"] == item_id)
    owner = conn.scalar(query)
    if owner is None:
        conn.execute(table.insert().values(row))
        return ShareOutcome.CREATED
    if owner == row["contributor"]:
        return ShareOutcome.DUPLICATE
    raise ConflictError(f"{kind} id {item_id!r} is already taken by {owner!r}")


def _is_active() -> sa.ColumnElement[bool]:
    return t.collaborations.c.status == CollaborationStatus.ACTIVE.value


def _require_active(conn: Connection, collaboration_id: str) -> None:
    c = t.collaborations.c
    query = sa.select(c.status).where(c.collaboration_id == collaboration_id)
    status = conn.scalar(query)
    if status is None:
        raise NotFoundError(f"no collaboration {collaboration_id!r}")
    if status != CollaborationStatus.ACTIVE.value:
        raise NotFoundError(f"collaboration {collaboration_id!r} is not active (it is {status})")


def _close_collaboration(
    conn: Connection,
    collaboration_id: str,
    status: CollaborationStatus,
    *,
    ended_at: float,
    outcome: str | None,
    reason: str | None = None,
) -> None:
    values: dict[str, Any] = {
        "status": status.value,
        "ended_at": ended_at,
        "outcome": outcome,
        "reason": reason,
    }
    if status is CollaborationStatus.COMPLETED:
        values["progress"] = 100.0
    c = t.collaborations.c
    conn.execute(
        t.collaborations.update().where(c.collaboration_id == collaboration_id).values(values)
    )


def _pattern(row: sa.Row[Any]) -> PatternRecord:
    return PatternRecord(
        pattern_id=row.pattern_id,
        pattern_data=json.loads(row.pattern_data),
        contributor=row.contributor,
        timestamp=row.timestamp,
        usage_count=row.usage_count,
    )


def _component(row: sa.Row[Any]) -> ComponentRecord:
    return ComponentRecord(
        component_id=row.component_id,
        component_data=json.loads(row.component_data),
        contributor=row.contributor,
        timestamp=row.timestamp,
        quality_score=row.quality_score,
        usage_count=row.usage_count,
    )


def _collaboration(row: sa.Row[Any]) -> CollaborationRecord:
    return CollaborationRecord(
        collaboration_id=row.collaboration_id,
        request_id=row.request_id,
        requester=row.requester,
        acceptor=row.acceptor,
        request=json.loads(row.request),
        status=CollaborationStatus(row.status),
        progress=row.progress,
        started_at=row.started_at,
        ended_at=row.ended_at,
        outcome=None if row.outcome is None else json.loads(row.outcome),
        reason=row.reason,
    )
